"""Fast packing heuristics, no solver: best-fit decreasing and greedy pattern repetition.

Why this exists: fleets of thousands of GPUs need an answer in milliseconds and must not
depend on a solver. Two heuristics run and the better answer wins:

* best-fit decreasing: demand classes largest first; each instance goes to the fullest
  GPU that can still take its smallest acceptable profile, or opens a fresh GPU;
* pattern greedy: among the layout patterns that serve the hardest class still waiting,
  take the one serving the most demand (``class_weights``: the share of a GPU that each
  instance needs at least) and repeat it on as many GPUs as the demand allows: good
  where compute and memory slices must both be filled (3g+4x1g beats 3g+3g) and on
  fleets that mix GPU models.

GPUs with identical contents are kept as one group with a count and move at once, so the
work grows with the number of distinct GPU states, not with GPUs or instances.
Imported by ``planner.packing``.
"""

from __future__ import annotations

import time

from migctl.planner.packing_model import Allocation, LabeledState, Problem

GroupKey = tuple[int, LabeledState]  # (model index, contents)


def _class_order(problem: Problem) -> list[int]:
    """Hardest first: the largest share of a GPU that the class needs at least."""

    def need(class_index: int) -> tuple[float, int]:
        shares = []
        for model_index, names in enumerate(problem.classes[class_index].candidates):
            if names:
                total = problem.models[model_index].memory_slices or 1
                shares.append(problem.profile(model_index, names[0]).memory_slices / total)
        return (-min(shares, default=0.0), class_index)

    return sorted(range(len(problem.classes)), key=need)


def _used_slices(problem: Problem, model_index: int, state: LabeledState) -> int:
    return sum(problem.profile(model_index, name).memory_slices for name, _ in state)


def _first_fit(problem: Problem, key: GroupKey, class_index: int) -> str | None:
    """The smallest acceptable profile that still fits on GPUs in group ``key``."""
    model_index, state = key
    names = tuple(n for n, _ in state)
    cache = problem.caches[model_index]
    for name in problem.classes[class_index].candidates[model_index]:
        if cache.fits((*names, name)):
            return name
    return None


def _best_group(
    problem: Problem, groups: dict[GroupKey, int], class_index: int
) -> tuple[GroupKey, str] | None:
    best: tuple[tuple[int, int, int, GroupKey], GroupKey, str] | None = None
    for key, count in groups.items():
        if count <= 0:
            continue
        name = _first_fit(problem, key, class_index)
        if name is None:
            continue
        model_index, state = key
        total = problem.models[model_index].memory_slices or 0
        free_after = total - _used_slices(problem, model_index, state)
        free_after -= problem.profile(model_index, name).memory_slices
        opened = 1 if state else 0
        # Prefer GPUs already in use, then the fullest, then the lowest GPU index.
        score = (1 - opened, free_after, problem.gpu_indices[model_index][0], key)
        if best is None or score < best[0]:
            best = (score, key, name)
    return None if best is None else (best[1], best[2])


def _fill_one(
    problem: Problem, key: GroupKey, class_index: int, limit: int
) -> tuple[LabeledState, int]:
    """Fill one GPU of group ``key`` with up to ``limit`` instances of the class, in turn."""
    model_index, state = key
    added = 0
    while added < limit:
        name = _first_fit(problem, (model_index, state), class_index)
        if name is None:
            break
        state = tuple(sorted((*state, (name, class_index))))
        added += 1
    return state, added


def _move(groups: dict[GroupKey, int], key: GroupKey, state: LabeledState, count: int) -> None:
    groups[key] -= count
    new_key = (key[0], state)
    groups[new_key] = groups.get(new_key, 0) + count


def best_fit(problem: Problem) -> Allocation:
    """Best-fit decreasing over GPU groups; near-constant in the number of GPUs.

    Each step fills one GPU of the best group with as many instances of the class as
    fit, then repeats that on as many GPUs of the group as the demand still needs: what
    instance-by-instance best fit would do, at the cost of one step.
    """
    started = time.perf_counter()
    groups: dict[GroupKey, int] = {
        (m, ()): len(indices) for m, indices in enumerate(problem.gpu_indices)
    }
    unmet = [0] * len(problem.classes)
    for class_index in _class_order(problem):
        left = problem.classes[class_index].count
        while left > 0:
            found = _best_group(problem, groups, class_index)
            if found is None:
                unmet[class_index] = left
                break
            key = found[0]
            state, per_gpu = _fill_one(problem, key, class_index, left)
            copies = min(groups[key], left // per_gpu)  # per_gpu <= left, so >= 1
            _move(groups, key, state, copies)
            left -= per_gpu * copies
    states: list[dict[LabeledState, int]] = [{} for _ in problem.models]
    for (model_index, state), count in groups.items():
        if state and count:
            states[model_index][state] = count
    return Allocation("greedy", False, states, unmet, time.perf_counter() - started)


# Pattern greedy --------------------------------------------------------------------------


def class_weights(problem: Problem) -> list[float]:
    """What one instance of each class is worth, in GPUs, comparable across GPU models.

    The fraction of a GPU (mean of memory and compute slice shares) that the class's
    smallest acceptable profile takes on the model where it takes the least.
    """
    weights = []
    for entry in problem.classes:
        shares = []
        for model_index, names in enumerate(entry.candidates):
            if names:
                model = problem.models[model_index]
                profile = problem.profile(model_index, names[0])
                memory = profile.memory_slices / (model.memory_slices or profile.memory_slices)
                compute = profile.compute_slices / (model.compute_slices or profile.compute_slices)
                shares.append((memory + compute) / 2)
        weights.append(min(shares, default=0.0))
    return weights


def _fill_pattern(
    problem: Problem,
    model_index: int,
    pattern: tuple[str, ...],
    left: list[int],
    weights: list[float],
) -> tuple[tuple[float, float], LabeledState]:
    """Serve classes from the pattern's slots, largest slot first, hardest class first."""
    remaining = list(left)
    served: list[tuple[str, int]] = []
    slots = sorted(pattern, key=lambda n: -problem.profile(model_index, n).memory_slices)
    for name in slots:
        takers = [
            c
            for c, entry in enumerate(problem.classes)
            if remaining[c] and name in entry.candidates[model_index]
        ]
        if takers:
            chosen = max(takers, key=lambda c: (weights[c], -c))
            remaining[chosen] -= 1
            served.append((name, chosen))
    hardest = max((weights[c] for _, c in served), default=0.0)
    return (hardest, sum(weights[c] for _, c in served)), tuple(sorted(served))


def _best_pattern(
    problem: Problem, free: list[int], left: list[int], weights: list[float]
) -> tuple[int, LabeledState] | None:
    best: tuple[tuple[float, float, int], int, LabeledState] | None = None
    for model_index, count in enumerate(free):
        if not count:
            continue
        for pattern in problem.patterns(model_index):
            (hardest, worth), state = _fill_pattern(problem, model_index, pattern, left, weights)
            used = sum(problem.profile(model_index, n).memory_slices for n, _ in state)
            score = (hardest, worth, -used)
            if state and (best is None or score > best[0]):
                best = (score, model_index, state)
    return None if best is None else (best[1], best[2])


def pattern_greedy(problem: Problem) -> Allocation:
    """Repeat the most valuable pattern as often as the demand allows, then the next."""
    started = time.perf_counter()
    free = [len(indices) for indices in problem.gpu_indices]
    left = [entry.count for entry in problem.classes]
    states: list[dict[LabeledState, int]] = [{} for _ in problem.models]
    weights = class_weights(problem)
    while any(left):
        found = _best_pattern(problem, free, left, weights)
        if found is None:
            break
        model_index, state = found
        uses: dict[int, int] = {}
        for _, c in state:
            uses[c] = uses.get(c, 0) + 1
        copies = min(free[model_index], *(left[c] // k for c, k in uses.items()))
        free[model_index] -= copies
        for c, k in uses.items():
            left[c] -= k * copies
        states[model_index][state] = states[model_index].get(state, 0) + copies
    return Allocation("greedy", False, states, left, time.perf_counter() - started)


def rank(problem: Problem, allocation: Allocation) -> tuple[int, int, int, int]:
    """The objective (unmet, GPUs, memory slices, compute slices) of an allocation."""
    gpus = memory = compute = 0
    for model_index, states in enumerate(allocation.states):
        for state, count in states.items():
            gpus += count
            for name, _ in state:
                profile = problem.profile(model_index, name)
                memory += count * profile.memory_slices
                compute += count * profile.compute_slices
    return (sum(allocation.unmet), gpus, memory, compute)


def greedy(problem: Problem) -> Allocation:
    """The better of best-fit decreasing and pattern greedy (both solver-free)."""
    started = time.perf_counter()
    answers = [best_fit(problem), pattern_greedy(problem)]
    best = min(answers, key=lambda a: rank(problem, a))
    best.seconds = time.perf_counter() - started
    return best
