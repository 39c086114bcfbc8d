"""Built-in plugin module `gridkit.plugins.features.book` (being written for issue 3)."""
