"""migctl: NVIDIA Multi-Instance GPU (MIG) partitioning made easy, safe and efficient.

Library entry points: ``migctl.backends.select.open_backend`` (a GPU backend, real or
simulated), ``migctl.catalog.load_catalog`` (GPU geometry), ``migctl.ops`` (the MIG
workflow: list, profiles, create/destroy instances, status).
"""

__version__ = "0.1.0"
