"""The planner: pure placement and packing decisions, no hardware and no I/O.

``placement`` decides where a set of GPU instances goes on one GPU (exactly, by search
over the catalog's placements). Later modules add reconfiguration plans and packing over
many GPUs. Never imports backends or the simulator.
"""
