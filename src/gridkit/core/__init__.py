"""The kernel: hook specs, plugin manager, registry, config, engine and domain types."""
