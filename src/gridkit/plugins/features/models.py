"""Built-in plugin module `gridkit.plugins.features.models` (being written for issue 3)."""
