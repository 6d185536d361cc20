"""The Node API: one machine's MIG GPUs, leases and layouts, the same locally and remotely.

Why this package exists: the CLI, the daemon, Python users and the fleet all drive a machine
through one protocol (:class:`~migctl.node.protocol.Node`). :class:`~migctl.node.local.LocalNode`
does the work on this host (real NVML or a simulated machine); :class:`~migctl.node.remote.RemoteNode`
sends the same calls to a migctl daemon, which runs them on its own ``LocalNode``. No verb has a
second implementation. Entry points: :func:`migctl.open_node`, :func:`migctl.connect`.

Modules: ``protocol`` (the Node protocol and its request values), ``targets`` (a target ->
per-GPU desired layouts, the one place that resolves them), ``local``, ``remote``, ``open``,
``guard`` (one NVML library per process), ``leaser`` (``run``/``env`` over any node).
"""
