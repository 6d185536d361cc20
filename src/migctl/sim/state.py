"""The simulated machine's state: GPUs, MIG mode, instances, processes, injected faults.

Why this exists: the simulator must behave like one machine across many CLI processes, so
its state is plain data that round-trips through JSON (see ``store.py`` for the file and
its lock). This module holds the data and its codec only; the MIG rules are in
``rules.py`` and the NVML entry points in ``library.py``.

The dataclasses are also the file's schema: :func:`parse_state` validates a JSON text
against them with pydantic (strict types, no unknown keys), so a file of the wrong shape is
refused with the place of the fault; ``checks.py`` then checks it against the GPU models.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from migctl.model import Placement

if TYPE_CHECKING:
    from pydantic import TypeAdapter

SCHEMA = 1
# pydantic's config for the dataclasses below (a ConfigDict; plain dict: no pydantic import)
_STRICT: dict[str, Any] = {"strict": True, "extra": "forbid"}


@dataclass
class SimComputeInstance:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    id: int
    profile_id: int
    start: int
    size: int
    uuid: str

    @property
    def placement(self) -> Placement:
        return Placement(self.start, self.size)


@dataclass
class SimGpuInstance:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    id: int
    profile_id: int
    start: int
    size: int
    cis: list[SimComputeInstance] = field(default_factory=list)

    @property
    def placement(self) -> Placement:
        return Placement(self.start, self.size)

    def ci(self, ci_id: int) -> SimComputeInstance | None:
        return next((c for c in self.cis if c.id == ci_id), None)


@dataclass
class SimProcess:
    """A process holding a GPU (``gi``/``ci`` None) or one MIG device, until its PID exits."""

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    pid: int
    start_time: int | None  # /proc/PID/stat field 22, to survive PID reuse
    used_memory_mib: int
    name: str = ""
    gi: int | None = None
    ci: int | None = None


@dataclass
class SimGpu:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    index: int
    model: str  # catalog key (or key of a model embedded in the state)
    uuid: str
    bus_id: str
    mig_current: bool = False
    mig_pending: bool = False
    gis: list[SimGpuInstance] = field(default_factory=list)
    processes: list[SimProcess] = field(default_factory=list)

    def gi(self, gi_id: int) -> SimGpuInstance | None:
        return next((g for g in self.gis if g.id == gi_id), None)


@dataclass
class SimFault:
    """Make the next ``count`` calls of ``function`` fail with NVML ``error``.

    ``function`` is an NVML entry point name or a prefix of one (``nvmlDeviceCreate``), or
    ``nvml@mutation`` for every call that changes state (mode, create, destroy);
    ``gpu`` limits it to one GPU index. ``error`` is an NVML return code, or ``-9`` to
    kill the calling process with SIGKILL just before the call takes effect (crash tests).
    ``skip`` lets that many matching calls pass first.
    """

    function: str
    error: int
    count: int = 1
    gpu: int | None = None
    skip: int = 0

    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT


KILL = -9


@dataclass
class MachineState:
    __pydantic_config__: ClassVar[dict[str, Any]] = _STRICT

    name: str
    driver_version: str
    cuda_driver_version: int
    gpus: list[SimGpu]
    permissions: str = "allow"  # "allow" | "deny" | "root-only"
    reset_supported: bool = True
    boot_id: int = 1
    uuid_counter: int = 0
    models: dict[str, dict[str, Any]] = field(default_factory=dict)  # embedded GpuModels
    faults: list[SimFault] = field(default_factory=list)
    schema: int = SCHEMA

    def gpu(self, index: int) -> SimGpu | None:
        if 0 <= index < len(self.gpus):
            return self.gpus[index]
        return None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> MachineState:
        gpus = [_gpu_from_dict(g) for g in raw["gpus"]]
        faults = [SimFault(**f) for f in raw.get("faults", [])]
        fields = {k: v for k, v in raw.items() if k not in {"gpus", "faults"}}
        return cls(gpus=gpus, faults=faults, **fields)


def _gpu_from_dict(raw: dict[str, Any]) -> SimGpu:
    gis = [
        SimGpuInstance(
            id=g["id"],
            profile_id=g["profile_id"],
            start=g["start"],
            size=g["size"],
            cis=[SimComputeInstance(**c) for c in g.get("cis", [])],
        )
        for g in raw.get("gis", [])
    ]
    processes = [SimProcess(**p) for p in raw.get("processes", [])]
    fields = {k: v for k, v in raw.items() if k not in {"gis", "processes"}}
    return SimGpu(gis=gis, processes=processes, **fields)


_WORDS = {"unexpected_keyword_argument": "unknown key", "missing_argument": "missing"}


@functools.cache
def _adapter() -> TypeAdapter[MachineState]:
    from pydantic import TypeAdapter

    return TypeAdapter(MachineState)


def parse_state(text: bytes) -> MachineState:
    """The state in a JSON text, validated against the dataclasses above.

    Raises ValueError naming the first faults by their place (``gpus.0.index: ...``).
    """
    from pydantic import ValidationError

    try:
        state = _adapter().validate_json(text)
    except ValidationError as exc:
        faults = [
            f"{'.'.join(str(part) for part in error['loc']) or 'the file'}: "
            + _WORDS.get(error["type"], error["msg"])
            for error in exc.errors(include_url=False)
        ]
        more = f" (and {len(faults) - 3} more)" if len(faults) > 3 else ""
        raise ValueError("; ".join(faults[:3]) + more) from None
    if state.schema != SCHEMA:
        raise ValueError(f"schema {state.schema!r}, expected {SCHEMA}")
    return state
