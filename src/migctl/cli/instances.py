"""Verbs about instances: ``profiles`` (-lgip/-lgipp/-lcip), ``gi`` and ``ci`` create/list/destroy.

Why this exists: the ``nvidia-smi mig`` workflow, with placements decided by migctl
(whole request at once), refusals that say what fits instead, and destroys that never
touch busy instances.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli import serialize
from migctl.cli.gpus import GpuOption
from migctl.cli.output import emit, gib, note, placements_text, print_rows, table, value
from migctl.cli.session import session
from migctl.errors import UsageError

if TYPE_CHECKING:
    from migctl.backends.base import Backend


def profiles(
    gpu: GpuOption = None,
    placements: Annotated[
        bool, typer.Option("--placements", help="Show possible placements (-lgipp).")
    ] = False,
    ci: Annotated[
        int | None,
        typer.Option("--ci", help="Compute instance profiles of this GPU instance (-lcip)."),
    ] = None,
) -> None:
    """GPU instance profiles with free/total counts, like nvidia-smi mig -lgip."""
    if ci is not None:
        _ci_profiles(gpu, ci)
        return
    from migctl.catalog.compare import compare_models
    from migctl.inventory import resolve_gpus

    backend = session().reader
    indices = [i for i in resolve_gpus(backend, gpu) if backend.gpu(i).mig is not None]
    statuses = {i: backend.gi_profiles(i) for i in indices}
    differences = {}
    for index in indices:
        known = backend.catalog_model(index)
        if known is not None:
            differences[index] = compare_models(backend.live_model(index), known)

    def render() -> None:
        columns = [
            "GPU",
            "Name",
            "ID",
            "Free/Total",
            "Memory GiB",
            "P2P",
            "SM",
            "DEC",
            "ENC",
            "CE",
            "JPEG",
            "OFA",
        ]
        if placements:
            columns.append("Placements")
        rows = table(*columns)
        for index, items in statuses.items():
            for status in items:
                p, e = status.profile, status.profile.engines
                cells = [
                    str(index),
                    f"MIG {p.name}",
                    value(p.id),
                    f"{status.free}/{status.total}",
                    gib(p.memory_mib),
                    "No",
                    value(p.sm_count),
                    value(e.dec),
                    value(e.enc),
                    value(e.ce),
                    value(e.jpeg),
                    value(e.ofa),
                ]
                if placements:
                    cells.append(placements_text(p.placements))
                rows.add_row(*cells)
        print_rows(rows)
        for index, diffs in differences.items():
            note(f"GPU {index} differs from the catalog: {d}" for d in diffs)
        if not indices:
            note(["no MIG-capable GPU selected"])

    data = [
        {
            "gpu": i,
            "profiles": [
                {**serialize.gi_profile(s.profile), "free": s.free, "total": s.total} for s in items
            ],
            "catalog_differences": differences.get(i, []),
        }
        for i, items in statuses.items()
    ]
    emit("GpuInstanceProfiles", {"gpus": data}, render)


def _refresh_cdi() -> None:
    """MIG devices changed: keep a CDI spec in use current (see tenancy.cdi)."""
    session().refresh_cdi()


def _target_gpus(gpu: str | None, backend: Backend | None = None) -> list[int]:
    """GPUs a change applies to: ``-i`` as given; without it, the only GPU there is."""
    from migctl.inventory import resolve_gpus

    chosen = resolve_gpus(backend or session().backend, gpu)
    if gpu is None and len(chosen) > 1:
        raise UsageError(
            f"this machine has {len(chosen)} GPUs: say which with -i",
            hint="e.g. -i 0, -i 0,1 or -i all",
        )
    return chosen


def _single_gpu(gpu: str | None, backend: Backend | None = None) -> int:
    chosen = _target_gpus(gpu, backend)
    if len(chosen) != 1:
        raise UsageError("this command works on one GPU", hint="choose it with -i GPU (e.g. -i 0)")
    return chosen[0]


def _ci_profiles(gpu: str | None, gi_id: int) -> None:
    reader = session().reader
    index = _single_gpu(gpu, reader)
    statuses = reader.ci_profiles(index, gi_id)

    def render() -> None:
        rows = table("GPU", "GI", "Name", "ID", "Free/Total", "SM", "Placements")
        for status in statuses:
            p = status.profile
            star = "*" if p.is_default else ""
            rows.add_row(
                str(index),
                str(gi_id),
                f"MIG {p.name}",
                f"{p.nvml_index}{star}",
                f"{status.free}/{status.total}",
                value(p.sm_count),
                placements_text(p.placements),
            )
        print_rows(rows)
        note(["* marks the default compute instance (spans the whole GPU instance)"])

    data = [{**serialize.ci_profile(s.profile), "free": s.free, "total": s.total} for s in statuses]
    emit("ComputeInstanceProfiles", {"gpu": index, "gi_id": gi_id, "profiles": data}, render)


gi_app = typer.Typer(help="GPU instances: create, list, destroy.", no_args_is_help=True)
ci_app = typer.Typer(help="Compute instances: create, list, destroy.", no_args_is_help=True)


@gi_app.command("create")
def gi_create(
    profiles_text: Annotated[
        str,
        typer.Argument(
            metavar="PROFILES",
            help="Names or ids, comma separated, each with an optional :START "
            "(e.g. 9,19:6,1g.10gb).",
        ),
    ],
    gpu: GpuOption = None,
    placement: Annotated[
        int | None, typer.Option("--placement", help="Start slice (one profile only).")
    ] = None,
    default_ci: Annotated[
        bool,
        typer.Option("-C", "--default-ci", help="Also create each GI's default compute instance."),
    ] = False,
) -> None:
    """Create GPU instances; migctl places the whole request so the order never matters."""
    from migctl.workflow import ProfileRequest, create_gpu_instances, parse_profile_requests

    backend = session().backend
    created = []
    for index in _target_gpus(gpu):
        requests = parse_profile_requests(backend.live_model(index), profiles_text, index)
        if placement is not None:
            if len(requests) != 1 or requests[0].start is not None:
                raise UsageError(
                    "--placement applies to exactly one profile",
                    hint="or write PROFILE:START in the list",
                )
            requests = [ProfileRequest(requests[0].profile, placement)]
        created.extend(create_gpu_instances(backend, index, requests, with_ci=default_ci))
    _refresh_cdi()

    def render() -> None:
        for item in created:
            gi = item.gi
            line = (
                f"GPU {gi.gpu_index}: created GPU instance {gi.id} ({gi.profile_name}) "
                f"at {gi.placement}"
            )
            if item.ci is not None:
                line += f", compute instance {item.ci.id} ({item.ci.profile_name})"
            session().console.print(line)

    data = [
        {
            "gpu_instance": serialize.gpu_instance(c.gi),
            "compute_instance": serialize.compute_instance(c.ci) if c.ci else None,
        }
        for c in created
    ]
    emit("Created", {"created": data}, render)


@gi_app.command("list")
def gi_list(gpu: GpuOption = None) -> None:
    """GPU instances with their profiles and placements (like -lgi)."""
    from migctl.inventory import resolve_gpus

    backend = session().reader
    found = [gi for i in resolve_gpus(backend, gpu) for gi in backend.gpu_instances(i)]

    def render() -> None:
        rows = table("GPU", "GI", "Name", "Profile ID", "Placement", "Memory GiB")
        for gi in found:
            rows.add_row(
                str(gi.gpu_index),
                str(gi.id),
                f"MIG {gi.profile_name}",
                str(gi.profile_id),
                str(gi.placement),
                gib(gi.memory_mib),
            )
        print_rows(rows)
        if not found:
            note(["no GPU instances"])

    emit("GpuInstanceList", {"gpu_instances": [serialize.gpu_instance(g) for g in found]}, render)


@gi_app.command("destroy")
def gi_destroy(
    gpu: GpuOption = None,
    ids: Annotated[
        list[int] | None,
        typer.Option("--id", "--gi", help="GPU instance id (repeatable), like -gi."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Destroy every GPU instance on the GPU.")
    ] = False,
) -> None:
    """Destroy GPU instances (their compute instances first); busy ones are refused."""
    from migctl.workflow import destroy_gpu_instances

    if bool(ids) == all_:
        raise UsageError("say which GPU instances: --id N (repeatable) or --all")
    targets = _target_gpus(gpu) if all_ else [_single_gpu(gpu)]
    destroyed = {
        i: destroy_gpu_instances(session().backend, i, None if all_ else ids) for i in targets
    }
    _refresh_cdi()

    def render() -> None:
        for index, gi_ids in destroyed.items():
            for gi_id in gi_ids:
                session().console.print(f"GPU {index}: destroyed GPU instance {gi_id}")
        if not any(destroyed.values()):
            note(["nothing to destroy"])

    data = [{"gpu": i, "gpu_instances": ids_} for i, ids_ in destroyed.items()]
    emit("Destroyed", {"destroyed": data}, render)


@ci_app.command("create")
def ci_create(
    gi: Annotated[int, typer.Option("--gi", help="The GPU instance to create in.")],
    profiles_text: Annotated[
        str | None,
        typer.Argument(metavar="[PROFILES]", help="CI profile names or ids; default: the full CI."),
    ] = None,
    gpu: GpuOption = None,
) -> None:
    """Create compute instances in a GPU instance (like -cci)."""
    from migctl.workflow import create_compute_instances

    index = _single_gpu(gpu)
    tokens = [t.strip() for t in profiles_text.split(",")] if profiles_text else None
    created = create_compute_instances(session().backend, index, gi, tokens)
    _refresh_cdi()

    def render() -> None:
        for ci in created:
            session().console.print(
                f"GPU {index}: created compute instance {ci.id} ({ci.profile_name}) "
                f"in GPU instance {gi} at {ci.placement}"
            )

    emit("Created", {"compute_instances": [serialize.compute_instance(c) for c in created]}, render)


@ci_app.command("list")
def ci_list(
    gpu: GpuOption = None,
    gi: Annotated[int | None, typer.Option("--gi", help="Only this GPU instance.")] = None,
) -> None:
    """Compute instances (like -lci)."""
    from migctl.inventory import resolve_gpus

    backend = session().reader
    found = []
    for index in resolve_gpus(backend, gpu):
        for instance in backend.gpu_instances(index):
            if gi is None or instance.id == gi:
                found.extend(backend.compute_instances(index, instance.id))

    def render() -> None:
        rows = table("GPU", "GI", "CI", "Name", "Profile ID", "Placement")
        for ci in found:
            rows.add_row(
                str(ci.gpu_index),
                str(ci.gi_id),
                str(ci.id),
                f"MIG {ci.profile_name}",
                str(ci.profile_id),
                str(ci.placement),
            )
        print_rows(rows)
        if not found:
            note(["no compute instances"])

    emit(
        "ComputeInstanceList",
        {"compute_instances": [serialize.compute_instance(c) for c in found]},
        render,
    )


@ci_app.command("destroy")
def ci_destroy(
    gi: Annotated[int, typer.Option("--gi", help="The GPU instance.")],
    gpu: GpuOption = None,
    ids: Annotated[
        list[int] | None,
        typer.Option("--id", "--ci", help="Compute instance id (repeatable), like -ci."),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Every compute instance of the GPU instance.")
    ] = False,
) -> None:
    """Destroy compute instances (refused while processes run on them)."""
    from migctl.workflow import destroy_compute_instances

    if bool(ids) == all_:
        raise UsageError("say which compute instances: --id N (repeatable) or --all")
    index = _single_gpu(gpu)
    destroyed = destroy_compute_instances(session().backend, index, gi, None if all_ else ids)
    _refresh_cdi()

    def render() -> None:
        for ci_id in destroyed:
            session().console.print(
                f"GPU {index}: destroyed compute instance {ci_id} of GPU instance {gi}"
            )

    emit("Destroyed", {"gpu": index, "gi_id": gi, "compute_instances": destroyed}, render)


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles)
    app.add_typer(gi_app, name="gi")
    app.add_typer(ci_app, name="ci")
