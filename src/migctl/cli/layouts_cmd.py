"""Verbs about layouts: ``plan``, ``apply``, ``assert``, ``export``, ``recover``, ``split``.

Why this exists: users describe what they want (a layout file, or an intent: split N
ways, size by need, a demand mix); migctl works out where every instance goes, shows the
plan with what it would disturb, changes only what must change, and can always undo.
The options become one target (``migctl.schemas.layouts``), which the session's node resolves
and plans (the daemon resolves it exactly so); ``plan --model`` plans offline, without a
machine. ``assert`` and ``export`` live in ``cli/compare_cmd.py``, the reports in
``cli/apply_report.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.apply_report import raise_for, report_apply, report_plan
from migctl.cli.gpus import GpuOption
from migctl.cli.output import emit
from migctl.cli.session import session
from migctl.errors import UsageError

if TYPE_CHECKING:
    from migctl.schemas.layouts import Target
    from migctl.schemas.reports import RecoverReportOut

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


def target_of(
    file: Path | None,
    config: str | None,
    *,
    split_n: int | None = None,
    demand: str | None = None,
    memory: str | None = None,
    sms: int | None = None,
    share: float | None = None,
    count: int | None = None,
) -> Target:
    """The one target the options describe (a layout file, or one intent)."""
    from migctl.cli.requests import checked

    intents = [x for x in (split_n, demand, memory or sms or share) if x]
    if len(intents) > 1:
        raise UsageError("choose one of --split, --demand, or --memory/--sms/--share")
    if file is not None and intents:
        raise UsageError("give a layout file or an intent, not both")
    if file is not None:
        from migctl.schemas.layouts import LayoutTarget

        return LayoutTarget.from_file(file, config)
    if split_n is not None:
        from migctl.schemas.layouts import SplitTarget

        return checked(SplitTarget, "--split", n=split_n)
    if demand is not None:
        from migctl.schemas.layouts import DemandTarget

        return checked(DemandTarget, "--demand", demand=demand)
    if memory or sms or share:
        return _size_target(memory, sms, share, count)
    raise UsageError("say what you want: -f LAYOUT.yaml, --split N, --demand ..., or --memory ...")


def _size_target(
    memory: str | None, sms: int | None, share: float | None, count: int | None
) -> Target:
    from migctl.cli.requests import checked
    from migctl.schemas.layouts import SizeTarget
    from migctl.sizes import parse_memory_mib

    return checked(
        SizeTarget,
        "--memory/--sms/--share/--count",
        memory_mib=None if memory is None else parse_memory_mib(memory),
        sms=sms,
        share=None if share is None else share / 100 if share > 1 else share,
        count=count,
    )


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
    target = target_of(
        file, config, split_n=split_n, demand=demand, memory=memory, sms=sms, share=share,
        count=count,
    )  # fmt: skip
    if model is not None:
        from migctl.node.offline import plan_offline

        current = session()
        report = plan_offline(target, current.catalog.get_mig(model), gpus, current.catalog, force)
    else:
        report = session().node.plan(target, gpus=gpu, force=force)
    report_plan(report)


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
    target = target_of(file, config, split_n=split_n, demand=demand)
    loaded = None
    if hooks is not None:
        from migctl.engine.hooks_file import ApplyContext, load_hooks

        context = ApplyContext(
            config_file="" if file is None else str(file),
            selected_config=config or "",
            hooks_file=str(hooks),
        )
        loaded = load_hooks(hooks, context)
    outcome = session().node.apply(target, gpus=gpu, force=force, dry_run=dry_run, hooks=loaded)
    report_apply(outcome)
    raise_for(outcome)


def split_cmd(
    n: Annotated[int, typer.Argument(help="How many equal instances.")],
    gpu: GpuOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only show the plan.")] = False,
    force: ForceOption = False,
) -> None:
    """Split GPUs into N equal instances (the largest profile that allows N), and apply it."""
    target = target_of(None, None, split_n=n)
    node = session().node
    if gpu is None and len(node.models()) > 1:
        raise UsageError("say which GPUs to split with -i (e.g. -i 0 or -i all)")
    outcome = node.apply(target, gpus=gpu, force=force, dry_run=dry_run)
    report_apply(outcome)
    raise_for(outcome)


def recover_cmd(
    rollback: Annotated[
        bool, typer.Option("--rollback", help="Restore the state from before it.")
    ] = False,
) -> None:
    """Repair an interrupted apply: complete it (default) or roll it back."""
    report = session().node.recover(rollback=rollback)
    found = report.found

    def render() -> None:
        if found is None:
            session().console.print("no interrupted apply: nothing to recover")
            return
        done = "rolled back" if report.mode == "rollback" else "completed"
        session().console.print(
            f"found an apply started {found.started_at} by PID {found.pid}, "
            f"{found.done}/{found.total} operations done; {done}"
        )

    def document() -> RecoverReportOut:
        from migctl.schemas.reports import RecoverReportOut

        return RecoverReportOut.of(report)

    emit("Recover", document, render)
    if report.outcome is not None:
        raise_for(report.outcome)


def register(app: typer.Typer) -> None:
    from migctl.cli.compare_cmd import assert_cmd, export_cmd

    app.command("plan")(plan)
    app.command("apply")(apply_cmd)
    app.command("assert")(assert_cmd)
    app.command("export")(export_cmd)
    app.command("recover")(recover_cmd)
    app.command("split")(split_cmd)
