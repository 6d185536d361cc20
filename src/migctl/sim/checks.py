"""Check a simulated machine's state against its GPU models before the simulator uses it.

Why this exists: the state file is plain JSON that a crash, an edit or another tool may have
left inconsistent although every value has the right type (``state.parse_state`` checks
those): a GPU instance at a placement its profile cannot have, two instances on the same
slices, a process on a GPU instance that does not exist, an index out of step with its position.
The NVML entry points assume a consistent machine; this module finds what is not, so that the
store can refuse the file with one clear message instead of a failure deep inside a call.

Only ``machine.py`` imports this module; it imports the models, the geometry and the state.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from migctl.catalog import model_from_dict
from migctl.errors import InvalidInputError, NotFoundError
from migctl.geometry import Occupant, placement_refusal
from migctl.model import GpuModel, Placement
from migctl.sim.state import MachineState, SimGpu, SimGpuInstance

PERMISSIONS = ("allow", "deny", "root-only")
_BUS_ID = re.compile(r"[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]")
ModelOf = Callable[[MachineState, SimGpu], GpuModel]


def state_problems(state: MachineState, model_of: ModelOf) -> list[str]:
    """What is inconsistent in ``state`` (empty: nothing), each naming its place."""
    problems = _machine_problems(state)
    seen: set[str] = set()
    for position, gpu in enumerate(state.gpus):
        where = f"gpus.{position}"
        if gpu.index != position:
            problems.append(f"{where}.index: {gpu.index}, but it is GPU {position}")
        problems += _identity_problems(gpu.uuid, "GPU-", f"{where}.uuid", seen)
        if not _BUS_ID.fullmatch(gpu.bus_id):
            problems.append(f"{where}.bus_id: {gpu.bus_id!r} is not a PCI bus id")
        try:
            model = model_of(state, gpu)
        except (NotFoundError, InvalidInputError) as error:  # NotSupported: a real limit
            problems.append(f"{where}.model: {error.message}")
            continue
        problems += _gpu_problems(gpu, model, where, seen)
    return problems


def _machine_problems(state: MachineState) -> list[str]:
    problems = []
    if state.permissions not in PERMISSIONS:
        problems.append(
            f"permissions: {state.permissions!r} is not one of {', '.join(PERMISSIONS)}"
        )
    for name, number in (("boot_id", state.boot_id), ("uuid_counter", state.uuid_counter)):
        if number < 0:
            problems.append(f"{name}: {number} is negative")
    for position, fault in enumerate(state.faults):
        if not fault.function.startswith("nvml") or fault.count < 1 or fault.skip < 0:
            problems.append(f"faults.{position}: needs an NVML function, count >= 1, skip >= 0")
    if not state.gpus:
        problems.append("gpus: a machine needs at least one GPU")
    for key, raw in state.models.items():
        try:
            model_from_dict(raw, f"models.{key}")
        except InvalidInputError as error:
            problems.append(error.message)
    return problems


def _identity_problems(text: str, prefix: str, where: str, seen: set[str]) -> list[str]:
    try:
        uuid.UUID(text.removeprefix(prefix))
        well_formed = text.startswith(prefix)
    except ValueError:
        well_formed = False
    if not well_formed:
        return [f"{where}: {text!r} is not a {prefix}<uuid>"]
    if text in seen:
        return [f"{where}: {text} is used twice"]
    seen.add(text)
    return []


def _gpu_problems(gpu: SimGpu, model: GpuModel, where: str, seen: set[str]) -> list[str]:
    if not model.mig_capable:
        if gpu.gis or gpu.mig_current or gpu.mig_pending:
            return [f"{where}: {model.name} has no MIG, yet the state gives it MIG mode or GIs"]
        return _process_problems(gpu, where)
    problems = _id_problems([gi.id for gi in gpu.gis], f"{where}.gis")
    occupants: list[Occupant] = []
    for position, gi in enumerate(gpu.gis):
        at = f"{where}.gis.{position}"
        profile = model.gi_profile(gi.profile_id)
        if profile is None:
            problems.append(f"{at}.profile_id: {model.name} has no GI profile {gi.profile_id}")
            continue
        refusal = placement_refusal(model, profile, Placement(gi.start, gi.size), occupants)
        if refusal is not None:
            problems.append(f"{at}: {refusal}")
        occupants.append(Occupant(profile, Placement(gi.start, gi.size)))
        problems += _ci_problems(gi, model, profile.name, at, seen)
    return problems + _process_problems(gpu, where)


def _ci_problems(
    gi: SimGpuInstance, model: GpuModel, gi_profile: str, at: str, seen: set[str]
) -> list[str]:
    problems = _id_problems([ci.id for ci in gi.cis], f"{at}.cis")
    profiles = {ci.nvml_index: ci for ci in model.ci_profiles_for(gi_profile)}
    for position, ci in enumerate(gi.cis):
        where = f"{at}.cis.{position}"
        problems += _identity_problems(ci.uuid, "MIG-", f"{where}.uuid", seen)
        profile = profiles.get(ci.profile_id)
        if profile is None:
            problems.append(f"{where}.profile_id: {gi_profile} has no CI profile {ci.profile_id}")
        elif Placement(ci.start, ci.size) not in profile.placements:
            problems.append(f"{where}: {profile.name} cannot be at {ci.start}:{ci.size}")
    return problems


def _id_problems(ids: list[int], where: str) -> list[str]:
    return [
        f"{where}.{position}.id: {number} is negative or used twice"
        for position, number in enumerate(ids)
        if number < 0 or number in ids[:position]
    ]


def _process_problems(gpu: SimGpu, where: str) -> list[str]:
    """A process record may outlive its MIG device (it is pruned once its PID is gone)."""
    return [
        f"{where}.processes.{position}: pid must be > 0 and memory >= 0"
        for position, proc in enumerate(gpu.processes)
        if proc.pid <= 0 or proc.used_memory_mib < 0
    ]
