"""Built-in plugin module `gridkit.plugins.features.bar_set` (being written for issue 3)."""
