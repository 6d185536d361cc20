"""The fleet: many GPU hosts under one Dask scheduler, MIG reshaped where the work waits.

Modules (each says more in its docstring):

* ``resources``: the resource vocabulary of workers and tasks (``mig-<profile>``,
  ``gpu-mem-gib``, ``gpu-sm``, ``mig-device``) and the planner demand a task stands for;
* ``host``: the narrow protocol the controller needs from a host (inventory, apply, worker
  start/stop) and its values; ``node_host``: that protocol over one ``migctl.Node`` (a
  ``LocalNode``, or a ``RemoteNode`` to the host's daemon), the fleet's only way to a host;
* ``launch``, ``workers``: ``migctl run ... -- dask worker ...`` pointed at the host's node,
  in its own process group (or a worker in this process);
* ``agent``: the node agent of one host; ``registry``, ``agent_host``, ``wire``: how agents and
  the controller meet inside the scheduler;
* ``scheduler_side``: what the controller reads and does inside the scheduler;
  ``controller``, ``reshapes``, ``policy``: the decision cycle, reshapes in flight, budgets;
  ``plugin``: the controller as a ``SchedulerPlugin`` or as an external process;
* ``view``, ``http``: the fleet view and metrics; ``service``: the CLI's long-running
  processes and reads; ``simhosts``, ``cluster``, ``demo``: simulated fleets (``MigCluster``).

This package imports nothing from Dask at import time; ``distributed`` (the ``fleet``
extra) is imported by the modules that need it. It reaches hosts only through the Node API and
never imports the CLI or the daemon; the CLI (``migctl fleet``) and ``migctl.dask`` import it.
"""
