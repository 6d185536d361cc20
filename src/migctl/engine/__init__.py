"""The engine: apply, assert, export and recover layouts on a machine, safely.

``current`` reads the machine into the planner's values (marking busy instances: processes
or active leases); ``apply`` plans, runs hooks, checkpoints to a journal, executes the plan
with explicit placements, verifies, and rolls back on failure; ``recover`` finishes or
undoes an apply that was interrupted; ``assertion`` and ``export`` compare and describe.
Layer: above backends, planner and leases; below the CLI and the service.
"""
