"""Hooks: commands run at four points of an apply, with mig-parted's points and semantics.

Why this exists: operators stop and start services around a repartition (the device plugin,
DCGM, their own jobs), and NVIDIA's MIG manager ships hooks for mig-parted. migctl runs hooks
at mig-parted's four points, when mig-parted runs them (``cmd/nvidia-mig-parted/apply``):

* ``before-apply`` (mig-parted: ``apply-start``): at the start of every apply, even when
  nothing needs to change. If it fails, the apply stops before any change and
  ``after-apply`` does not run;
* ``before-mode-change`` (``pre-apply-mode``): only when a GPU's MIG mode must change,
  before the first mode change;
* ``before-instance-changes`` (``pre-apply-config``): only when instances must change,
  before the first instance change (after the mode changes of the GPU that comes first);
* ``after-apply`` (``apply-exit``): once ``before-apply`` has run, at the end of the apply,
  whether it succeeded or failed. If the apply succeeded and this hook fails, the apply
  fails; if the apply had failed, this hook's failure is logged and the apply's error is the
  one reported.

A failing ``before-*`` hook fails the apply (after a change has begun, the apply rolls back).
The hooks of one point run in order; the first that fails stops the rest. Dry runs run none.

Two kinds of hook, from the two file formats (``engine/hooks_file.py``, docs/hooks.md):
:class:`ShellHook` (migctl's format: a shell command line, the plan as JSON on stdin,
``MIGCTL_HOOK`` and the caller's environment) and :class:`ExecHook` (mig-parted's ``v1``
format: ``command`` with ``args`` run without a shell in ``workdir``, with an environment of
only its ``envs`` plus the ``MIG_PARTED_*`` variables mig-parted sets, stdin empty). Either
fails on a non-zero exit, a command that cannot be started, or after ``TIMEOUT_S``; its output
is shown only then. Imported by ``engine.apply`` and ``engine.recover``; the CLI loads files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from migctl.errors import MigctlError

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


class Hook(Protocol):
    def describe(self) -> str: ...

    def run(self, point: str, payload: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        """Run once; raise OSError when it cannot start, TimeoutExpired after TIMEOUT_S."""
        ...


@dataclass(frozen=True)
class ShellHook:
    """migctl's format: one shell command line; the plan or outcome as JSON on stdin."""

    command: str

    def describe(self) -> str:
        return self.command

    def run(self, point: str, payload: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command,
            shell=True,
            input=json.dumps(payload),
            text=True,
            capture_output=True,
            env={**os.environ, "MIGCTL_HOOK": point},
            timeout=TIMEOUT_S,
            check=False,
        )


@dataclass(frozen=True)
class ExecHook:
    """mig-parted's format, run as mig-parted runs it (``api/hooks/v1``: ``HookSpec.Run``)."""

    command: str
    args: tuple[str, ...] = ()
    envs: tuple[tuple[str, str], ...] = ()
    workdir: str = ""
    # the MIG_PARTED_* variables (they win over ``envs``, as mig-parted's own do)
    context: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        where = f" (in {self.workdir})" if self.workdir else ""
        return " ".join([self.command, *self.args]) + where

    def run(self, point: str, payload: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
        # Go's exec.Command looks a bare name up in mig-parted's own PATH, not the hook's
        program = self.command
        if "/" not in program:
            program = shutil.which(program) or program
        return subprocess.run(
            [program, *self.args],
            cwd=self.workdir or None,
            env={**dict(self.envs), **dict(self.context)},
            stdin=subprocess.DEVNULL,
            text=True,
            capture_output=True,
            timeout=TIMEOUT_S,
            check=False,
        )


@dataclass(frozen=True)
class Hooks:
    """The hooks of each point (see the module docstring for when each point runs)."""

    commands: Mapping[str, tuple[Hook, ...]] = field(default_factory=dict)

    def run(self, point: str, payload: Mapping[str, Any]) -> None:
        """Run ``point``'s hooks in order; HookFailedError for the first that fails."""
        for hook in self.commands.get(point, ()):
            log.info("hook %s: %s", point, hook.describe())
            try:
                result = hook.run(point, payload)
            except subprocess.TimeoutExpired as exc:
                raise HookFailedError(
                    f"hook {point} timed out after {TIMEOUT_S} s: {hook.describe()}"
                ) from exc
            except OSError as exc:
                raise HookFailedError(
                    f"hook {point} could not be started: {hook.describe()}: {exc.strerror or exc}",
                    hint="check the command's path and the workdir",
                ) from exc
            if result.returncode != 0:
                raise HookFailedError(
                    f"hook {point} failed with exit code {result.returncode}: {hook.describe()}",
                    hint=(result.stderr or result.stdout).strip()[-400:] or None,
                )

    def finish(self, payload: Mapping[str, Any], *, failed: bool) -> None:
        """``after-apply``; when the apply itself ``failed``, its own failure is only logged."""
        try:
            self.run("after-apply", payload)
        except HookFailedError as error:
            if not failed:
                raise
            log.warning("%s (the apply had failed already)", error.message)
