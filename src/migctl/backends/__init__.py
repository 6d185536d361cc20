"""Backends: the one door to the hardware.

``base.Backend`` is the protocol in migctl's own types; ``nvml`` is its only
implementation (over the real driver or the simulator); ``select.open_backend`` picks.
"""
