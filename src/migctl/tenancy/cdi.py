"""A Container Device Interface (CDI) spec for the machine's MIG devices.

Why this exists: CDI-aware runtimes (podman, containerd, CRI-O, Docker 25+) give a container a
device named ``KIND=NAME`` by applying the edits a spec file lists. migctl writes one spec
(``cdiVersion`` 0.6.0: spec and device annotations) with, for each MIG device, two names like
``nvidia-ctk cdi generate`` uses: the index name ``<gpu>:<mig>`` (see :mod:`.devices`) and the
``MIG-<uuid>``; each device's edits set ``NVIDIA_VISIBLE_DEVICES=MIG-<uuid>`` and list its device
files (``/dev/nvidia<minor>`` plus the GI and CI ``nvidia-cap`` nodes) where the driver's numbers
are known. Where they are not (a simulated machine), the nodes are left out and the spec's and
device's ``migctl/device-nodes`` annotations say so instead of guessing.

What this spec does not do: mount the driver's libraries or run nvidia-ctk's hooks. It selects
the device; the libraries come from the NVIDIA runtime (which reads NVIDIA_VISIBLE_DEVICES) or
from nvidia-ctk's own spec. Two spec files in one CDI directory that define the same device
under one kind conflict, so do not put this spec beside nvidia-ctk's ``nvidia.yaml`` in the same
directory with the same kind: use another kind (``--kind``) or another directory.

:func:`refresh_cdi` is what the apply engine calls after every change: it rewrites the spec
(atomically) or removes it when no MIG device is left (a spec must list at least one device).
Importers: ``migctl.tenancy`` and the CLI.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from migctl import __version__
from migctl.backends.base import Backend
from migctl.errors import InvalidStateError, PermissionDeniedError, UsageError
from migctl.files import atomic_write
from migctl.tenancy.devices import ExportedDevice, exported_devices
from migctl.tenancy.devnodes import CONTROL_NODES, DeviceNodeReader, node_reader_for
from migctl.tenancy.environment import DEFAULT_CDI_KIND, NVIDIA_VISIBLE_DEVICES

CDI_VERSION = "0.6.0"
ENV_CDI_PATH = "MIGCTL_CDI_PATH"
DEFAULT_CDI_PATH = Path("/etc/cdi/migctl.yaml")
ANNOTATION = "migctl/"
_KIND = re.compile(
    r"(?=.{1,253}/)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
    r"/[A-Za-z0-9]([-_.A-Za-z0-9]{0,61}[A-Za-z0-9])?"
)


def check_kind(kind: str) -> str:
    """A CDI kind is ``vendor.domain/class``; refuse anything else before writing a file."""
    if _KIND.fullmatch(kind) is None:
        raise UsageError(
            f"{kind!r} is not a CDI kind",
            hint="write VENDOR-DOMAIN/CLASS, e.g. nvidia.com/gpu or example.com/mig",
        )
    return kind


def _device_edits(exported: ExportedDevice) -> dict[str, Any]:
    edits: dict[str, Any] = {"env": [f"{NVIDIA_VISIBLE_DEVICES}={exported.device.uuid}"]}
    if exported.nodes.paths:
        edits["deviceNodes"] = [{"path": path} for path in exported.nodes.paths]
    return edits


def _device_annotations(exported: ExportedDevice) -> dict[str, str]:
    device = exported.device
    return {
        f"{ANNOTATION}uuid": device.uuid,
        f"{ANNOTATION}gpu": str(exported.gpu.index),
        f"{ANNOTATION}gi": str(device.gi_id),
        f"{ANNOTATION}ci": str(device.ci_id),
        f"{ANNOTATION}profile": device.ci_profile,
        f"{ANNOTATION}device-nodes": "complete" if exported.nodes.complete else "unknown",
    }


def _spec_annotations(
    devices: Sequence[ExportedDevice], reader: DeviceNodeReader
) -> dict[str, str]:
    if all(d.nodes.complete for d in devices):
        nodes = f"read from {reader.source}"
    elif reader.root is None:
        nodes = "unknown: no driver procfs on a simulated machine (set MIGCTL_PROC_ROOT)"
    else:
        nodes = f"partly unknown: not found under {reader.source}"
    return {f"{ANNOTATION}generator": f"migctl {__version__}", f"{ANNOTATION}device-nodes": nodes}


def build_spec(
    devices: Sequence[ExportedDevice],
    reader: DeviceNodeReader,
    kind: str = DEFAULT_CDI_KIND,
) -> dict[str, Any]:
    """The spec as plain data (two entries per MIG device: index name and UUID name)."""
    if not devices:
        raise InvalidStateError(
            "there are no MIG devices, and a CDI spec must list at least one",
            hint="create MIG instances first (migctl gi create ... -C)",
        )
    entries = []
    for exported in devices:
        for name in (exported.index_name, exported.device.uuid):
            entries.append(
                {
                    "name": name,
                    "annotations": _device_annotations(exported),
                    "containerEdits": _device_edits(exported),
                }
            )
    return {
        "cdiVersion": CDI_VERSION,
        "kind": check_kind(kind),
        "annotations": _spec_annotations(devices, reader),
        "devices": entries,
        "containerEdits": {"deviceNodes": [{"path": path} for path in CONTROL_NODES]},
    }


def generate_spec(
    backend: Backend, kind: str = DEFAULT_CDI_KIND, proc_root: Path | None = None
) -> dict[str, Any]:
    """The CDI spec for ``backend``'s current MIG devices."""
    reader = node_reader_for(backend, proc_root)
    return build_spec(exported_devices(backend, reader), reader, kind)


def render_spec(spec: dict[str, Any]) -> str:
    header = "# CDI spec written by migctl: MIG devices of this machine (see docs/tenancy.md)\n"
    return header + yaml.safe_dump(spec, sort_keys=False, default_flow_style=False)


def write_spec(spec: dict[str, Any], path: Path) -> Path:
    """Write ``spec`` to ``path`` atomically (a temporary file renamed over it), mode 0644."""
    text = render_spec(spec)
    try:
        atomic_write(path, text, mode=0o644)
    except OSError as exc:
        raise PermissionDeniedError(
            f"cannot write the CDI spec {path}: {exc.strerror}",
            hint=f"run as root, or write elsewhere with -f PATH / ${ENV_CDI_PATH}",
            context={"path": str(path)},
        ) from exc
    return path


def refresh_cdi(
    backend: Backend,
    path: Path,
    kind: str = DEFAULT_CDI_KIND,
    proc_root: Path | None = None,
) -> Path | None:
    """Rewrite the CDI spec at ``path`` after a change; remove it when no MIG device is left.

    Returns the path written, or None when the spec was removed (or there was nothing to
    remove).
    """
    target = path
    reader = node_reader_for(backend, proc_root)
    devices = exported_devices(backend, reader)
    if not devices:
        try:
            target.unlink(missing_ok=True)
        except OSError as exc:
            raise PermissionDeniedError(
                f"cannot remove the stale CDI spec {target}: {exc.strerror}",
                hint="run as root, or remove it by hand",
                context={"path": str(target)},
            ) from exc
        return None
    return write_spec(build_spec(devices, reader, kind), target)


def refresh_if_in_use(
    backend: Backend, path: Path, *, explicit: bool = False, proc_root: Path | None = None
) -> Path | None:
    """After any MIG change: refresh the CDI spec at ``path`` when one is in use here.

    In use means the path was named explicitly (``MIGCTL_CDI_PATH``) or the spec exists
    (someone ran ``migctl cdi generate``; a simulated machine's is ``cdi.yaml`` in its own
    directory); otherwise nothing is written, so a user who never asked for CDI gets no file in
    /etc. A stale spec after repartitioning is what this prevents.
    """
    if not explicit and not path.exists():
        return None
    return refresh_cdi(backend, path, proc_root=proc_root)
