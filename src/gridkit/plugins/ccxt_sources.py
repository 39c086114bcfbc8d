"""Built-in plugin module `gridkit.plugins.ccxt_sources` (being written for issue 3)."""
