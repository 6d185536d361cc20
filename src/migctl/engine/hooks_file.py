"""Read a hooks file: migctl's own format, or mig-parted's ``version: v1`` hooks file unchanged.

Why this exists: ``migctl apply --hooks FILE`` must take the hooks file NVIDIA's MIG manager
ships for mig-parted (``deployments/systemd/hooks-default.yaml``) as it is, and migctl's own
shorter format. The format is told apart from the document: a top-level ``hooks`` (or
``version``) key is mig-parted's; anything else is migctl's (docs/hooks.md has both)::

    version: v1                                   # mig-parted
    hooks:
      apply-start:
        - workdir: /etc/nvidia-mig-manager
          command: /bin/bash
          args: ["-x", "-c", "source hooks.sh; apply-start ${MIG_PARTED_SELECTED_CONFIG}"]
          envs: {KEY: value}

    before-apply: systemctl stop dcgm            # migctl: point -> command line(s)
    after-apply: ["systemctl start dcgm"]

Both formats take both spellings of the points. Stricter than mig-parted, which ignores what
it does not know: an unknown point (a misspelt ``apply-strat`` would never run), an unknown
key of a hook, a duplicate key, a ``version`` other than ``v1`` and an ``envs`` value that is
not a string (mig-parted fails on that one too) are errors naming the file and the key.
Imported by the CLI (``apply --hooks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from migctl.engine.hooks import MIG_PARTED_NAMES, POINTS, ExecHook, Hook, Hooks, ShellHook
from migctl.errors import InvalidInputError

MAX_BYTES = 1 << 20
MAX_HOOKS = 100  # per point
MAX_ARGS = 1000
SPEC_KEYS = ("command", "args", "envs", "workdir")
POINTS_HINT = (
    "points: " + ", ".join(POINTS) + " (or mig-parted's " + ", ".join(MIG_PARTED_NAMES) + ")"
)


@dataclass(frozen=True)
class ApplyContext:
    """What mig-parted passes its hooks as ``MIG_PARTED_*`` variables, for this apply."""

    config_file: str = ""  # -f as given ("" without a file)
    selected_config: str = ""  # -c as given
    hooks_file: str = ""

    def variables(self) -> tuple[tuple[str, str], ...]:
        return (
            ("MIG_PARTED_CONFIG_FILE", self.config_file),
            ("MIG_PARTED_SELECTED_CONFIG", self.selected_config),
            ("MIG_PARTED_HOOKS_FILE", self.hooks_file),
            ("MIG_PARTED_SKIP_RESET", "false"),
            ("MIG_PARTED_MODE_CHANGE_ONLY", "false"),
        )


def _bad(path: Path, where: str, what: str, hint: str) -> InvalidInputError:
    prefix = f"{path}: {where}: " if where else f"{path}: "
    return InvalidInputError(prefix + what, hint=hint, context={"file": str(path)})


def _read(path: Path) -> Any:
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """Refuses a key given twice (PyYAML would keep the last one silently)."""

    def mapping(loader: StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            key = repr(loader.construct_object(key_node, deep=True))
            if key in seen:
                line = key_node.start_mark.line + 1
                raise _bad(path, f"line {line}", f"duplicate key {key}", "keep one of the two")
            seen.add(key)
        return loader.construct_mapping(node, deep=True)

    StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _bad(path, "", "is larger than 1 MiB", "a hooks file lists a few commands")
        return yaml.load(path.read_text(), Loader=StrictLoader)  # a SafeLoader subclass
    except FileNotFoundError as exc:
        raise InvalidInputError(f"hooks file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidInputError(f"hooks file {path} cannot be read: {exc}") from exc


def _point(path: Path, key: object) -> str:
    point = MIG_PARTED_NAMES.get(str(key), str(key))
    if point not in POINTS:
        raise _bad(path, str(key), "unknown hook point", POINTS_HINT)
    return point


def _strings(value: object, path: Path, where: str, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(path, where, f"must be a list of strings ({what})", 'e.g. ["-c", "echo hi"]')
    if len(value) > MAX_ARGS:
        raise _bad(path, where, f"more than {MAX_ARGS} entries", "shorten it")
    return tuple(value)


def _envs(value: object, path: Path, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad(path, where, "must map names to strings", 'quote numbers: {DEBUG: "1"}')
    return tuple(value.items())


def _exec_hook(spec: object, path: Path, where: str, context: ApplyContext) -> ExecHook:
    if not isinstance(spec, dict):
        raise _bad(path, where, "must be a mapping", "keys: " + ", ".join(SPEC_KEYS))
    for key in spec:
        if key not in SPEC_KEYS:
            raise _bad(path, f"{where}.{key}", "unknown key", "keys: " + ", ".join(SPEC_KEYS))
    command, workdir = spec.get("command"), spec.get("workdir") or ""
    if not isinstance(command, str) or not command:
        raise _bad(path, f"{where}.command", "must be a program", 'e.g. command: "/bin/bash"')
    if not isinstance(workdir, str):
        raise _bad(path, f"{where}.workdir", "must be a directory", "e.g. workdir: /etc")
    return ExecHook(
        command=command,
        args=_strings(spec.get("args"), path, f"{where}.args", "the command's arguments"),
        envs=_envs(spec.get("envs"), path, f"{where}.envs"),
        workdir=workdir,
        context=context.variables(),
    )


def _mig_parted(raw: Mapping[Any, Any], path: Path, context: ApplyContext) -> Hooks:
    for key in raw:
        if key not in ("version", "hooks"):
            raise _bad(path, str(key), "unknown key", "a mig-parted hooks file has version, hooks")
    if raw.get("version", "v1") != "v1":
        raise _bad(path, "version", f"unsupported {raw['version']!r}", "write 'version: v1'")
    hooks = raw.get("hooks") or {}
    if not isinstance(hooks, dict):
        raise _bad(path, "hooks", "must map points to lists of hooks", POINTS_HINT)
    commands: dict[str, tuple[Hook, ...]] = {}
    for key, specs in hooks.items():
        point, where = _point(path, key), f"hooks.{key}"
        if specs is not None and not isinstance(specs, list):
            raise _bad(path, where, "must be a list of hooks", "- command: /bin/true")
        found = tuple(
            _exec_hook(spec, path, f"{where}[{i}]", context) for i, spec in enumerate(specs or ())
        )
        commands[point] = commands.get(point, ()) + found
    return _capped(Hooks(commands), path)


def _native(raw: Mapping[Any, Any], path: Path) -> Hooks:
    commands: dict[str, tuple[Hook, ...]] = {}
    for key, value in raw.items():
        point = _point(path, key)
        lines = (value,) if isinstance(value, str) else _strings(value, path, str(key), "commands")
        commands[point] = commands.get(point, ()) + tuple(ShellHook(line) for line in lines)
    return _capped(Hooks(commands), path)


def _capped(hooks: Hooks, path: Path) -> Hooks:
    for point, found in hooks.commands.items():
        if len(found) > MAX_HOOKS:
            raise _bad(path, point, f"more than {MAX_HOOKS} hooks", "merge them into a script")
    return hooks


def load_hooks(path: Path | None, context: ApplyContext | None = None) -> Hooks:
    """The hooks in ``path`` (none for None); InvalidInputError naming what is wrong."""
    if path is None:
        return Hooks()
    context = context or ApplyContext(hooks_file=str(path))
    raw = _read(path)
    if raw is None:
        return Hooks()
    if not isinstance(raw, dict):
        raise _bad(path, "", "expected a mapping of hook points to commands", POINTS_HINT)
    if "hooks" in raw or "version" in raw:
        return _mig_parted(raw, path, context)
    return _native(raw, path)
