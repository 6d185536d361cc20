"""Tables, guidance and a plot from an MPS interference run (``bench/mps_interference.py``).

Why this exists: the raw run is a JSON file of per-client measurements; users need the
table (victim latency and aggressor throughput per case), the guidance (which SM share a
victim needs for a given p99 target beside a GEMM) and a picture. The guidance
interpolates linearly between the measured shares on a conservative envelope: the p99 at a
share is taken as the worst p99 measured at that share or any larger one, so a noisy
point never makes a smaller share look enough. Pure except for writing the files;
matplotlib only for the PNG.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TARGET_FACTORS = (1.1, 1.25, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class SharePoint:
    """A measured MPS pair: the victim's share, its p99, and what the aggressor kept."""

    share: int
    p99_ms: float
    aggressor: float


@dataclass(frozen=True)
class Guidance:
    target_ms: float
    factor: float
    share: int | None  # the smallest share meeting it; None when no measured share does
    aggressor: float | None  # the aggressor's throughput at 100 - share (interpolated)
    note: str


def envelope(points: Sequence[SharePoint]) -> list[SharePoint]:
    """Sorted by share; each p99 raised to the worst p99 at that share or any larger one."""
    ordered = sorted(points, key=lambda p: p.share)
    result: list[SharePoint] = []
    worst = 0.0
    for point in reversed(ordered):
        worst = max(worst, point.p99_ms)
        result.append(SharePoint(point.share, worst, point.aggressor))
    return list(reversed(result))


def share_for(points: Sequence[SharePoint], target_ms: float, factor: float) -> Guidance:
    """The smallest victim share whose (enveloped, interpolated) p99 meets ``target_ms``."""
    curve = envelope(points)
    if not curve:
        return Guidance(target_ms, factor, None, None, "no measured shares")
    if curve[0].p99_ms <= target_ms:
        first = curve[0]
        return Guidance(
            target_ms, factor, first.share, first.aggressor, "met at the smallest measured share"
        )
    if curve[-1].p99_ms > target_ms:
        last = curve[-1]
        return Guidance(
            target_ms,
            factor,
            None,
            None,
            f"not met by any measured share (p99 {last.p99_ms:.3f} ms at {last.share}%)",
        )
    for low, high in itertools.pairwise(curve):
        if low.p99_ms > target_ms >= high.p99_ms:
            fraction = (low.p99_ms - target_ms) / (low.p99_ms - high.p99_ms)
            share = math.ceil(low.share + fraction * (high.share - low.share))
            exact = (share - low.share) / (high.share - low.share)
            kept = low.aggressor + exact * (high.aggressor - low.aggressor)
            return Guidance(
                target_ms, factor, share, kept, f"between {low.share}% and {high.share}%"
            )
    raise AssertionError("unreachable: the envelope is monotone")


def _client(record: dict[str, Any], name: str) -> dict[str, Any]:
    return dict(record.get("clients", {}).get(name, {}))


def _throughput(client: dict[str, Any]) -> tuple[float, str] | None:
    result = client.get("result", {})
    if "tflops" in result:
        return float(result["tflops"]), "TFLOP/s"
    if "gbps" in result:
        return float(result["gbps"]), "GB/s"
    return None


def _cases(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["case"]["name"]: c for c in report["cases"] if "clients" in c}


def share_points(report: dict[str, Any]) -> list[SharePoint]:
    """The MPS victim + GEMM cases where the two shares sum to 100%."""
    points = []
    for record in _cases(report).values():
        specs = {c["name"]: c for c in record["case"]["clients"]}
        victim, aggressor = specs.get("victim"), specs.get("aggressor")
        if not (record["case"]["mps"] and victim and aggressor and aggressor["role"] == "gemm"):
            continue
        if victim["share"] + aggressor["share"] != 100:
            continue
        p99 = _client(record, "victim").get("result", {}).get("p99_ms")
        kept = _throughput(_client(record, "aggressor"))
        if p99 is not None and kept is not None:
            points.append(SharePoint(victim["share"], float(p99), kept[0]))
    return points


def _solo(cases: dict[str, dict[str, Any]], name: str, client: str, key: str) -> float | None:
    value = _client(cases.get(name, {}), client).get("result", {}).get(key)
    return float(value) if value is not None else None


def case_rows(report: dict[str, Any]) -> list[str]:
    cases = _cases(report)
    solo_p99 = _solo(cases, "solo-victim", "victim", "p99_ms")
    solo = {
        "TFLOP/s": _solo(cases, "solo-gemm", "aggressor", "tflops"),
        "GB/s": _solo(cases, "solo-copy", "aggressor", "gbps"),
    }
    rows = []
    for name, record in cases.items():
        if name == "mps-4x25-gemm":
            continue
        victim, aggressor = _client(record, "victim"), _client(record, "aggressor")
        sms = "/".join(str(c.get("sms", "-")) for c in (victim, aggressor) if c)
        latency = "-"
        if "result" in victim:
            p50, p99 = victim["result"]["p50_ms"], victim["result"]["p99_ms"]
            times = f" ({p99 / solo_p99:.2f}x)" if solo_p99 else ""
            latency = f"{p50:.3f} / {p99:.3f}{times}"
        made = _throughput(aggressor)
        kept = "-"
        if made is not None:
            base = solo.get(made[1])
            kept = f"{made[0]:,.0f} {made[1]}" + (
                f" ({made[0] / base:.0%})"
                if base and name not in ("solo-gemm", "solo-copy")
                else ""
            )
        attached = record.get("attached") or {}
        mps = "yes" if record["case"]["mps"] else "no"
        if attached:
            mps += ": " + ", ".join(
                f"{k} {'attached' if v else 'NOT attached'}" for k, v in attached.items()
            )
        rows.append(f"| {name} | {mps} | {sms} | {latency} | {kept} |")
    return rows


def quad_lines(report: dict[str, Any]) -> list[str]:
    """The 4 x 25% case: throughput each and in all, fairness, SMs, the memory limit."""
    cases = _cases(report)
    record = cases.get("mps-4x25-gemm") or next(
        (r for n, r in cases.items() if n.startswith("smoke-mps")), None
    )
    if record is None:
        return []
    clients = list(record["clients"].values())
    lines = [
        "| client | SMs seen | memory CUDA shows (GiB) | throughput | 18 GiB refused | 14 GiB fits |",
        "|---|---|---|---|---|---|",
    ]
    made = []
    for c in (c for c in clients if "result" in c):
        value = _throughput(c)
        probe = c.get("memory_probe", {})
        made.append(value[0] if value else 0.0)
        shown = (
            f"{value[0]:,.1f} {value[1]}"
            if value
            else f"p99 {c.get('result', {}).get('p99_ms', 0):.3f} ms"
        )
        memory = f"{c.get('mem_total_gib', 0):.1f}"
        refused, fits = probe.get("refused"), probe.get("fit")
        lines.append(
            f"| {c.get('name')} | {c.get('sms')} | {memory} | {shown} | {refused} | {fits} |"
        )
    solo = _solo(cases, "solo-gemm", "aggressor", "tflops")
    if len(made) > 1 and all(made):
        jain = sum(made) ** 2 / (len(made) * sum(m * m for m in made))
        versus = f", {sum(made) / solo:.0%} of one client alone ({solo:,.0f})" if solo else ""
        lines.append("")
        spread = min(made) / max(made)
        lines.append(
            f"In all {sum(made):,.1f} TFLOP/s{versus}; slowest/fastest {spread:.3f}, "
            f"Jain fairness {jain:.4f}."
        )
    return lines


def guidance_lines(report: dict[str, Any]) -> list[str]:
    solo_p99 = _solo(_cases(report), "solo-victim", "victim", "p99_ms")
    points = share_points(report)
    if not solo_p99 or not points:
        return []
    lines = [
        "| victim p99 target | share the victim needs (GEMM beside it gets the rest) | GEMM keeps | how |",
        "|---|---|---|---|",
    ]
    for factor in TARGET_FACTORS:
        advice = share_for(points, factor * solo_p99, factor)
        share = f"{advice.share}%" if advice.share is not None else "-"
        kept = f"{advice.aggressor:,.0f} TFLOP/s" if advice.aggressor is not None else "-"
        lines.append(
            f"| {advice.target_ms:.3f} ms ({factor:g}x solo) | {share} | {kept} | {advice.note} |"
        )
    smallest = min(p.share for p in points)
    if share_for(points, TARGET_FACTORS[0] * solo_p99, TARGET_FACTORS[0]).share == smallest:
        lines += ["", _smallest_note(report, smallest, solo_p99)]
    return lines


def _smallest_note(report: dict[str, Any], smallest: int, solo_p99: float) -> str:
    """Every target met at the smallest share: say what did hurt the victim."""
    cases = _cases(report)
    worse = []
    for name, what in (
        ("mps-100-100-gemm", "with both clients uncapped (MPS 100/100)"),
        ("timeslice-gemm", "without MPS (time-slicing)"),
    ):
        p99 = _solo(cases, name, "victim", "p99_ms")
        if p99 is not None:
            worse.append(f"{p99 / solo_p99:.1f}x its solo p99 {what}")
    return (
        f"The smallest measured share ({smallest}%) met every target: this victim needs few "
        "SMs, and with the GEMM capped at the rest it ran as fast as alone. What hurt it was "
        "an uncapped neighbour: its p99 was " + (", and ".join(worse) or "not measured") + ". "
        "Shares that sum past 100% (oversubscription) bring that interference back; a victim "
        "that needs more SMs than this one needs a larger share (measure it)."
    )


def run_lines(report: dict[str, Any]) -> list[str]:
    """How the run went: compute mode found, the daemon's files, its quit, errors."""
    compute = report["facts"].get("compute", {}).get("stdout", "")
    modes = sorted(
        {line.split(":", 1)[1].strip() for line in compute.splitlines() if "Compute Mode" in line}
    )
    daemon = report.get("daemon", {})
    quit_reply = report.get("quit", {})
    lines = [
        f"- Compute mode found (`nvidia-smi -q -d COMPUTE`, read only): {', '.join(modes) or 'unknown'}; "
        "the benchmark changes no GPU setting.",
        f"- Private MPS control daemon: `-d` exit {daemon.get('start', {}).get('rc')}, pipe directory "
        f"held {daemon.get('pipe_dir_files')}; `quit` exit {quit_reply.get('rc')}, then the pipe "
        f"directory held {quit_reply.get('after', {}).get('pipe_dir_files')}; MPS processes left "
        f"after quit: {report.get('control_processes_after_quit', '').strip() or 'none'}.",
        f"- The control front end without a daemon: exit "
        f"{report.get('front_end_without_daemon', {}).get('rc')}, "
        f"`{report.get('front_end_without_daemon', {}).get('stderr', '').strip()[:120]}`.",
    ]
    for record in report["cases"]:
        problem = record.get("error") or record.get("skipped")
        if problem:
            lines.append(f"- Case {record['case']['name']}: {problem}")
    return lines


def markdown(report: dict[str, Any]) -> str:
    facts = report["facts"]
    query = facts["query"]["stdout"].strip()
    lines = [
        "# MPS interference: a latency victim beside an aggressor, by SM share",
        "",
        f"Command: `{report['command']}` ({report['duration_s']:g} s per case). GPU (index, name, uuid, "
        f"MIG mode, compute mode, driver): `{query}`. MPS control program: `{facts['control_program']}`.",
        "",
        "| case | MPS | SMs seen (victim/aggressor) | victim p50 / p99 ms (p99 vs solo) | aggressor (vs solo) |",
        "|---|---|---|---|---|",
        *case_rows(report),
        "",
        *run_lines(report),
        "",
        *compute_lines(report),
        "",
        "## Equal shares and the pinned memory limit",
        "",
        *quad_lines(report),
        "",
        "## Guidance: the share a victim needs beside a GEMM",
        "",
        *guidance_lines(report),
        "",
    ]
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    points = sorted(share_points(report), key=lambda p: p.share)
    if not points:
        return False
    figure, left = plt.subplots(figsize=(7, 4))
    left.plot(
        [p.share for p in points],
        [p.p99_ms for p in points],
        "o-",
        color="tab:red",
        label="victim p99 (ms)",
    )
    left.set_xlabel("victim SM share (%); the GEMM beside it gets the rest")
    left.set_ylabel("victim p99 latency (ms)")
    _references(left, _cases(report))
    left.set_yscale("log")
    right = left.twinx()
    right.plot(
        [p.share for p in points],
        [p.aggressor for p in points],
        "s--",
        color="tab:blue",
        label="GEMM TFLOP/s",
    )
    right.set_ylabel("aggressor GEMM TFLOP/s")
    figure.legend(loc="center right", bbox_to_anchor=(0.86, 0.6), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return True


def compute_lines(report: dict[str, Any]) -> list[str]:
    """The compute mode section of ``nvidia-smi -q -d COMPUTE`` as found (read only)."""
    text = report["facts"].get("compute", {}).get("stdout", "").strip()
    if not text:
        return []
    kept = [line for line in text.splitlines() if line.strip() and "Timestamp" not in line]
    return ["```", *kept, "```"]


def _references(axes: Any, cases: dict[str, dict[str, Any]]) -> None:
    """Horizontal lines: the victim alone, beside an uncapped GEMM, and without MPS."""
    references = (
        ("solo-victim", ":", "victim alone"),
        ("mps-100-100-gemm", "--", "both uncapped (MPS 100/100)"),
        ("timeslice-gemm", "-.", "no MPS (time-slicing)"),
    )
    for name, style, label in references:
        p99 = _solo(cases, name, "victim", "p99_ms")
        if p99 is not None:
            axes.axhline(p99, color="tab:red", linestyle=style, linewidth=1, label=label)


def write_report(json_path: Path, out: Path, note: str = "") -> list[Path]:
    """``<name>.md`` (+ ``.png`` when matplotlib is there), named after the JSON file."""
    report = json.loads(json_path.read_text())
    out.mkdir(parents=True, exist_ok=True)
    stem = json_path.stem
    written = [out / f"{stem}.md"]
    text = markdown(report)
    if note:
        text += "\n## How this was run\n\n" + note.strip() + "\n"
    written[0].write_text(text)
    if plot(report, out / f"{stem}.png"):
        written.append(out / f"{stem}.png")
    return written
