"""Plots of the openb benchmarks: allocation ratios of the fill runs, the replay over time.

Why this exists: keeps matplotlib (imported lazily, headless) out of the simulation and
report modules. Imported only by ``bench.openb``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.openb_replay import ReplayResult

DAY_S = 86_400
PUBLISHED = {"random": 0.863, "best-fit": 0.929, "FGD": 0.952}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def fill_plot(rows: Sequence[tuple[str, float, float]], path: Path) -> None:
    """Bars: useful allocation and slices allocated per (sharing, policy) row."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(10, 4.8))
    labels = [label for label, _, _ in rows]
    xs = range(len(rows))
    axis.bar([x - 0.2 for x in xs], [100 * u for _, u, _ in rows], 0.4, label="useful (FGD ratio)")
    axis.bar([x + 0.2 for x in xs], [100 * s for _, _, s in rows], 0.4, label="slices allocated")
    for name, value in PUBLISHED.items():
        axis.axhline(100 * value, linestyle=":", linewidth=1, color="gray")
        axis.text(len(rows) - 0.4, 100 * value + 0.2, f"FGD paper,\nfractional {name}", fontsize=7)
    axis.set_xticks(list(xs), labels, rotation=25, ha="right", fontsize=8)
    axis.set(
        xlim=(-0.6, len(rows) + 1.2),
        ylim=(75, 101),
        ylabel="% of GPU capacity when arrived demand = 100%",
        title="openb, fill until full (mean of seeds)",
    )
    axis.legend(fontsize=8, loc="lower left")
    axis.grid(True, axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def replay_plot(
    peak_fleet: Mapping[str, ReplayResult],
    large_fleet: Mapping[str, ReplayResult],
    offline: tuple[Sequence[int], Sequence[int]],
    units: int,
    path: Path,
) -> None:
    """Top: utilisation of the peak-sized fleet; bottom: GPUs in use on a large fleet."""
    plt = _pyplot()
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7), sharex=True)
    for policy, result in peak_fleet.items():
        days = [t / DAY_S for t in result.times_s]
        capacity = result.fleet_gpus * units
        top.step(
            days,
            [100 * u / capacity for u in result.used_units],
            where="post",
            linewidth=0.8,
            label=f"{policy}: slices allocated",
        )
    first = next(iter(peak_fleet.values()))
    top.step(
        [t / DAY_S for t in first.times_s],
        [m / first.fleet_gpus / 10 for m in first.placed_milli],
        where="post",
        linewidth=0.8,
        color="black",
        label="requested share of placed pods (first policy)",
    )
    top.set(
        ylabel=f"% of the {first.fleet_gpus}-GPU fleet",
        title="openb replay by creation/deletion time",
    )
    for policy, result in large_fleet.items():
        bottom.step(
            [t / DAY_S for t in result.times_s],
            result.busy_gpus,
            where="post",
            linewidth=0.8,
            label=f"{policy}: GPUs in use",
        )
    moments, gpus = offline
    bottom.plot(
        [t / DAY_S for t in moments],
        gpus,
        "k.",
        markersize=3,
        label="migctl pack (exact), fewest GPUs for the live pods",
    )
    bottom.set(xlabel="days", ylabel="GPUs holding instances")
    for axis in (top, bottom):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
