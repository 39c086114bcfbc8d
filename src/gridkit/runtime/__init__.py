"""The run-time half of the kernel: a built pipeline's lanes, the event loop and its stages,
the one apply path of reports, the ledger, the account, the journal, state and resume.

:mod:`gridkit.core` is the plugin half — hook specs, the plugin host, the registry, the config
schema, the component base classes and the value types — and imports nothing from here.
"""
