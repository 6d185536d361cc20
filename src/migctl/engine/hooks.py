"""Hooks at the points mig-parted users know, given the plan as JSON on stdin.

Why this exists: operators stop and start services around a repartition (the device
plugin, DCGM, their own jobs). A hooks file maps points to commands::

    before-apply: ["systemctl stop dcgm"]          # mig-parted: apply-start
    before-mode-change: ["/usr/local/bin/drain"]   # mig-parted: pre-apply-mode
    before-instance-changes: []                    # mig-parted: pre-apply-config
    after-apply: ["systemctl start dcgm"]          # mig-parted: apply-exit

Each command runs with ``MIGCTL_HOOK`` set to the point's name and the plan (or, after
apply, the outcome) as JSON on stdin. A ``before-*`` hook that fails aborts the apply
(before the first change, nothing changes; later, the apply rolls back).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from migctl.errors import InvalidInputError, MigctlError

log = logging.getLogger(__name__)

POINTS = ("before-apply", "before-mode-change", "before-instance-changes", "after-apply")
MIG_PARTED_NAMES = {
    "apply-start": "before-apply",
    "pre-apply-mode": "before-mode-change",
    "pre-apply-config": "before-instance-changes",
    "apply-exit": "after-apply",
}
TIMEOUT_S = 300


class HookFailedError(MigctlError):
    exit_code = 12
    kind = "hook_failed"


@dataclass(frozen=True)
class Hooks:
    commands: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def run(self, point: str, payload: dict[str, Any]) -> None:
        for command in self.commands.get(point, ()):
            log.info("hook %s: %s", point, command)
            env = {**os.environ, "MIGCTL_HOOK": point}
            try:
                result = subprocess.run(
                    command,
                    shell=True,
                    input=json.dumps(payload),
                    text=True,
                    capture_output=True,
                    env=env,
                    timeout=TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise HookFailedError(
                    f"hook {point} timed out after {TIMEOUT_S} s: {command}"
                ) from exc
            if result.returncode != 0:
                raise HookFailedError(
                    f"hook {point} failed with exit code {result.returncode}: {command}",
                    hint=(result.stderr or result.stdout).strip()[-400:] or None,
                )


def _commands(value: object, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InvalidInputError(f"{where} must be a command or a list of commands")


def load_hooks(path: Path | None) -> Hooks:
    if path is None:
        return Hooks()
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError as exc:
        raise InvalidInputError(f"hooks file {path} does not exist") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"hooks file {path} cannot be read: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{path}: expected a mapping of hook points to commands")
    commands: dict[str, tuple[str, ...]] = {}
    for key, value in raw.items():
        point = MIG_PARTED_NAMES.get(str(key), str(key))
        if point not in POINTS:
            raise InvalidInputError(
                f"{path}: unknown hook point {key!r}",
                hint="points: "
                + ", ".join(POINTS)
                + " (or mig-parted's "
                + ", ".join(MIG_PARTED_NAMES)
                + ")",
            )
        commands[point] = commands.get(point, ()) + _commands(value, f"{path}: {key}")
    return Hooks(commands)


def describe(hooks: Hooks) -> str:
    return "; ".join(
        f"{p}: {' && '.join(shlex.quote(c) for c in cs)}" for p, cs in hooks.commands.items()
    )
