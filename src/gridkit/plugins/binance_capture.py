"""Built-in plugin module `gridkit.plugins.binance_capture` (being written for issue 3)."""
