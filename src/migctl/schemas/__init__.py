"""Wire schemas: one pydantic model per value that crosses a process.

Why this package exists: the CLI's ``--output json``, the daemon's REST bodies, the client that
reads them back (``RemoteNode``) and the apply journal must agree on one shape per value, written
once. Each model converts from migctl's value types (``Model.of(value)``) and, where a reader needs
the value back, to it (``model.value()``). Nothing else in migctl turns these values into JSON by
hand.

Modules: ``base`` (the envelope and common pieces), ``machine`` (GPUs, instances, MIG devices,
processes, profiles), ``leases``, ``layouts`` (targets, desired layouts, plans, outcomes),
``reports``, ``errors``; the CLI's own documents: ``listings`` (list, status, mode, profiles,
leases), ``exports`` (docker-args, CDI, Kubernetes, Slurm), ``catalog``. Import the module you
need: this package imports nothing itself, so that a CLI verb printing a table never pays for
pydantic.

Layer: beside ``migctl.model``; imports model, planner values, leases values and errors only.
"""
