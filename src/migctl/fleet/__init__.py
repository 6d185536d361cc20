"""The fleet: many GPU hosts under one Dask scheduler, MIG reshaped where the work waits.

Modules (each says more in its docstring):

* ``resources``: the resource vocabulary of workers and tasks (``mig-<profile>``,
  ``gpu-mem-gib``, ``gpu-sm``, ``mig-device``) and the planner demand a task stands for;
* ``host``: the narrow protocol the controller needs from a host (inventory, apply,
  worker start/stop), to be served by the ``Node`` API;
* ``local_host``: that protocol over the library on one machine (simulated or real),
  the only fleet module that touches the engine, backends and lease store;
* ``workers``: ``migctl run ... -- dask worker ...`` command lines and process groups;
* ``scheduler_side``: what the controller reads and does inside the scheduler;
* ``controller``: the decision cycle; ``plugin``: it as a ``SchedulerPlugin`` or as an
  external process.

This package imports nothing from Dask at import time; ``distributed`` (the ``fleet``
extra) is imported by the modules that need it. Front ends (CLI, daemon) may import it;
it never imports them.
"""
