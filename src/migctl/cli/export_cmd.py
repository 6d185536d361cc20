"""Hand MIG devices to containers and schedulers: ``docker-args``, ``cdi``, ``k8s``, ``slurm``.

Why this exists: a MIG device is only useful once something runs on it, and most jobs run in a
container or under a scheduler. These verbs print (or write) the exact flags and files those
tools need for this machine's MIG devices; the formats and what cannot be known on a simulated
machine are described in ``migctl.tenancy`` (``cdi``, ``kubernetes``, ``slurm``) and in
docs/tenancy.md. ``docker-args`` and ``k8s export`` read the session's node (also through the
migctl daemon); ``cdi`` and ``slurm`` describe the GPU host's own device files and run there.
"""

from __future__ import annotations

import enum
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from migctl.cli.leases_cmd import LeaseDbOption
from migctl.cli.output import emit
from migctl.cli.session import session
from migctl.errors import InvalidStateError, NotFoundError, UsageError

if TYPE_CHECKING:
    from migctl.leases import Lease
    from migctl.schemas.exports import (
        CdiSpecOut,
        DockerArgsOut,
        KubernetesExportOut,
        SlurmGresOut,
    )
    from migctl.tenancy.environment import DockerArgs


class DockerForm(enum.StrEnum):
    GPUS = "gpus"
    ENV = "env"
    CDI = "cdi"


FORM_TEXT = {
    DockerForm.GPUS: "Docker's --gpus (needs the NVIDIA Container Toolkit)",
    DockerForm.ENV: "the NVIDIA container runtime, which reads NVIDIA_VISIBLE_DEVICES",
    DockerForm.CDI: "a CDI device (Docker 25+ with CDI, podman; `migctl cdi generate`)",
}

KindOption = Annotated[
    str, typer.Option("--kind", help="CDI kind (vendor/class) the devices are named under.")
]


def docker_args(
    lease: Annotated[
        int | None, typer.Option("--lease", "-l", help="The device of this lease (MIG or soft).")
    ] = None,
    device: Annotated[str | None, typer.Option("--device", "-d", help="This MIG-<uuid>.")] = None,
    form: Annotated[
        DockerForm, typer.Option("--form", help="gpus (default), env or cdi.")
    ] = DockerForm.GPUS,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show every form, labelled, with what it needs.")
    ] = False,
    kind: KindOption = "nvidia.com/gpu",
    lease_db: LeaseDbOption = None,
) -> None:
    """Print the `docker run` flags that give a container one MIG device, on one line.

    Use: docker run $(migctl docker-args --device MIG-...) IMAGE. gpus (default): --gpus
    device=MIG-... (Docker with the NVIDIA Container Toolkit); env: --runtime=nvidia -e
    NVIDIA_VISIBLE_DEVICES=MIG-...; cdi: --device KIND=MIG-... (needs a CDI spec: `migctl cdi
    generate`). A soft lease (--share) adds the MPS client setup to each form: --ipc=host, its
    MPS pipe directory mounted, the CUDA_MPS_* variables and --user of the holder. --explain
    labels all three; -o json gives them as argv lists.
    """
    from migctl.tenancy.environment import DockerArgs

    session().use_lease_db(lease_db)
    uuid, soft = _target_for(lease, device)
    forms = _docker_forms(uuid, soft, kind).forms()

    def render() -> None:
        if not explain:
            typer.echo(DockerArgs.shell(forms[form.value]))
            return
        for name, tokens in forms.items():
            line = DockerArgs.shell(tokens)
            session().console.print(f"{name:5} {line}   # {FORM_TEXT[DockerForm(name)]}")
        if soft is not None:
            session().console.print(f"# {SOFT_TEXT}")

    def document() -> DockerArgsOut:
        from migctl.schemas.exports import DockerArgsOut

        return DockerArgsOut(
            uuid=uuid,
            form=form.value,
            args=list(forms[form.value]),
            argv={name: list(tokens) for name, tokens in forms.items()},
            **({} if soft is None else _soft_fields(soft)),
        )

    emit("DockerArgs", document, render)


SOFT_TEXT = (
    "a soft device: its parent, plus --ipc=host (MPS clients share memory with the host's MPS "
    "server), the MPS pipe directory mounted at its own path, the share and memory limit, and "
    "--user of the holder (MPS serves one Unix user at a time)"
)


def _docker_forms(uuid: str, soft: Lease | None, kind: str) -> DockerArgs:
    from migctl.tenancy.environment import docker_args as make_args
    from migctl.tenancy.environment import soft_docker_args

    return make_args(uuid, kind) if soft is None else soft_docker_args(soft, kind)


def _soft_fields(lease: Lease) -> dict[str, object]:
    """What ``-o json`` adds for a soft device: which one, its MPS variables, the caveats."""
    from migctl.tenancy.environment import lease_environment

    env = lease_environment(lease)
    notes = [SOFT_TEXT]
    if lease.uid < 0:
        notes.append(
            "the holder's uid is unknown here, so no --user is given: run the container as "
            "the Unix user that holds the lease"
        )
    return {
        "device_kind": "soft",
        "soft_device": lease.uuid,
        "lease_id": lease.lease_id,
        "mps_environment": {k: v for k, v in env.items() if k.startswith("CUDA_MPS_")},
        "notes": notes,
    }


def _target_for(lease_id: int | None, device: str | None) -> tuple[str, Lease | None]:
    """The device the container gets (a MIG device, or a soft lease's parent) and, for a
    soft device, its lease."""
    from migctl.leases.types import SOFT_PREFIX

    if (lease_id is None) == (device is None):
        raise UsageError("say which device: --lease ID or --device MIG-<uuid>")
    if lease_id is not None:
        lease = _active_lease(lease_id)
        return lease.cuda_device, (lease if lease.soft else None)
    assert device is not None
    if device.startswith(SOFT_PREFIX):
        raise UsageError(
            f"{device} is a soft device: its container flags come from its lease",
            hint="use --lease ID (see `migctl lease list`)",
        )
    views = session().node.inventory().gpus
    known = {d.uuid for view in views for d in view.devices}
    if device not in known:
        raise NotFoundError(
            f"no MIG device {device} on this machine",
            hint="copy a MIG-<uuid> from `migctl list`",
        )
    return device, None


def _active_lease(lease_id: int) -> Lease:
    found = [x for x in session().node.leases(history=True) if x.lease_id == lease_id]
    if not found:
        raise NotFoundError(
            f"no lease {lease_id}", hint="see `migctl lease list`", context={"lease": lease_id}
        )
    lease = found[0]
    if not lease.active:
        raise InvalidStateError(
            f"lease {lease_id} on {lease.uuid} has ended ({lease.end_reason})",
            hint="acquire a new one: migctl lease acquire --profile ...",
        )
    return lease


cdi_app = typer.Typer(no_args_is_help=True, help="CDI specs for the MIG devices.")


@cdi_app.command("generate")
def cdi_generate(
    out: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Write the spec here (e.g. /etc/cdi/migctl.yaml)."),
    ] = None,
    kind: KindOption = "nvidia.com/gpu",
) -> None:
    """Print (or write) a CDI spec naming each MIG device `<gpu>:<mig>` and `MIG-<uuid>`."""
    from migctl.tenancy.cdi import generate_spec, render_spec, write_spec

    node = session().local_node
    spec = generate_spec(node.backend, kind, node.settings.proc_root)
    if out is not None:
        write_spec(spec, out)

    def render() -> None:
        if out is None:
            typer.echo(render_spec(spec), nl=False)
        else:
            count = len(spec["devices"]) // 2
            session().console.print(f"wrote {out}: {count} MIG devices as {kind}")

    def document() -> CdiSpecOut:
        from migctl.schemas.exports import CdiSpecOut

        return CdiSpecOut(path=None if out is None else str(out), spec=spec)

    emit("CdiSpec", document, render)


k8s_app = typer.Typer(no_args_is_help=True, help="Kubernetes (NVIDIA GPU Operator) exports.")


@k8s_app.command("export")
def k8s_export(
    layout_name: Annotated[
        str, typer.Option("--layout-name", help="mig-parted config name = node label value.")
    ] = "migctl",
    configmap: Annotated[str, typer.Option("--configmap", help="ConfigMap name.")] = (
        "migctl-mig-config"
    ),
    namespace: Annotated[str, typer.Option("--namespace", help="Its namespace.")] = (
        "gpu-operator"
    ),
    node: Annotated[
        str | None, typer.Option("--node", help="Node name for the label command.")
    ] = None,
) -> None:
    """The current layout as a mig-parted ConfigMap, node label, resources and a Pod (YAML)."""
    from migctl.tenancy.kubernetes import export_kubernetes, render_documents

    views = session().node.inventory().gpus
    result = export_kubernetes(views, layout_name, configmap, namespace)
    node_name = node or socket.gethostname()

    def render() -> None:
        header = [
            f"kubectl label node {node_name} {result.node_label} --overwrite",
            "resources advertised by the device plugin (mixed strategy):",
            *(f"  {name}: {count}" for name, count in result.resources.items()),
            *(f"note: {text}" for text in result.notes),
        ]
        documents = [result.configmap, *([result.pod] if result.pod else [])]
        text = render_documents(documents)
        typer.echo("".join(f"# {line}\n" for line in header) + "---\n" + text, nl=False)

    def document() -> KubernetesExportOut:
        from migctl.schemas.exports import KubernetesExportOut, NodeLabelOut
        from migctl.tenancy.kubernetes import MIG_CONFIG_LABEL

        return KubernetesExportOut(
            layout_name=result.layout_name,
            node_label=NodeLabelOut(key=MIG_CONFIG_LABEL, value=result.layout_name),
            mig_parted_config=result.mig_parted_config,
            configmap=result.configmap,
            resources=result.resources,
            pod=result.pod,
            notes=result.notes,
        )

    emit("KubernetesExport", document, render)


slurm_app = typer.Typer(no_args_is_help=True, help="Slurm exports.")


@slurm_app.command("gres")
def slurm_gres(
    form: Annotated[
        str, typer.Option("--form", help="auto, files (MultipleFiles lines) or autodetect.")
    ] = "auto",
    node: Annotated[str | None, typer.Option("--node", help="NodeName for slurm.conf.")] = None,
) -> None:
    """gres.conf and slurm.conf lines for the MIG devices, and the matching --gres requests."""
    from migctl.tenancy.devices import exported_devices
    from migctl.tenancy.devnodes import node_reader_for
    from migctl.tenancy.slurm import GresForm, gres_config

    try:
        chosen = GresForm(form)
    except ValueError:
        raise UsageError(f"--form {form!r}: use auto, files or autodetect") from None
    node_name = node or socket.gethostname().split(".")[0]
    here = session().local_node
    reader = node_reader_for(here.backend, here.settings.proc_root)
    config = gres_config(exported_devices(here.backend, reader), node_name, chosen)

    def render() -> None:
        typer.echo(config.text(), nl=False)

    def document() -> SlurmGresOut:
        from migctl.schemas.exports import SlurmGresOut

        return SlurmGresOut(
            form=config.form.value,
            gres_conf=config.gres_conf,
            slurm_conf=config.slurm_conf,
            requests=config.requests,
            notes=config.notes,
        )

    emit("SlurmGres", document, render)


def register(root: typer.Typer) -> None:
    root.command("docker-args")(docker_args)
    root.add_typer(cdi_app, name="cdi")
    root.add_typer(k8s_app, name="k8s")
    root.add_typer(slurm_app, name="slurm")
