"""Tenancy: who may use which MIG device, and how programs, containers and schedulers get one.

Why this package exists: partitioning a GPU is half the job; the other half is handing the
pieces out safely. :mod:`migctl.leases` is the record of who holds what (a store that knows
nothing of GPUs); this package is the hand-out, always for a live machine. On top of the lease
store and the backend it offers:

* leasing against the live machine, with ``--create`` (:mod:`.leasing`, :mod:`.creation`);
* ``migctl run``: run a command on a leased device and release it however the command ends
  (:mod:`.runner`, :mod:`.childproc`, :mod:`.supervise`; the lease comes from any node through
  :class:`migctl.node.leaser.NodeLeaser`); ``migctl env`` (:mod:`.environment`);
* container and orchestrator exports: Docker flags, a CDI spec and :func:`refresh_cdi` for the
  apply engine (:mod:`.cdi`), Kubernetes (:mod:`.kubernetes`), Slurm (:mod:`.slurm`);
* lease holders for the status views (:mod:`.holders`).

Import what you use from its module: this package imports nothing itself, so that a status
view needing only :mod:`.holders` does not pay for YAML, CDI and the lease workflow.

Layer: above ``migctl.leases``, ``migctl.workflow``, ``migctl.inventory`` and the backends; the
node (``migctl.node``), the CLI and the daemon import it.
"""
