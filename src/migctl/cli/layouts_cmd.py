"""Verbs about layouts: ``plan``, ``apply``, ``assert``, ``export``, ``recover``, ``split``.

Why this exists: users describe what they want (a layout file, or an intent: split N
ways, size by need, a demand mix); migctl works out where every instance goes, shows the
plan with what it would disturb, changes only what must change, and can always undo.
Through the migctl daemon, ``plan``, ``apply`` and ``split`` send the same targets to it
(``cli/remote_layouts.py``); ``recover`` runs on the GPU host. Layout files are resolved
in ``cli/layout_files.py``; ``assert`` and ``export`` live in ``cli/compare_cmd.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from migctl.cli.apply_report import after_change, raise_for, report_apply
from migctl.cli.gpus import GpuOption
from migctl.cli.output import emit, note
from migctl.cli.session import session
from migctl.errors import NotSupportedError, UsageError

if TYPE_CHECKING:
    from migctl.engine.intents import IntentResult
    from migctl.layout import MachineGpu
    from migctl.model import GpuModel
    from migctl.node.layout_files import FileTargets
    from migctl.planner import CurrentGpu, DesiredLayout

FileOption = Annotated[
    Path | None, typer.Option("--file", "-f", help="Layout file (native or mig-parted).")
]
ConfigOption = Annotated[
    str | None, typer.Option("--config", "-c", help="Which named layout in the file.")
]
MAX_OFFLINE_GPUS = 1024  # plan --model --gpus: more GPUs than any host, as the API's gpus list
ForceOption = Annotated[
    bool, typer.Option("--force", help="Also destroy busy instances (leased or running).")
]


def gpu_models(gpu: str | None, model: str | None, count: int) -> tuple[dict[int, GpuModel], bool]:
    """The GPUs to plan for: a catalog model offline, or the current machine's."""
    current = session()
    if model is not None:
        found = current.catalog.get_mig(model)
        return dict.fromkeys(range(count), found), True
    if (client := current.daemon) is not None:
        from migctl.cli import remote_layouts

        return remote_layouts.models(remote_layouts.snapshot(client), gpu), False
    from migctl.inventory import resolve_gpus

    backend = current.backend
    return {i: backend.live_model(i) for i in resolve_gpus(backend, gpu)}, False


def _intent(
    models: dict[int, GpuModel],
    split_n: int | None,
    memory: str | None,
    sms: int | None,
    share: float | None,
    count: int | None,
    demand: str | None,
) -> IntentResult | None:
    from migctl.engine import intents
    from migctl.sizes import parse_memory_mib

    chosen = [x for x in (split_n, demand, memory or sms or share) if x]
    if len(chosen) > 1:
        raise UsageError("choose one of --split, --demand, or --memory/--sms/--share")
    if chosen:
        models = _with_mig(models)
    if split_n is not None:
        return intents.split_layouts(models, split_n)
    if demand is not None:
        return intents.demand_layouts(models, demand)
    if memory or sms or share:
        return intents.sized_layouts(
            models,
            memory_mib=None if memory is None else parse_memory_mib(memory),
            sms=sms,
            share=None if share is None else share / 100 if share > 1 else share,
            count=count,
        )
    return None


def _with_mig(models: dict[int, GpuModel]) -> dict[int, GpuModel]:
    """The GPUs an intent can shape; refused when the chosen GPUs have no MIG at all."""
    capable = {g: m for g, m in models.items() if m.mig_capable}
    if models and not capable:
        named = ", ".join(f"GPU {g} ({m.nvidia_smi_name})" for g, m in sorted(models.items()))
        raise NotSupportedError(
            f"{named} does not support MIG: there is nothing to split or size",
            hint="choose GPUs with MIG with -i (`migctl list`: MIG on/off; n/a: no MIG)",
        )
    return capable


def layout_file_targets(
    path: Path, config: str | None, models: dict[int, GpuModel], gpu: str | None, offline: bool
) -> FileTargets:
    """The file resolved against the whole machine, for the GPUs ``-i`` chose (``models``)."""
    import dataclasses

    from migctl.node.layout_files import file_targets, parse_layout
    from migctl.schemas.layouts import LayoutTarget

    whole = models if gpu is None or offline else gpu_models(None, None, 0)[0]
    target = LayoutTarget.from_file(path, config)
    layout = parse_layout(target.text, config, target.source, session().catalog)
    found = file_targets(layout, _machine(whole, offline), models)
    if found.mig_parted and not offline and found.targets:
        from migctl.engine.export import current_layouts
        from migctl.layout.bridge import keep_matching_counts

        current = current_layouts(session().reader, sorted(found.targets))
        kept = keep_matching_counts(found.targets, current, models)
        found = dataclasses.replace(found, targets=kept)
    return found


def _machine(models: dict[int, GpuModel], offline: bool) -> list[MachineGpu]:
    """The machine as the layout sees it, with the PCI ids the driver reports."""
    from migctl.layout import MachineGpu

    if offline:
        return [MachineGpu(index, model) for index, model in sorted(models.items())]
    infos = {info.index: info for info in session().reader.gpus()}
    machine = []
    for index, model in sorted(models.items()):
        info = infos.get(index)
        if info is None:
            machine.append(MachineGpu(index, model))
        else:  # a device id of 0: not reported (an older daemon)
            machine.append(
                MachineGpu(index, model, info.pci_device_id or None, info.pci_subsystem_id)
            )
    return machine


def _targets(
    models: dict[int, GpuModel],
    file: Path | None,
    config: str | None,
    intent: IntentResult | None,
    gpu: str | None = None,
    *,
    offline: bool = False,
) -> tuple[dict[int, DesiredLayout], tuple[str, ...]]:
    if file is not None and intent is not None:
        raise UsageError("give a layout file or an intent, not both")
    if file is not None:
        found = layout_file_targets(file, config, models, gpu, offline)
        return found.targets, found.notes()
    if intent is not None:
        return intent.targets, intent.reasons
    raise UsageError("say what you want: -f LAYOUT.yaml, --split N, --demand ..., or --memory ...")


def _offline_currents(models: dict[int, GpuModel]) -> dict[int, CurrentGpu]:
    from migctl.planner import CurrentGpu

    return {gpu: CurrentGpu(gpu, (), mig_enabled=False) for gpu in models}


def plan(
    file: FileOption = None,
    config: ConfigOption = None,
    gpu: GpuOption = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Plan offline for this GPU model.")
    ] = None,
    gpus: Annotated[
        int,
        typer.Option(
            "--gpus", min=1, max=MAX_OFFLINE_GPUS, help="With --model: how many such GPUs."
        ),
    ] = 1,
    split_n: Annotated[
        int | None, typer.Option("--split", help="N equal instances per GPU.")
    ] = None,
    memory: Annotated[
        str | None,
        typer.Option(
            "--memory", help="Memory each instance needs: 12GiB = 12G, 12GB (decimal), 12288 (MiB)."
        ),
    ] = None,
    sms: Annotated[int | None, typer.Option("--sms", help="SMs each instance needs.")] = None,
    share: Annotated[
        float | None, typer.Option("--share", help="Share of the GPU each needs (70 or 0.7).")
    ] = None,
    count: Annotated[
        int | None, typer.Option("--count", help="With --memory/--sms/--share: how many.")
    ] = None,
    demand: Annotated[
        str | None, typer.Option("--demand", help='A mix, e.g. "4x12GiB,1x35GiB,2x1g.10gb".')
    ] = None,
    force: ForceOption = False,
) -> None:
    """Show the plan (numbered operations, before/after slice maps) without changing anything."""
    from migctl.cli.render_plan import print_plans
    from migctl.planner import reconfigure

    models, offline = gpu_models(gpu, model, gpus)
    intent = _intent(models, split_n, memory, sms, share, count, demand)
    targets, reasons = _targets(models, file, config, intent, gpu, offline=offline)
    if offline:
        currents = _offline_currents(models)
        plans = {g: reconfigure(models[g], currents[g], t, force=force) for g, t in targets.items()}
    elif (client := session().daemon) is not None:
        from migctl.cli.remote_layouts import show_plan

        show_plan(client, targets, reasons, force)
        return
    else:
        from migctl.engine.apply import plan_machine

        plans, currents = plan_machine(
            session().backend, targets, force=force, files=session().engine_files()
        )

    def render() -> None:
        note(reasons)
        print_plans(session().console, plans, currents, models)

    emit(
        "Plan",
        {"reasons": list(reasons), "plans": [p.to_dict() for _, p in sorted(plans.items())]},
        render,
    )


def apply_cmd(
    file: FileOption = None,
    config: ConfigOption = None,
    gpu: GpuOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan and what it would disturb.")
    ] = False,
    force: ForceOption = False,
    hooks: Annotated[
        Path | None,
        typer.Option(
            "--hooks", help="Hooks file: migctl's or mig-parted's (version: v1); docs/hooks.md."
        ),
    ] = None,
    split_n: Annotated[
        int | None, typer.Option("--split", help="N equal instances per GPU.")
    ] = None,
    demand: Annotated[str | None, typer.Option("--demand", help="A demand mix to fit.")] = None,
) -> None:
    """Make the machine match a layout: assert first, change only what must change."""
    from migctl.engine.apply import apply
    from migctl.engine.hooks_file import ApplyContext, load_hooks

    models, _ = gpu_models(gpu, None, 0)
    intent = _intent(models, split_n, None, None, None, None, demand)
    targets, reasons = _targets(models, file, config, intent, gpu)
    if (client := session().daemon) is not None:
        from migctl.cli import remote_layouts

        if hooks is not None:
            remote_layouts.refuse_hooks()
        remote_layouts.apply(client, targets, reasons, force=force, dry_run=dry_run)
        return
    context = ApplyContext(
        config_file="" if file is None else str(file),
        selected_config=config or "",
        hooks_file="" if hooks is None else str(hooks),
    )
    loaded = load_hooks(hooks, context)
    outcome = apply(
        session().backend,
        targets,
        force=force,
        dry_run=dry_run,
        hooks=loaded,
        files=session().engine_files(),
    )
    report_apply(outcome, reasons)
    after_change(outcome)
    raise_for(outcome)


def _gpu_count() -> int:
    if (client := session().daemon) is not None:
        from migctl.cli import remote_layouts

        return len(remote_layouts.snapshot(client).views)
    return len(session().backend.gpus())


def split_cmd(
    n: Annotated[int, typer.Argument(help="How many equal instances.")],
    gpu: GpuOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan.")] = False,
    force: ForceOption = False,
) -> None:
    """Split GPUs into N equal instances (the largest profile that allows N), and apply it."""
    from migctl.engine.apply import apply

    client = session().daemon
    if gpu is None and _gpu_count() > 1:
        raise UsageError("say which GPUs to split with -i (e.g. -i 0 or -i all)")
    models, _ = gpu_models(gpu, None, 0)
    intent = _intent(models, n, None, None, None, None, None)
    assert intent is not None
    if client is not None:
        from migctl.cli import remote_layouts

        remote_layouts.apply(client, intent.targets, intent.reasons, force=force, dry_run=dry_run)
        return
    outcome = apply(
        session().backend,
        intent.targets,
        force=force,
        dry_run=dry_run,
        files=session().engine_files(),
    )
    report_apply(outcome, intent.reasons)
    after_change(outcome)
    raise_for(outcome)


def recover_cmd(
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Restore the state from before it.")
    ] = False,
) -> None:
    """Repair an interrupted apply: complete it (default) or roll it back."""
    from migctl.engine.recover import recover

    result = recover(session().backend, rollback=rollback, files=session().engine_files())
    data: dict[str, Any] = {
        "mode": result.mode,
        "found": None if result.found is None else result.found.to_dict(),
    }
    if result.outcome is not None:
        from migctl.schemas.reports import ApplyResultOut

        data["outcome"] = ApplyResultOut.of_outcome(result.outcome).model_dump(mode="json")

    def render() -> None:
        if result.found is None:
            session().console.print("no interrupted apply: nothing to recover")
            return
        done = "rolled back" if result.mode == "rollback" else "completed"
        session().console.print(
            f"found an apply started {result.found.started_at} by PID {result.found.pid}, "
            f"{result.found.done}/{len(result.found.ops)} operations done; {done}"
        )

    emit("Recover", data, render)
    if result.outcome is not None:
        after_change(result.outcome)
        raise_for(result.outcome)


def register(app: typer.Typer) -> None:
    from migctl.cli.compare_cmd import assert_cmd, export_cmd

    app.command("plan")(plan)
    app.command("apply")(apply_cmd)
    app.command("assert")(assert_cmd)
    app.command("export")(export_cmd)
    app.command("recover")(recover_cmd)
    app.command("split")(split_cmd)
