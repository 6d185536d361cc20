"""``plan``, ``apply`` and ``split`` through the migctl daemon.

Why this exists: on a shared server only the daemon changes MIG layouts, and only for admins.
The CLI works out the targets exactly as locally (layout files, ``--split``, ``--demand``,
``--memory``/``--sms``/``--share``, ``-i``), with the GPU models of the daemon's machine (its
inventory names each GPU's catalog model), and sends them as ``targets``: ``POST /v1/plan``
(anyone), ``POST /v1/apply`` (admins; a job, polled until it ends). Output and JSON are those of
the local verbs: a ``Plan``, or an ``ApplyResult`` with the engine's outcome; a refused user gets
the daemon's 403 as exit 4, a failed apply the same error class and exit code as locally.

Differences from local runs: ``--hooks`` is refused (hooks would run on the daemon's host as
root); the CDI spec on the GPU host is not refreshed by the CLI. Only ``cli/layouts_cmd.py``
imports this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from migctl.cli.apply_report import rollback_line
from migctl.cli.output import emit, note
from migctl.cli.session import session
from migctl.errors import InvalidStateError, NotSupportedError, ReadOnlyError

if TYPE_CHECKING:
    from migctl.cli.remote_view import Snapshot
    from migctl.model import GpuModel
    from migctl.planner import DesiredLayout, Plan
    from migctl.server.client import ServiceClient

Json = dict[str, Any]


def snapshot(client: ServiceClient) -> Snapshot:
    from migctl.cli.remote_view import read_snapshot

    return read_snapshot(client, session().catalog)


def models(found: Snapshot, gpu: str | None) -> dict[int, GpuModel]:
    """The chosen GPUs' catalog models (GPUs the catalog does not know cannot be planned)."""
    from migctl.inventory import select_gpus

    chosen = select_gpus([view.info for view in found.views], gpu)
    return {v.info.index: v.model for v in found.select(chosen) if v.model is not None}


def request_body(targets: Mapping[int, DesiredLayout], force: bool) -> Json:
    from migctl.engine.codec import targets_to_dict

    return {"targets": targets_to_dict(dict(targets)), "force": force}


def show_plan(
    client: ServiceClient,
    targets: Mapping[int, DesiredLayout],
    reasons: tuple[str, ...],
    force: bool,
) -> None:
    """``migctl plan`` through the daemon: ``POST /v1/plan``, printed like a local plan."""
    answer = client.request("POST", "/v1/plan", body=request_body(targets, force))
    plans = _decoded(answer["plans"])

    def render() -> None:
        note(reasons)
        _print_plans(client, plans)

    emit("Plan", {"reasons": list(reasons), "plans": answer["plans"]}, render)


def apply(
    client: ServiceClient,
    targets: Mapping[int, DesiredLayout],
    reasons: tuple[str, ...],
    *,
    force: bool,
    dry_run: bool,
) -> None:
    """``migctl apply``/``split`` through the daemon (admins); dry runs only plan."""
    if dry_run:
        answer = client.request("POST", "/v1/plan", body=request_body(targets, force))
        outcome = _dry_run_outcome(answer["plans"], answer.get("disturbs", {}))
    else:
        if session().read_only:
            raise ReadOnlyError(
                "--read-only refuses to apply layouts", hint="drop --read-only, or use --dry-run"
            )
        job = client.request("POST", "/v1/apply", body=request_body(targets, force))
        outcome = _job_outcome(client, job)
    _report(client, outcome, reasons)
    _raise_for(outcome)


def refuse_hooks() -> None:
    raise NotSupportedError(
        "--hooks is not available through the migctl daemon (hooks would run on the daemon's "
        "host as root)",
        hint="apply without --hooks, or run `migctl --local apply --hooks ...` as root on the "
        "GPU host",
    )


def _dry_run_outcome(plans: list[Json], disturbs: Json) -> Json:
    """The shape of a local ``ApplyOutcome.to_dict()`` for a dry run."""
    return {
        "dry_run": True,
        "noop": all(not plan["ops"] for plan in plans),
        "plans": plans,
        "executed": {},
        "pending": {},
        "recovered": None,
        "error": None,
        "rolled_back": False,
        "rollback_error": None,
        "disturbs": disturbs,
        "currents": [],
        "reasons": [],
        "soft": {},  # this daemon plans no soft shares
        "soft_done": 0,
    }


def _job_outcome(client: ServiceClient, job: Json) -> Json:
    """Wait for the apply job; its outcome (a failed apply still reports what it did)."""
    from migctl.cli.remote_gpus import finished

    done = client.wait_job(int(job["job_id"]))
    result = done.get("result")
    if isinstance(result, dict) and "plans" in result:
        return result
    finished(client, done)  # raises the job's error
    raise InvalidStateError(
        f"daemon job {done['job_id']} finished without an apply outcome",
        hint="see GET /v1/jobs/{id} (admins)",
    )


def _decoded(plans: list[Json]) -> dict[int, Plan]:
    from migctl.cli.remote_plans import plan_from_dict

    decoded = [plan_from_dict(plan) for plan in plans]
    return {plan.gpu_index: plan for plan in decoded}


def _print_plans(
    client: ServiceClient,
    plans: Mapping[int, Plan],
    disturbed: Mapping[int, list[str]] | None = None,
) -> None:
    """Plans with before/after maps; "before" is the daemon's inventory as of now."""
    from migctl.cli.remote_plans import current_from_view
    from migctl.cli.render_plan import print_plans

    found = snapshot(client)
    views = {view.info.index: view for view in found.select(plans)}
    currents = {gpu: current_from_view(view) for gpu, view in views.items()}
    gpu_models = {gpu: view.model for gpu, view in views.items() if view.model is not None}
    print_plans(session().console, plans, currents, gpu_models, disturbed)


def _report(client: ServiceClient, outcome: Json, reasons: tuple[str, ...]) -> None:
    console = session().console
    plans = _decoded(outcome["plans"])

    def render() -> None:
        note(reasons)
        if outcome["recovered"]:
            console.print(f"[yellow]found:[/yellow] {outcome['recovered']}")
        if outcome["noop"]:
            console.print("the machine already matches the layout: nothing to do")
            return
        if outcome["dry_run"]:
            console.print("[bold]dry run[/bold]: nothing was changed")
            disturbs = {int(gpu): lines for gpu, lines in outcome.get("disturbs", {}).items()}
            _print_plans(client, plans, disturbs)
            return
        for gpu, done in sorted(outcome["executed"].items(), key=lambda item: int(item[0])):
            total = len(plans[int(gpu)].ops)
            console.print(f"GPU {gpu}: {done} of {total} operation(s) done")
        if outcome["error"] is not None:
            rollback_line(console, outcome["error"]["message"], outcome["rollback_error"])

    emit("ApplyResult", outcome, render)


def _raise_for(outcome: Json) -> None:
    from migctl.extras import needed

    with needed("the daemon client", extra="server"):
        from migctl.server.client import error_from_body

    failure = outcome["rollback_error"] or outcome["error"]
    if failure is not None:
        raise error_from_body(failure, 500)
    if outcome["pending"]:
        from migctl.cli.apply_report import pending_error

        pending = {int(gpu): why for gpu, why in outcome["pending"].items()}
        gpus = ", ".join(map(str, sorted(pending)))
        raise pending_error(pending, f"GPU {gpus}: the layout waits for a MIG mode change")
