"""The HTTP client of a migctl daemon (httpx): requests, typed errors, job polling.

Why this package exists: ``RemoteNode`` (and through it the CLI, the fleet and Python users)
reaches a daemon the same way, and gets every failure back as the migctl error the daemon raised.
It imports no server code: a client machine needs only httpx (the ``server`` extra).
"""
