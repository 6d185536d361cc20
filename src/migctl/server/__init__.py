"""The migctl daemon (``migctl serve``): one privileged process owns the GPUs; others ask it.

Why this package exists: on a shared GPU server only root may change MIG layouts, and leases
only work if everyone goes through one store. The daemon listens on a Unix socket (mode 0666;
the kernel tells it who each caller is) and optionally on TCP (bearer tokens only), and serves a
versioned REST API (``/v1``): inventory, catalog, status, plan, apply (as jobs), leases, tokens
and an audit log. It remembers the desired layout and re-applies it after a reboot, repairs an
apply that a crash interrupted, and keeps leases across restarts.

Modules, outside in: ``run`` (listeners, uvicorn), ``app`` (ASGI app), ``audit`` and ``limits``
(middleware), ``routes_*`` (thin HTTP handlers), ``deps``/``auth``/``peercred``/``tokens``
(who is asking), ``service`` (the daemon core: one ``LocalNode``, stores, jobs), ``gpu`` (the
node behind the GPU lock), ``changes`` (changes checked, then run as jobs), ``leasing``,
``provisional`` and ``waiters`` (leases), ``desired`` (the layout re-applied at start), ``jobs``,
``startup`` (reconcile at start), ``statedb`` (SQLite), ``bodies`` (the daemon-only bodies; what a
node is and does travels in ``migctl.schemas``), ``openapi`` (the committed schema). Target
resolution, MIG-mode rules, CDI refresh and every GPU read or change are the node's.

Entry points for other code: :func:`migctl.server.run.serve` (run a daemon),
:class:`migctl.server.service.Service` (the core, for metrics and the dashboard),
:func:`migctl.server.app.create_app` (the ASGI app). Clients use ``migctl.connect`` (a
``RemoteNode`` over :class:`migctl.client.http.DaemonClient`).

Layer: above the node, engine, leases and backends; only the CLI and ``migctl.testing`` import
it. Needs the ``server`` extra (fastapi, uvicorn, httpx).
"""
