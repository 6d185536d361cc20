"""``migctl sim``: the simulated machine's own controls (no real GPU is ever touched).

Why this exists: to try migctl, test it, or rehearse a change without hardware, a user
needs what a real server has and NVML cannot do: processes that hold MIG devices, reboots,
GPU resets, failures. These verbs act on the machine chosen with ``--sim`` / MIGCTL_SIM.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migctl.cli.output import emit, note, print_rows, table
from migctl.cli.session import session
from migctl.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from migctl.model import Derivation, GpuModel
    from migctl.schemas.admin import SimMachineOut, SimMachinesOut
    from migctl.sim import SimControl

app = typer.Typer(
    help="Control the simulated machine (chosen with --sim or MIGCTL_SIM).", no_args_is_help=True
)


def _spec() -> str:
    """The simulated machine chosen with ``--sim`` / ``MIGCTL_SIM``."""
    spec = session().settings.sim
    if spec is None:
        raise UsageError(
            "no simulated machine chosen",
            hint="pass --sim NAME (e.g. --sim dgx-h100) or export MIGCTL_SIM=NAME",
        )
    return spec


def _control() -> SimControl:
    from migctl.sim import SimControl, open_sim

    current = session()
    return SimControl(open_sim(_spec(), current.catalog, current.settings.sim_dir))


@app.command("machines")
def machines() -> None:
    """The named simulated machines, with the trust level of their GPU models."""
    from migctl.sim import describe_named
    from migctl.sim.machines import named_models

    catalog = session().catalog
    named: list[dict[str, Any]] = [
        {
            "name": name,
            "description": text,
            "models": [
                {"key": key, "trust": catalog.get(key).trust.value} for key in named_models(name)
            ],
        }
        for name, text in describe_named()
    ]

    def render() -> None:
        rows = table("Name", "Description", "Trust")
        for machine in named:
            trusts = dict.fromkeys(m["trust"] for m in machine["models"])
            rows.add_row(machine["name"], machine["description"], ", ".join(trusts))
        print_rows(rows)
        session().console.print(
            "use one with --sim NAME or MIGCTL_SIM=NAME; or describe your own in a YAML file"
        )
        note([MODELS_NOTE])

    def document() -> SimMachinesOut:
        from migctl.schemas.admin import SimMachinesOut

        return SimMachinesOut.model_validate({"machines": named, "note": MODELS_NOTE})

    emit("SimMachines", document, render)


MODELS_NOTE = (
    "a machine file may name any MIG model of `migctl catalog`; values a model's catalog "
    "entry lacks are derived from its geometry and marked derived in `migctl sim show`"
)


def _models(control: SimControl) -> dict[str, GpuModel]:
    """The GPU models of the simulated machine, as it simulates them."""
    state = control.state()
    return {g.model: control.machine.model_of(state, g) for g in state.gpus}


@app.command("show")
def show() -> None:
    """The simulated machine: GPUs, trust, derived values, MIG mode, faults, state file."""
    control = _control()
    state = control.state()
    models = _models(control)
    trust_notes = control.machine.trust_notes(state)
    data = {
        "name": state.name,
        "state_file": str(control.state_path) if control.state_path else None,
        "driver_version": state.driver_version,
        "permissions": state.permissions,
        "reset_supported": state.reset_supported,
        "boot_id": state.boot_id,
        "gpus": [
            {
                "index": g.index,
                "model": g.model,
                "trust": models[g.model].trust.value,
                "mig_current": g.mig_current,
                "mig_pending": g.mig_pending,
                "gpu_instances": len(g.gis),
            }
            for g in state.gpus
        ],
        "notes": trust_notes,
        "derived": {
            key: [derivation_data(d) for d in model.derivations] for key, model in models.items()
        },
        "faults": [dict(f.__dict__) for f in state.faults],
    }

    def render() -> None:
        console = session().console
        console.print(
            f"simulated machine [bold]{state.name}[/bold], driver {state.driver_version}, "
            f"boot {state.boot_id}, permissions {state.permissions}, "
            f"GPU reset {'possible' if state.reset_supported else 'impossible (reboot needed)'}"
        )
        console.print(f"state file: {data['state_file']}")
        rows = table("GPU", "Model", "Trust", "MIG current", "MIG pending", "GPU instances")
        for g in state.gpus:
            rows.add_row(
                str(g.index),
                g.model,
                models[g.model].trust.value,
                str(g.mig_current),
                str(g.mig_pending),
                str(len(g.gis)),
            )
        print_rows(rows)
        _render_derived(models)
        note(trust_notes)
        for fault in state.faults:
            console.print(
                f"fault: {fault.function} -> {fault.error} (x{fault.count}, skip {fault.skip})"
            )

    def document() -> SimMachineOut:
        from migctl.schemas.admin import SimMachineOut

        return SimMachineOut.model_validate(data)

    emit("SimMachine", document, render)


def _process(**fields: object) -> BaseModel:
    from migctl.schemas.admin import SimProcessOut

    return SimProcessOut.model_validate(fields)


def _admin(name: str, **fields: object) -> BaseModel:
    """The ``migctl.schemas.admin`` document ``name`` with ``fields``."""
    from migctl.schemas import admin

    model: type[BaseModel] = getattr(admin, name)
    return model.model_validate(fields)


def derivation_data(derivation: Derivation) -> dict[str, str]:
    return {
        "profile": derivation.profile,
        "field": derivation.field,
        "value": derivation.value,
        "reason": derivation.reason,
    }


def _render_derived(models: dict[str, GpuModel]) -> None:
    for key, model in models.items():
        if not model.derivations:
            continue
        rows = table("Profile", "Field", "Value", "Why", title=f"{key}: derived values")
        for d in model.derivations:
            rows.add_row(d.profile or "(model)", d.field, d.value, d.reason)
        print_rows(rows)


def _gpu_of_device(control: SimControl, device: str) -> int:
    for gpu in control.state().gpus:
        for gi in gpu.gis:
            if any(ci.uuid == device for ci in gi.cis):
                return gpu.index
    raise NotFoundError(
        f"no MIG device {device} on this simulated machine", hint="see `migctl list`"
    )


@app.command("attach")
def attach(
    pid: Annotated[int, typer.Option("--pid", help="A running process to attach.")],
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="MIG-<uuid> it runs on.")
    ] = None,
    gpu: Annotated[
        int | None, typer.Option("--gpu", help="Whole GPU (MIG off) it runs on.")
    ] = None,
    memory: Annotated[
        str, typer.Option("--memory", help="GPU memory it uses: 512 (MiB), 2GiB, 2G.")
    ] = "0",
) -> None:
    """Attach a running process to a MIG device: it holds the device until it exits."""
    control = _control()
    if (device is None) == (gpu is None):
        raise UsageError("say where the process runs: --device MIG-<uuid> or --gpu N")
    index = _gpu_of_device(control, device) if device else gpu
    assert index is not None
    proc = control.attach(pid, index, device, _memory_mib(memory))
    emit(
        "SimProcess",
        lambda: _process(pid=proc.pid, gpu_index=index, gi=proc.gi, ci=proc.ci),
        lambda: session().console.print(
            f"PID {pid} now runs on GPU {index} ({device or 'whole GPU'})"
        ),
    )


def _memory_mib(text: str) -> int:
    """A process's memory: 0 (none) or a size as every verb reads it (``migctl.sizes``)."""
    from migctl.sizes import parse_memory_mib

    return 0 if text.strip() == "0" else parse_memory_mib(text)


@app.command("hold")
def hold(
    device: Annotated[str, typer.Option("--device", "-d", help="MIG-<uuid> to keep busy.")],
    seconds: Annotated[int, typer.Option("--seconds", help="How long the holder lives.")] = 3600,
    memory: Annotated[
        str, typer.Option("--memory", help="GPU memory it uses: 1024 (MiB), 6GiB, 6G.")
    ] = "1024",
) -> None:
    """Start a background process that keeps a MIG device busy (a stand-in for a job)."""
    if seconds < 1:
        raise UsageError("--seconds must be >= 1")
    memory_mib = _memory_mib(memory)
    control = _control()
    index = _gpu_of_device(control, device)
    holder = subprocess.Popen(
        ["sleep", str(seconds)],
        start_new_session=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    control.attach(holder.pid, index, device, memory_mib, "sim-job")
    emit(
        "SimProcess",
        lambda: _process(pid=holder.pid, gpu_index=index, device=device),
        lambda: session().console.print(
            f"PID {holder.pid} holds {device} for {seconds} s (kill it to free the device)"
        ),
    )


@app.command("detach")
def detach(pid: Annotated[int, typer.Option("--pid")]) -> None:
    """Forget a process (as if it had exited)."""
    removed = _control().detach(pid)
    emit(
        "SimDetach",
        lambda: _admin("SimDetachOut", pid=pid, removed=bool(removed)),
        lambda: session().console.print(
            f"PID {pid}: {'detached' if removed else 'was not attached'}"
        ),
    )


@app.command("reboot")
def reboot() -> None:
    """Reboot: every GPU and compute instance vanishes; pending MIG modes take effect."""
    _control().reboot()
    emit(
        "SimReboot",
        lambda: _admin("SimRebootOut", rebooted=True),
        lambda: session().console.print("rebooted: all MIG instances are gone"),
    )


@app.command("reset-gpu")
def reset_gpu(gpu: Annotated[int, typer.Option("--gpu", "-i", help="GPU to reset.")]) -> None:
    """Reset one GPU (refused while processes hold it): instances vanish, pending mode applies."""
    _control().reset_gpu(gpu)
    emit(
        "SimReset",
        lambda: _admin("SimResetOut", gpu_index=gpu),
        lambda: session().console.print(f"GPU {gpu} reset"),
    )


fault_app = typer.Typer(help="Inject NVML failures.", no_args_is_help=True)
app.add_typer(fault_app, name="fault")


@fault_app.command("add")
def fault_add(
    function: Annotated[
        str, typer.Argument(help="NVML function or prefix, e.g. nvmlDeviceCreateGpuInstance.")
    ],
    error: Annotated[
        str, typer.Argument(help="NVML error name (IN_USE, INSUFFICIENT_RESOURCES, ...) or KILL.")
    ],
    count: Annotated[int, typer.Option("--count", help="How many calls fail.")] = 1,
    gpu: Annotated[int | None, typer.Option("--gpu", help="Only on this GPU.")] = None,
    skip: Annotated[
        int, typer.Option("--skip", help="Let this many matching calls pass first.")
    ] = 0,
) -> None:
    """Make the next matching NVML calls fail (KILL: the calling process dies there)."""
    fault = _control().inject_fault(function, error, count, gpu, skip)
    emit(
        "SimFault",
        lambda: _admin("SimFaultOut", **fault.__dict__),
        lambda: session().console.print(f"fault armed: {function} -> {error} x{count}"),
    )


@fault_app.command("clear")
def fault_clear() -> None:
    """Remove every armed fault."""
    removed = _control().clear_faults()
    emit(
        "SimFaultClear",
        lambda: _admin("SimFaultsClearedOut", removed=removed),
        lambda: session().console.print(f"removed {removed} fault(s)"),
    )


@app.command("permissions")
def permissions(mode: Annotated[str, typer.Argument(help="allow, deny or root-only")]) -> None:
    """Who may change MIG: everyone (allow), nobody (deny), or root only."""
    _control().set_permissions(mode)
    emit(
        "SimPermissions",
        lambda: _admin("SimPermissionsOut", permissions=mode),
        lambda: session().console.print(f"permissions: {mode}"),
    )


@app.command("reset-state")
def reset_state() -> None:
    """Forget the simulated machine (its state, apply journal, leases, CDI spec): the next
    command starts it fresh."""
    from migctl.sim import forget_sim

    current = session()
    # never reads the state: it may be damaged
    store = forget_sim(_spec(), current.catalog, current.settings.sim_dir)
    path, files = store.path, store.files_dir
    emit(
        "SimResetState",
        lambda: _admin("SimForgottenOut", removed=[str(path), str(files)]),
        lambda: session().console.print(f"removed {path} and {files}", markup=False),
    )
