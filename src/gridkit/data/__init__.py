"""Market-data structures the sources and the engine share: time bars and the order book."""
