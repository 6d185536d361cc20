"""What the hand-out verbs print with ``--output json``: Docker flags, CDI, Kubernetes, Slurm.

Why this module exists: scripts feed these documents to other tools (``docker run``, a CDI
directory, ``kubectl``, ``slurm.conf``); their fields are part of migctl's versioned output
(``migctl/v2``). The values are built by ``migctl.tenancy``; the CLI fills these models with
them. Only the CLI imports this module.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from migctl.schemas.base import Wire


class DockerArgsOut(Wire):
    """``migctl docker-args``: the flags of the form asked for, and of every form."""

    uuid: str = Field(description="the device the container gets (a soft device: its parent)")
    form: str = Field(description="gpus, env or cdi")
    args: list[str]
    argv: dict[str, list[str]] = Field(description="every form's flags, by form")
    device_kind: str = Field("mig", description="mig: a MIG device; soft: an MPS share of uuid")
    soft_device: str | None = Field(None, description="soft: the soft device (SOFT-...)")
    lease_id: int | None = Field(None, description="soft: the lease the flags come from")
    mps_environment: dict[str, str] = Field(
        default_factory=dict, description="soft: the CUDA_MPS_* variables the flags set"
    )
    notes: list[str] = Field(default_factory=list, description="soft: what the flags need")


class CdiSpecOut(Wire):
    """``migctl cdi generate``: the spec, and where it was written (null: printed)."""

    path: str | None
    spec: dict[str, Any]


class NodeLabelOut(Wire):
    key: str
    value: str


class KubernetesExportOut(Wire):
    """``migctl k8s export``: the mig-parted ConfigMap, the node label and what it yields."""

    layout_name: str
    node_label: NodeLabelOut
    mig_parted_config: dict[str, Any]
    configmap: dict[str, Any]
    resources: dict[str, int]
    pod: dict[str, Any] | None
    notes: list[str]


class SlurmGresOut(Wire):
    """``migctl slurm gres``: gres.conf and slurm.conf lines and the matching requests."""

    form: str
    gres_conf: list[str]
    slurm_conf: list[str]
    requests: list[str]
    notes: list[str]
