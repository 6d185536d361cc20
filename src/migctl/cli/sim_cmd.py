"""``migctl sim``: the simulated machine's own controls (no real GPU is ever touched).

Why this exists: to try migctl, test it, or rehearse a change without hardware, a user
needs what a real server has and NVML cannot do: processes that hold MIG devices, reboots,
GPU resets, failures. These verbs act on the machine chosen with ``--sim`` / MIGCTL_SIM.
"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.output import emit, print_rows, table
from migctl.cli.session import session
from migctl.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from migctl.sim import SimControl

app = typer.Typer(
    help="Control the simulated machine (chosen with --sim or MIGCTL_SIM).", no_args_is_help=True
)


def _control() -> SimControl:
    from migctl.backends.select import open_sim_control

    current = session()
    return open_sim_control(current.sim, current.catalog)


@app.command("machines")
def machines() -> None:
    """The named simulated machines."""
    from migctl.sim import describe_named

    named = describe_named()

    def render() -> None:
        rows = table("Name", "Description")
        for name, text in named:
            rows.add_row(name, text)
        print_rows(rows)
        session().console.print(
            "use one with --sim NAME or MIGCTL_SIM=NAME; or describe your own in a YAML file"
        )

    emit("SimMachines", {"machines": [{"name": n, "description": d} for n, d in named]}, render)


@app.command("show")
def show() -> None:
    """The simulated machine: GPUs, MIG mode, permissions, faults, state file."""
    control = _control()
    state = control.state()
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
                "mig_current": g.mig_current,
                "mig_pending": g.mig_pending,
                "gpu_instances": len(g.gis),
            }
            for g in state.gpus
        ],
        "faults": [f.__dict__ for f in state.faults],
    }

    def render() -> None:
        console = session().console
        console.print(
            f"simulated machine [bold]{state.name}[/bold], driver {state.driver_version}, "
            f"boot {state.boot_id}, permissions {state.permissions}, "
            f"GPU reset {'possible' if state.reset_supported else 'impossible (reboot needed)'}"
        )
        console.print(f"state file: {data['state_file']}")
        rows = table("GPU", "Model", "MIG current", "MIG pending", "GPU instances")
        for g in state.gpus:
            rows.add_row(
                str(g.index), g.model, str(g.mig_current), str(g.mig_pending), str(len(g.gis))
            )
        print_rows(rows)
        for fault in state.faults:
            console.print(
                f"fault: {fault.function} -> {fault.error} (x{fault.count}, skip {fault.skip})"
            )

    emit("SimMachine", data, render)


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
        {"pid": proc.pid, "gpu": index, "gi": proc.gi, "ci": proc.ci},
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
        {"pid": holder.pid, "gpu": index, "device": device},
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
        {"pid": pid, "removed": removed},
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
        {"rebooted": True},
        lambda: session().console.print("rebooted: all MIG instances are gone"),
    )


@app.command("reset-gpu")
def reset_gpu(gpu: Annotated[int, typer.Option("--gpu", "-i", help="GPU to reset.")]) -> None:
    """Reset one GPU (refused while processes hold it): instances vanish, pending mode applies."""
    _control().reset_gpu(gpu)
    emit("SimReset", {"gpu": gpu}, lambda: session().console.print(f"GPU {gpu} reset"))


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
        fault.__dict__,
        lambda: session().console.print(f"fault armed: {function} -> {error} x{count}"),
    )


@fault_app.command("clear")
def fault_clear() -> None:
    """Remove every armed fault."""
    removed = _control().clear_faults()
    emit(
        "SimFaultClear",
        {"removed": removed},
        lambda: session().console.print(f"removed {removed} fault(s)"),
    )


@app.command("permissions")
def permissions(mode: Annotated[str, typer.Argument(help="allow, deny or root-only")]) -> None:
    """Who may change MIG: everyone (allow), nobody (deny), or root only."""
    _control().set_permissions(mode)
    emit(
        "SimPermissions",
        {"permissions": mode},
        lambda: session().console.print(f"permissions: {mode}"),
    )


@app.command("reset-state")
def reset_state() -> None:
    """Forget the simulated machine: the next command starts it fresh."""
    control = _control()
    path = control.state_path
    control.remove_state()
    emit(
        "SimResetState", {"removed": str(path)}, lambda: session().console.print(f"removed {path}")
    )
