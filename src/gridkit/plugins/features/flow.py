"""Built-in plugin module `gridkit.plugins.features.flow` (being written for issue 3)."""
