"""Verbs about instances: ``profiles`` (-lgip/-lgipp/-lcip), ``gi`` and ``ci`` create/list/destroy.

Why this exists: the ``nvidia-smi mig`` workflow, with placements decided by migctl
(whole request at once), refusals that say what fits instead, and destroys that never
touch busy instances. Each verb calls the session's node (this host, or the migctl daemon,
where changes are admin jobs) and renders what it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.gpus import GpuOption
from migctl.cli.output import emit, gib, note, placements_text, print_rows, table, value
from migctl.cli.selection import single_gpu, target_gpus
from migctl.cli.session import session
from migctl.errors import UsageError

if TYPE_CHECKING:
    from migctl.model import ComputeInstance, GpuInstance, GpuProfiles
    from migctl.schemas.listings import CiProfilesOut, DestroyedListOut, ProfilesOut
    from migctl.schemas.machine import ComputeInstancesOut, DestroyedOut, GpuInstancesOut


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
    node = session().node
    found = [node.profiles(i) for i in _mig_gpus(gpu)]
    differences = {p.gpu_index: _catalog_differences(p) for p in found}

    def render() -> None:
        _render_profiles(found, placements)
        for index, diffs in differences.items():
            note(f"GPU {index} differs from the catalog: {d}" for d in diffs)
        if not found:
            note(["no MIG-capable GPU selected"])

    def document() -> ProfilesOut:
        from migctl.schemas.listings import GpuProfileListOut, ProfilesOut

        return ProfilesOut(
            gpus=[GpuProfileListOut.with_differences(p, differences[p.gpu_index]) for p in found]
        )

    emit("GpuInstanceProfiles", document, render)


def _mig_gpus(gpu: str | None) -> list[int | str]:
    """The MIG GPUs of a selection (all of them by default)."""
    from migctl.cli.selection import every_gpu

    if every_gpu(gpu):
        return sorted(session().node.models(gpu))
    return target_gpus(gpu)


def _catalog_differences(found: GpuProfiles) -> list[str]:
    """How a GPU's live geometry differs from the catalog's entry for it (none if unknown)."""
    from migctl.catalog.compare import compare_models

    known = session().catalog.find(found.model.key)
    return [] if known is None else compare_models(found.model, known)


PROFILE_COLUMNS = ("GPU", "Name", "ID", "Free/Total", "Memory GiB", "P2P", "SM")
ENGINE_COLUMNS = ("DEC", "ENC", "CE", "JPEG", "OFA")


def _render_profiles(found: list[GpuProfiles], placements: bool) -> None:
    rows = table(*PROFILE_COLUMNS, *ENGINE_COLUMNS, *(["Placements"] if placements else []))
    for gpu in found:
        for status in gpu.gi_profiles:
            p, e = status.profile, status.profile.engines
            cells = [
                str(gpu.gpu_index),
                f"MIG {p.name}",
                value(p.id),
                f"{status.free}/{status.total}",
                gib(p.memory_mib),
                "No",
                value(p.sm_count),
                *(value(x) for x in (e.dec, e.enc, e.ce, e.jpeg, e.ofa)),
            ]
            if placements:
                cells.append(placements_text(p.placements))
            rows.add_row(*cells)
    print_rows(rows)


def _ci_profiles(gpu: str | None, gi_id: int) -> None:
    found = session().node.profiles(single_gpu(gpu))
    if gi_id not in found.ci_profiles:
        from migctl.errors import NotFoundError

        raise NotFoundError(
            f"GPU {found.gpu_index} has no GPU instance {gi_id}",
            hint="see the GPU instances with `migctl gi list`",
            context={"gpu": found.gpu_index, "gi": gi_id},
        )
    statuses = found.ci_profiles[gi_id]

    def render() -> None:
        rows = table("GPU", "GI", "Name", "ID", "Free/Total", "SM", "Placements")
        for status in statuses:
            p = status.profile
            star = "*" if p.is_default else ""
            rows.add_row(
                str(found.gpu_index),
                str(gi_id),
                f"MIG {p.name}",
                f"{p.nvml_index}{star}",
                f"{status.free}/{status.total}",
                value(p.sm_count),
                placements_text(p.placements),
            )
        print_rows(rows)
        note(["* marks the default compute instance (spans the whole GPU instance)"])

    def document() -> CiProfilesOut:
        from migctl.schemas.listings import CiProfilesOut

        return CiProfilesOut.of(found, gi_id)

    emit("ComputeInstanceProfiles", document, render)


gi_app = typer.Typer(help="GPU instances: create, list, destroy.", no_args_is_help=True)
ci_app = typer.Typer(help="Compute instances: create, list, destroy.", no_args_is_help=True)


def _with_placement(profiles_text: str, placement: int | None) -> str:
    """``--placement N`` for a single profile: ``PROFILE:N``."""
    if placement is None:
        return profiles_text
    tokens = [t.strip() for t in profiles_text.split(",")]
    if len(tokens) != 1 or ":" in tokens[0]:
        raise UsageError(
            "--placement applies to exactly one profile", hint="or write PROFILE:START in the list"
        )
    return f"{tokens[0]}:{placement}"


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
    text = _with_placement(profiles_text, placement)
    node = session().node
    created = [
        gi
        for index in target_gpus(gpu)
        for gi in node.create_gpu_instances(index, text, with_ci=default_ci)
    ]

    def render() -> None:
        ci = " with its default compute instance" if default_ci else ""
        for gi in created:
            session().console.print(
                f"GPU {gi.gpu_index}: created GPU instance {gi.id} ({gi.profile_name}) "
                f"at {gi.placement}{ci}"
            )

    emit("GpuInstancesCreated", lambda: _gis_out(created), render)


def _gis_out(found: list[GpuInstance]) -> GpuInstancesOut:
    from migctl.schemas.machine import GiOut, GpuInstancesOut

    return GpuInstancesOut(gpu_instances=[GiOut.of(gi) for gi in found])


def _cis_out(found: list[ComputeInstance]) -> ComputeInstancesOut:
    from migctl.schemas.machine import ComputeInstanceOut, ComputeInstancesOut

    return ComputeInstancesOut(compute_instances=[ComputeInstanceOut.of(ci) for ci in found])


@gi_app.command("list")
def gi_list(gpu: GpuOption = None) -> None:
    """GPU instances with their profiles and placements (like -lgi)."""
    views = session().node.inventory(gpu).gpus
    found = [instance.gi for view in views for instance in view.instances]

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

    emit("GpuInstanceList", lambda: _gis_out(found), render)


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
    if bool(ids) == all_:
        raise UsageError("say which GPU instances: --id N (repeatable) or --all")
    node = session().node
    targets = target_gpus(gpu) if all_ else [single_gpu(gpu)]
    destroyed = [(i, node.destroy_gpu_instances(i, None if all_ else ids)) for i in targets]

    def render() -> None:
        for index, gi_ids in destroyed:
            for gi_id in gi_ids:
                session().console.print(f"GPU {index}: destroyed GPU instance {gi_id}")
        if not any(gi_ids for _, gi_ids in destroyed):
            note(["nothing to destroy"])

    def document() -> DestroyedListOut:
        from migctl.schemas.listings import DestroyedListOut
        from migctl.schemas.machine import DestroyedOut

        return DestroyedListOut(
            destroyed=[DestroyedOut(gpu=_index(i), ids=gi_ids) for i, gi_ids in destroyed]
        )

    emit("Destroyed", document, render)


def _index(gpu: int | str) -> int:
    """A GPU named by index (as printed); a UUID or bus id is looked up once, for output."""
    if isinstance(gpu, int) or gpu.isdigit():
        return int(gpu)
    return session().node.inventory(gpu).gpus[0].info.index


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
    created = session().node.create_compute_instances(single_gpu(gpu), gi, profiles_text)

    def render() -> None:
        for ci in created:
            session().console.print(
                f"GPU {ci.gpu_index}: created compute instance {ci.id} ({ci.profile_name}) "
                f"in GPU instance {gi} at {ci.placement}"
            )

    emit("ComputeInstancesCreated", lambda: _cis_out(created), render)


@ci_app.command("list")
def ci_list(
    gpu: GpuOption = None,
    gi: Annotated[int | None, typer.Option("--gi", help="Only this GPU instance.")] = None,
) -> None:
    """Compute instances (like -lci)."""
    views = session().node.inventory(gpu).gpus
    found = [
        ci
        for view in views
        for instance in view.instances
        if gi is None or instance.gi.id == gi
        for ci in instance.cis
    ]

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

    emit("ComputeInstanceList", lambda: _cis_out(found), render)


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
    if bool(ids) == all_:
        raise UsageError("say which compute instances: --id N (repeatable) or --all")
    index = single_gpu(gpu)
    destroyed = session().node.destroy_compute_instances(index, gi, None if all_ else ids)

    def render() -> None:
        for ci_id in destroyed:
            session().console.print(
                f"GPU {index}: destroyed compute instance {ci_id} of GPU instance {gi}"
            )

    def document() -> DestroyedOut:
        from migctl.schemas.machine import DestroyedOut

        return DestroyedOut(gpu=_index(index), gi_id=gi, ids=destroyed)

    emit("Destroyed", document, render)


def register(app: typer.Typer) -> None:
    app.command("profiles")(profiles)
    app.add_typer(gi_app, name="gi")
    app.add_typer(ci_app, name="ci")
