"""A simulated machine: its state store plus the GPU models its GPUs are made of.

Why this exists: the NVML entry points (``library.py``) and the simulator's control verbs
(``control.py``: attach processes, reboot, inject faults) both need "the state, and the
model of GPU i", with the models resolved once and checked to be complete enough to
simulate.
"""

from __future__ import annotations

from pathlib import Path

from migctl.catalog import Catalog, model_from_dict
from migctl.catalog.complete import complete_model
from migctl.errors import NotSupportedError
from migctl.model import GpuModel
from migctl.sim.checks import state_problems
from migctl.sim.processes import is_alive
from migctl.sim.state import MachineState, SimGpu, SimProcess
from migctl.sim.store import FileStore, StateStore


def simulation_gaps(model: GpuModel) -> list[str]:
    """What the catalog lacks to simulate ``model`` faithfully (empty: nothing)."""
    if not model.mig_capable:
        return []
    gaps = []
    if model.memory_slices is None:
        gaps.append("its number of memory slices")
    for p in model.gi_profiles:
        missing = [
            label
            for label, value in (("id", p.id), ("memory", p.memory_mib), ("SM count", p.sm_count))
            if value is None
        ]
        if not p.placements:
            missing.append("placements")
        if missing:
            gaps.append(f"{p.name}: {', '.join(missing)}")
    return gaps


def check_simulatable(model: GpuModel) -> None:
    gaps = simulation_gaps(model)
    if gaps:
        raise NotSupportedError(
            f"cannot simulate {model.name}: the catalog does not know " + "; ".join(gaps),
            hint="capture the real GPU with `migctl catalog capture -f FILE` and name that "
            "file as the model in a machine file",
            context={"model": model.key},
        )


def simulated_model(model: GpuModel, catalog: Catalog) -> GpuModel:
    """``model`` as the simulator runs it: what the catalog lacks is derived (and listed in
    ``derivations``) from the model's own geometry and its siblings in ``catalog``."""
    complete = complete_model(model, catalog.models)
    check_simulatable(complete)
    return complete


PARTIAL_NOTE = "simulated from a partial catalog entry: values marked derived are not verified"


def gpu_ranges(indices: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"GPUs 0-2,5"``; ``[3]`` -> ``"GPU 3"``."""
    parts: list[str] = []
    for index in indices:
        if parts and parts[-1].split("-")[-1] == str(index - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{index}"
        else:
            parts.append(str(index))
    return ("GPUs " if len(indices) > 1 else "GPU ") + ",".join(parts)


class SimMachine:
    """State access plus model resolution for one simulated machine."""

    def __init__(self, store: StateStore, catalog: Catalog) -> None:
        self.store = store
        self.catalog = catalog
        self._models: dict[str, GpuModel] = {}
        if isinstance(store, FileStore):
            store.check = self.check

    @property
    def files_dir(self) -> Path:
        """Where this machine keeps its own files (journal, lease database, CDI spec)."""
        return self.store.files_dir

    def model_of(self, state: MachineState, gpu: SimGpu) -> GpuModel:
        model = self._models.get(gpu.model)
        if model is None:
            embedded = state.models.get(gpu.model)
            model = (
                model_from_dict(embedded, "simulator state")
                if embedded is not None
                else self.catalog.get(gpu.model)
            )
            model = simulated_model(model, self.catalog)
            self._models[gpu.model] = model
        return model

    def trust_notes(self, state: MachineState) -> list[str]:
        """One line per model simulated with derived values: its GPUs and trust level."""
        by_model: dict[str, list[int]] = {}
        for gpu in state.gpus:
            by_model.setdefault(gpu.model, []).append(gpu.index)
        lines = []
        for key, indices in by_model.items():
            gpu = next(g for g in state.gpus if g.index == indices[0])
            model = self.model_of(state, gpu)
            if model.derivations:
                where = gpu_ranges(indices)
                lines.append(
                    f"{where} ({key}, trust {model.trust.value}) {PARTIAL_NOTE} "
                    "(`migctl sim show` lists them)"
                )
        return lines

    def check(self, state: MachineState) -> None:
        """Refuse (ValueError) a state that contradicts its GPU models (see ``checks``)."""
        problems = state_problems(state, self.model_of)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            raise ValueError("; ".join(problems[:3]) + more)

    def validate(self, state: MachineState) -> None:
        """Resolve every GPU's model now, so a bad machine fails before any use."""
        for gpu in state.gpus:
            self.model_of(state, gpu)


def live_processes(gpu: SimGpu) -> list[SimProcess]:
    return [p for p in gpu.processes if is_alive(p.pid, p.start_time)]


def prune_dead(gpu: SimGpu) -> None:
    gpu.processes = live_processes(gpu)


def processes_on(gpu: SimGpu, gi: int | None = None, ci: int | None = None) -> list[SimProcess]:
    """Live processes on the GPU, one GI, or one CI."""
    return [
        p for p in live_processes(gpu) if (gi is None or p.gi == gi) and (ci is None or p.ci == ci)
    ]
