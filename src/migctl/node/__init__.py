"""The Node API: one machine's MIG GPUs, leases and layouts, the same locally and remotely.

Why this package exists: the CLI, the daemon, Python users and the fleet all drive a machine
through one protocol (:class:`~migctl.node.protocol.Node`). :class:`~migctl.node.local.LocalNode`
does the work on this host (real NVML or a simulated machine); :class:`~migctl.node.remote.RemoteNode`
sends the same calls to a migctl daemon, which runs them on its own ``LocalNode``. No verb has a
second implementation. Entry points: :func:`migctl.open_node`, :func:`migctl.connect`.

Modules: ``protocol`` (the Node protocol), ``targets`` and ``layout_files`` (a target ->
per-GPU desired layouts, the one place that resolves them), ``local`` (with ``modes``: MIG mode,
``local_leases``: the lease calls), ``remote``, ``open``, ``leasing`` (a lease request
against this machine), ``leaser`` (``migctl run``'s leases over any node), ``offline``
(``plan --model``: plans for GPUs that are not here). One NVML library per process:
``migctl.backends.nvml.guard``.
"""
