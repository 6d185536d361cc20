"""Which GPUs a verb that changes instances works on: ``-i`` as given, or the only one.

Why this exists: ``gi create``, ``gi destroy`` and ``ci`` change GPUs one at a time (one node
call per GPU), so a selection becomes a list of GPUs here. GPUs named one by one are passed on
as written (an index, a UUID or a PCI bus id: the node resolves and checks each); ``-i all``
means every MIG GPU of the node; no ``-i`` means the only MIG GPU there is, and on a machine
with several it is a usage error rather than a guess. Imported by the verb modules.
"""

from __future__ import annotations

from migctl.cli.session import session
from migctl.errors import NotSupportedError, UsageError


def every_gpu(gpu: str | None) -> bool:
    return gpu is None or gpu.strip().lower() in {"", "all"}


def target_gpus(gpu: str | None) -> list[int | str]:
    """The GPUs ``-i`` names (see the module docstring)."""
    if not every_gpu(gpu):
        assert gpu is not None
        return [token.strip() for token in gpu.split(",") if token.strip()]
    found: list[int | str] = sorted(session().node.models(gpu))
    if not found:
        raise NotSupportedError("no GPU here supports MIG", hint="see `migctl list`")
    if gpu is None and len(found) > 1:
        raise UsageError(
            f"this machine has {len(found)} MIG GPUs: say which with -i",
            hint="e.g. -i 0, -i 0,1 or -i all",
        )
    return found


def single_gpu(gpu: str | None) -> int | str:
    """The one GPU a verb works on (``-i GPU``, or the machine's only MIG GPU)."""
    chosen = target_gpus(gpu)
    if len(chosen) != 1:
        raise UsageError("this command works on one GPU", hint="choose it with -i GPU (e.g. -i 0)")
    return chosen[0]
