"""ParvaGPU (SC'24) benchmark data: profiles, SLO scenarios and ParvaGPU's own deployments.

Why this exists: the ParvaGPU benchmark modules (solver, checker, report) and their tests
must read the data exactly as ParvaGPU's scheduler does (``src/data_load.c``): model files
in alphabetical order give the SLO columns, ``N/A`` means the model is absent, SLO
latencies are truncated to integers (``atoi``), ``Throughput`` is per MPS process and
``Latency`` is seconds per batch. The directory is a path the user gives (the package
never reads it). Imported by ``bench.parvagpu*`` modules and tests/unit/test_bench_*.py.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from migctl.errors import InvalidInputError, NotFoundError

MIG_SIZES = (1, 2, 3, 4, 7)  # compute slices of the A100 instances in the profiles
A100_PROFILE_BY_SIZE = {1: "1g.10gb", 2: "2g.20gb", 3: "3g.40gb", 4: "4g.40gb", 7: "7g.80gb"}


@dataclass(frozen=True, slots=True)
class ProfilePoint:
    """One measured configuration: a model on one MIG size with a batch and MPS processes."""

    model: str
    size: int  # compute slices (1, 2, 3, 4, 7)
    batch: int
    procs: int  # MPS processes sharing the instance
    throughput_per_proc: float  # requests/s of one process
    latency_s: float  # seconds per batch

    @property
    def throughput(self) -> float:
        """Requests/s of the whole instance (all its processes)."""
        return self.throughput_per_proc * self.procs

    @property
    def latency_ms(self) -> float:
        return self.latency_s * 1000.0

    @property
    def measured(self) -> bool:
        """Rows with zero throughput were not measured (out of memory) and never count."""
        return self.throughput_per_proc > 0


@dataclass(frozen=True, slots=True)
class Service:
    """One model of a scenario: its request rate and latency SLO (as ParvaGPU reads them)."""

    model: str
    rate: float  # requests/s
    slo_ms: int  # int() of the published value, like ParvaGPU's atoi


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str  # SLO1 .. SLO6
    services: tuple[Service, ...]


@dataclass(frozen=True, slots=True)
class Segment:
    """One deployed MIG instance serving one model."""

    gpu: int
    model: str
    size: int
    batch: int
    procs: int
    start: int | None = None  # NVML placement start (memory slice); None when unknown


@dataclass(frozen=True, slots=True)
class Dataset:
    models: tuple[str, ...]  # alphabetical, the SLO column order
    profiles: dict[str, tuple[ProfilePoint, ...]]
    scenarios: tuple[Scenario, ...]

    def points(self, model: str) -> tuple[ProfilePoint, ...]:
        return self.profiles[model]

    def scenario(self, name: str) -> Scenario:
        for scenario in self.scenarios:
            if scenario.name == name:
                return scenario
        raise NotFoundError(f"no scenario {name!r}", hint="SLO1 .. SLO6")


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise NotFoundError(
            f"{path} does not exist", hint="give --data the ParvaGPU directory (prof_data/, SLO/)"
        )
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def load_profiles(path: Path, model: str) -> tuple[ProfilePoint, ...]:
    points = []
    for row in _rows(path):
        points.append(
            ProfilePoint(
                model=model,
                size=int(row["Mig instance"]),
                batch=int(row["Batch size"]),
                procs=int(row["Workload Number"]),
                throughput_per_proc=float(row["Throughput"]),
                latency_s=float(row["Latency"]),
            )
        )
    return tuple(points)


def _slo_rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise NotFoundError(f"{path} does not exist", hint="the ParvaGPU SLO/ directory")
    with path.open(newline="") as handle:
        return [row for row in csv.reader(handle) if row]


def load_scenarios(directory: Path, models: tuple[str, ...]) -> tuple[Scenario, ...]:
    rates = _slo_rows(directory / "SLO_req_rate.csv")
    latencies = _slo_rows(directory / "SLO_latency.csv")
    scenarios = []
    for index, (rate_row, latency_row) in enumerate(zip(rates, latencies, strict=True)):
        if len(rate_row) != len(models) or len(latency_row) != len(models):
            raise InvalidInputError(
                f"SLO row {index + 1} has {len(rate_row)} columns for {len(models)} models",
                hint="the columns follow the alphabetical order of prof_data/*.csv",
            )
        services = [
            Service(model, float(rate), int(float(latency)))
            for model, rate, latency in zip(models, rate_row, latency_row, strict=True)
            if rate.strip() != "N/A" and latency.strip() != "N/A"
        ]
        scenarios.append(Scenario(f"SLO{index + 1}", tuple(services)))
    return tuple(scenarios)


def load_dataset(directory: Path) -> Dataset:
    files = sorted((directory / "prof_data").glob("*.csv"))
    if not files:
        raise NotFoundError(
            f"no profile CSVs under {directory / 'prof_data'}",
            hint="give --data the ParvaGPU directory (prof_data/, SLO/, deployment/)",
        )
    models = tuple(f.stem for f in files)
    profiles = {f.stem: load_profiles(f, f.stem) for f in files}
    return Dataset(models, profiles, load_scenarios(directory / "SLO", models))


def load_deployment(path: Path) -> list[Segment]:
    """ParvaGPU's deployment CSV; GPUs numbered by (node, GPU) in file order.

    Its ``Placement`` column is an index into ParvaGPU's own 7-slot array, not an NVML
    start (their scripts create instances with ``nvidia-smi mig -cgi`` and let the driver
    place them), so it is not kept as ``start``.
    """
    segments = []
    gpu_ids: dict[tuple[str, str], int] = {}
    for row in _rows(path):
        key = (row["Num instance"], row["Num GPU"])
        gpu = gpu_ids.setdefault(key, len(gpu_ids))
        segments.append(
            Segment(
                gpu,
                row["Model"],
                int(row["Instance size"]),
                int(row["Batch size"]),
                int(row["Num proc"]),
            )
        )
    return segments


def deployment_slots(path: Path) -> dict[int, list[tuple[int, int]]]:
    """Per GPU: (ParvaGPU slot index, size) pairs, for reading their Placement column."""
    slots: dict[int, list[tuple[int, int]]] = {}
    gpu_ids: dict[tuple[str, str], int] = {}
    for row in _rows(path):
        gpu = gpu_ids.setdefault((row["Num instance"], row["Num GPU"]), len(gpu_ids))
        slots.setdefault(gpu, []).append((int(row["Placement"]), int(row["Instance size"])))
    return slots
