"""Hooks files: mig-parted's ``version: v1`` format run as mig-parted runs it, and migctl's own.

mig-parted's hooks file (``version: v1``, ``hooks: {apply-start: [{workdir, command, args,
envs}]}``) used to be refused ("unknown hook point 'version'"). What mig-parted does
(``api/hooks/v1``, ``cmd/nvidia-mig-parted/apply``): ``apply-start`` first, always;
``pre-apply-mode`` only before a MIG mode change; ``pre-apply-config`` only before instance
changes; ``apply-exit`` at the end whatever happened, its failure reported only when the apply
succeeded. A hook runs ``command args...`` without a shell, in ``workdir``, with only its
``envs`` and the ``MIG_PARTED_*`` variables.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from migctl.cli.main import run

BASE = ("--sim", "h100-single")
RECORD = (
    'printf "%s|%s|%s|%s|%s|%s\\n" "$0" "$PWD" "$MIG_PARTED_SELECTED_CONFIG" '
    '"$MIG_PARTED_HOOKS_FILE" "${HOOK_TEST:-unset}" "${MIGCTL_SIM_DIR:-unset}" >> "$LOG"'
)


def mig_parted_hooks(tmp_path: Path, fail: dict[str, int] | None = None) -> tuple[Path, Path]:
    """A mig-parted hooks file whose hooks record point, cwd and environment in a log."""
    log, workdir = tmp_path / "hooks.log", tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    points = ("apply-start", "pre-apply-mode", "pre-apply-config", "apply-exit")
    spec = {
        "version": "v1",
        "hooks": {
            point: [
                {
                    "workdir": str(workdir),
                    "command": "sh",  # a bare name: found on mig-parted's (our) PATH
                    "args": ["-c", f"{RECORD}; exit {(fail or {}).get(point, 0)}", point],
                    "envs": {"HOOK_TEST": "set", "LOG": str(log)},
                }
            ]
            for point in points
        },
    }
    path = tmp_path / "hooks.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, log


def records(log: Path) -> list[list[str]]:
    return [line.split("|") for line in log.read_text().splitlines()] if log.exists() else []


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = run([*BASE, *argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def layout(tmp_path: Path, name: str, instances: list[str]) -> Path:
    path = tmp_path / f"{name}.yaml"
    entry = {"devices": "all", "mig-enabled": True, "mig-devices": dict.fromkeys(instances, 1)}
    path.write_text(yaml.safe_dump({"version": "v1", "mig-configs": {name: [entry]}}))
    return path


def test_a_mig_parted_hooks_file_runs_at_mig_parteds_points(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooks, log = mig_parted_hooks(tmp_path)
    config = layout(tmp_path, "two", ["3g.40gb", "4g.40gb"])
    code, _, err = cli(capsys, "apply", "-f", str(config), "-c", "two", "--hooks", str(hooks))
    assert code == 0, err
    seen = records(log)
    assert [r[0] for r in seen] == [
        "apply-start",
        "pre-apply-mode",
        "pre-apply-config",
        "apply-exit",
    ]
    for _point, cwd, selected, hooks_file, own, inherited in seen:
        assert cwd == str(tmp_path / "work"), "run in its workdir"
        assert (selected, hooks_file) == ("two", str(hooks)), "MIG_PARTED_* as mig-parted sets"
        assert own == "set", "the hook's envs"
        assert inherited == "unset", "nothing else of migctl's environment, as in mig-parted"


def test_points_run_only_when_their_change_happens(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooks, log = mig_parted_hooks(tmp_path)
    first = layout(tmp_path, "first", ["3g.40gb"])
    second = layout(tmp_path, "second", ["4g.40gb"])
    assert cli(capsys, "apply", "-f", str(first), "--hooks", str(hooks))[0] == 0
    log.unlink()
    assert cli(capsys, "apply", "-f", str(second), "--hooks", str(hooks))[0] == 0
    assert [r[0] for r in records(log)] == ["apply-start", "pre-apply-config", "apply-exit"]
    log.unlink()
    assert cli(capsys, "apply", "-f", str(second), "--hooks", str(hooks))[0] == 0
    assert [r[0] for r in records(log)] == ["apply-start", "apply-exit"], "nothing to change"


def test_a_failing_apply_start_changes_nothing_and_skips_apply_exit(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooks, log = mig_parted_hooks(tmp_path, fail={"apply-start": 3})
    code, _, err = cli(capsys, "apply", "--split", "7", "-i", "0", "--hooks", str(hooks))
    assert code == 12 and "hook before-apply failed with exit code 3" in err
    assert [r[0] for r in records(log)] == ["apply-start"]
    code, out, _ = cli(capsys, "-o", "json", "mode", "show")
    assert json.loads(out)["gpus"][0]["mig"] == {"current": False, "pending": False}


def test_apply_exit_runs_after_a_failed_apply_whose_error_is_reported(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooks, log = mig_parted_hooks(tmp_path, fail={"apply-exit": 4})
    assert cli(capsys, "mode", "enable", "-i", "0")[0] == 0
    fault = ("sim", "fault", "add", "nvmlDeviceCreateGpuInstanceWithPlacement", "UNKNOWN")
    assert cli(capsys, *fault)[0] == 0
    code, _, err = cli(capsys, "apply", "--split", "7", "-i", "0", "--hooks", str(hooks))
    assert code == 12
    assert "cannot create 1g.10gb" in err, "the apply's own error, not the hook's"
    assert [r[0] for r in records(log)][-1] == "apply-exit"


def test_a_failing_apply_exit_fails_a_successful_apply(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooks, _log = mig_parted_hooks(tmp_path, fail={"apply-exit": 5})
    code, _, err = cli(capsys, "apply", "--split", "7", "-i", "0", "--hooks", str(hooks))
    assert code == 12 and "hook after-apply failed with exit code 5" in err


def test_migctls_own_format_gets_the_plan_on_stdin(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    seen = tmp_path / "seen"
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(
        f'before-apply: "cat > {seen}.$MIGCTL_HOOK"\n'
        f'apply-exit: ["cat > {seen}.$MIGCTL_HOOK", "echo $MIGCTL_SIM_DIR > {seen}.env"]\n'
    )
    assert cli(capsys, "apply", "--split", "7", "-i", "0", "--hooks", str(hooks))[0] == 0
    plan = json.loads(Path(f"{seen}.before-apply").read_text())
    assert plan["plans"][0]["ops"][0]["op"] == "set_mig_mode"
    assert json.loads(Path(f"{seen}.after-apply").read_text())["executed"] == {"0": 15}
    assert Path(f"{seen}.env").read_text().strip(), "migctl's format keeps the environment"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("version: v1\nhooks:\n  apply-strat: []\n", "apply-strat: unknown hook point"),
        ("version: v2\nhooks: {}\n", "version: unsupported 'v2'"),
        ("version: v1\nhooks:\n  apply-start:\n    - command: sh\n      arg: [x]\n", "unknown key"),
        ("version: v1\nhooks:\n  apply-start:\n    - args: [x]\n", "command: must be a program"),
        ("version: v1\nhooks:\n  apply-start:\n    - {command: sh, envs: {A: 1}}\n", "strings"),
        ("version: v1\nhooks:\n  apply-start: []\n  apply-start: []\n", "duplicate key"),
        ("before-apply: true\n", "list of strings"),
        ("- a\n", "expected a mapping"),
        ("version: v1\nhooks: [\n", "cannot be read"),
    ],
)
def test_bad_hooks_files_are_refused_before_anything_changes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str, words: str
) -> None:
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text(text)
    code, _, err = cli(capsys, "apply", "--split", "7", "-i", "0", "--hooks", str(hooks))
    assert code == 11, err
    assert words in err and str(hooks) in err
    code, out, _ = cli(capsys, "-o", "json", "mode", "show")
    assert json.loads(out)["gpus"][0]["mig"]["current"] is False


def test_a_hook_that_cannot_start_fails_the_apply_cleanly(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hooks = tmp_path / "hooks.yaml"
    hooks.write_text("version: v1\nhooks:\n  apply-start:\n    - command: /no/such/program\n")
    code, _, err = cli(capsys, "apply", "--split", "7", "-i", "0", "--hooks", str(hooks))
    assert code == 12 and "could not be started: /no/such/program" in err
