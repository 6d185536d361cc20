"""A simulated GPU fleet that places pods one by one under a policy, and releases them.

Why this exists: the openb benchmarks compare placement policies on the same pods, the
same nodes and the same sharing rules (``bench.gpu_rules``); only the policy differs.
A node has CPU, memory and GPUs; a pod needs CPU and memory on one node and, on that node,
one GPU share or ``k`` whole GPUs. Policies (node, then GPU, then placement):

* ``first-fit``: the first node that fits; its first GPU that fits; the lowest start;
* ``best-fit``: FGD's best-fit node score, 0.5 (free CPU - asked) / 128 cores + 0.5 (free
  GPU - asked) / 8 GPUs, lowest first; the fullest GPU that fits; the lowest start;
* ``random``: a random node that fits, its first GPU that fits (FGD's random baseline);
* ``migctl``: FGD's rule on MIG layouts: the node, GPU and legal placement whose expected
  fragmentation (``bench.frag``: free slices typical pods could no longer use, CPU
  included) grows least; ties go to the first node. Placements are any that
  ``migctl.geometry`` allows, not only the lowest start, which is where MIG layouts
  differ from fractional shares.

Per node and request kind the best choice is cached and refreshed only when the node
changes, so one placement costs a few vector operations over the nodes.
Imported by the openb benchmark modules and tests.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

from bench.frag import NodeFrag, Summary
from bench.gpu_rules import GpuRules, Option
from bench.openb_data import Request

POLICIES = ("first-fit", "best-fit", "random", "migctl")
MAX_SPEC_CPU = 128_000  # FGD's normalisation constants
MAX_SPEC_GPU_MILLI = 8_000
CPU_ONLY = Request("cpu")


@dataclass(frozen=True, slots=True)
class NodeShape:
    cpu_milli: int
    memory_mib: int
    gpus: int


@dataclass(frozen=True, slots=True)
class Choice:
    gpus: tuple[int, ...]  # GPU indexes on the node
    options: tuple[Option, ...]
    after: Summary | None = None  # the node's fragmentation summary after it (migctl)


@dataclass
class Entry:
    """Per request kind, per node: does it fit, the best choice, fragmentation after it."""

    fits: np.ndarray
    choices: list[Choice | None]
    after_terms: np.ndarray  # nodes x typical pods (migctl only)
    after_free: np.ndarray


@dataclass(frozen=True, slots=True)
class Granted:
    """A placed pod: enough to release it."""

    node: int
    gpus: tuple[int, ...]
    labels: tuple[Hashable, ...]
    cpu_milli: int
    memory_mib: int


class Fleet:
    def __init__(
        self,
        nodes: Sequence[NodeShape],
        rules: GpuRules,
        policy: str,
        seed: int = 0,
        frag: NodeFrag | None = None,
    ) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown policy {policy!r}; one of {POLICIES}")
        if policy == "migctl" and frag is None:
            raise ValueError("the migctl policy needs typical pods (a NodeFrag)")
        self.rules, self.policy, self.rng = rules, policy, random.Random(seed)
        self.frag = frag if policy == "migctl" else None
        self.states: list[list[Hashable]] = [[rules.empty()] * n.gpus for n in nodes]
        self.offsets = np.cumsum([0] + [n.gpus for n in nodes])[:-1]
        self.free_cpu = np.array([n.cpu_milli for n in nodes], dtype=np.int64)
        self.free_mem = np.array([n.memory_mib for n in nodes], dtype=np.int64)
        self.free_units = np.array([n.gpus * rules.units for n in nodes], dtype=np.int64)
        self.busy = np.zeros(len(nodes), dtype=np.int64)  # GPUs holding something
        self.capacity_units = int(self.free_units.sum())
        self.highest_gpu = -1  # highest global GPU index ever used
        self.cache: dict[Request, Entry] = {}
        width = len(self.frag.weights) if self.frag else 0
        self.summaries = [self.frag.summary(s) if self.frag else None for s in self.states]
        self.terms = np.zeros((len(nodes), width))
        for node, summary in enumerate(self.summaries):
            if self.frag and summary:
                self.terms[node] = self.frag.terms(summary)

    @property
    def used_units(self) -> int:
        return self.capacity_units - int(self.free_units.sum())

    @property
    def busy_gpus(self) -> int:
        return int(self.busy.sum())

    def _share_choice(self, node: int, share: Hashable) -> Choice | None:
        rules, best, best_key = self.rules, None, None
        seen: set[Hashable] = set()
        for i, state in enumerate(self.states[node]):
            options = () if state in seen else rules.options(state, share)
            seen.add(state)
            if not options:
                continue
            if self.policy in ("first-fit", "random"):
                return Choice((i,), (options[0],))
            free_after = rules.units - rules.used(options[0].state)
            for option in options if self.frag else options[:1]:
                after = None
                score = 0.0
                if self.frag:
                    summary = self.summaries[node]
                    assert summary is not None
                    after = self.frag.changed(summary, state, option.state)
                    score = round(self.frag.score(after), 9)
                key = (score, free_after, i)
                if best_key is None or key < best_key:
                    best, best_key = Choice((i,), (option,), after), key
        return best

    def _whole_choice(self, node: int, count: int) -> Choice | None:
        rules = self.rules
        empty = [i for i, s in enumerate(self.states[node]) if rules.used(s) == 0][:count]
        if len(empty) < count:
            return None
        option = rules.options(rules.empty(), rules.whole)[0]
        after = self.summaries[node]
        if self.frag and after:
            for _ in empty:
                after = self.frag.changed(after, rules.empty(), option.state)
        return Choice(tuple(empty), (option,) * count, after)

    def _choice(self, node: int, request: Request) -> Choice | None:
        if request.kind == "cpu":
            return Choice((), (), self.summaries[node])
        if request.kind == "whole":
            return self._whole_choice(node, request.gpus)
        return self._share_choice(node, request.share)

    def _set(self, entry: Entry, node: int, choice: Choice | None) -> None:
        entry.choices[node] = choice
        entry.fits[node] = choice is not None
        if self.frag and choice is not None and choice.after is not None:
            entry.after_terms[node] = self.frag.terms(choice.after)
            entry.after_free[node] = choice.after.total_free

    def _entry(self, request: Request) -> Entry:
        if request not in self.cache:
            count = len(self.states)
            entry = Entry(
                np.zeros(count, dtype=bool),
                [None] * count,
                np.zeros_like(self.terms),
                np.zeros(count, dtype=np.int64),
            )
            for node in range(count):
                self._set(entry, node, self._choice(node, request))
            self.cache[request] = entry
        return self.cache[request]

    def _asked_units(self, request: Request) -> int:
        if request.kind == "whole":
            return request.gpus * self.rules.units
        return self.rules.units_of(request.share) if request.kind == "share" else 0

    def _pick_node(self, candidates: np.ndarray, request: Request, cpu: int, entry: Entry) -> int:
        if self.policy == "first-fit":
            return int(candidates[0])
        if self.policy == "random":
            return int(candidates[self.rng.randrange(len(candidates))])
        if self.frag is not None:
            left = self.free_cpu[candidates]
            before = self.frag.expected(self.terms[candidates], self.free_units[candidates], left)
            after = self.frag.expected(
                entry.after_terms[candidates], entry.after_free[candidates], left - cpu
            )
            order = np.lexsort((candidates, np.round(after - before, 9)))
            return int(candidates[order[0]])
        gpu_scale = 1000 / self.rules.units / MAX_SPEC_GPU_MILLI
        score = 0.5 * (self.free_cpu[candidates] - cpu) / MAX_SPEC_CPU + 0.5 * gpu_scale * (
            self.free_units[candidates] - self._asked_units(request)
        )
        return int(candidates[int(np.argmin(score))])

    def place(self, cpu_milli: int, memory_mib: int, request: Request) -> Granted | None:
        """Place a pod, or None when no node can take it (nothing changes then)."""
        entry = self._entry(request)
        mask = entry.fits & (self.free_cpu >= cpu_milli) & (self.free_mem >= memory_mib)
        candidates = np.flatnonzero(mask)
        if not len(candidates):
            return None
        node = self._pick_node(candidates, request, cpu_milli, entry)
        choice = entry.choices[node]
        assert choice is not None
        for gpu, option in zip(choice.gpus, choice.options, strict=True):
            self.states[node][gpu] = option.state
            self.highest_gpu = max(self.highest_gpu, int(self.offsets[node]) + gpu)
        self.free_cpu[node] -= cpu_milli
        self.free_mem[node] -= memory_mib
        self._update(node)
        labels = tuple(o.label for o in choice.options)
        return Granted(node, choice.gpus, labels, cpu_milli, memory_mib)

    def release(self, granted: Granted) -> None:
        node = granted.node
        for gpu, label in zip(granted.gpus, granted.labels, strict=True):
            self.states[node][gpu] = self.rules.remove(self.states[node][gpu], label)
        self.free_cpu[node] += granted.cpu_milli
        self.free_mem[node] += granted.memory_mib
        self._update(node)

    def _update(self, node: int) -> None:
        used = [self.rules.used(s) for s in self.states[node]]
        self.free_units[node] = len(used) * self.rules.units - sum(used)
        self.busy[node] = sum(1 for u in used if u)
        if self.frag:
            summary = self.frag.summary(self.states[node])
            self.summaries[node] = summary
            self.terms[node] = self.frag.terms(summary)
        for request, entry in self.cache.items():
            self._set(entry, node, self._choice(node, request))

    def layouts(self) -> list[list[Hashable]]:
        """Every GPU's state, by node (for checks)."""
        return [list(states) for states in self.states]
