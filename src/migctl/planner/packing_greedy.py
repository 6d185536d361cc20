"""Fast packing heuristic: best-fit decreasing over groups of identical GPUs.

Why this exists: fleets of thousands of GPUs need an answer in milliseconds and must not
depend on a solver. Demand classes are taken largest first; each instance goes to the
fullest GPU that can still take its smallest acceptable profile (best fit), or opens a
fresh GPU. GPUs with identical contents are kept as one group with a count, and a group
moves at once, so the work grows with the number of distinct GPU states, not with the
number of GPUs or instances. Imported by ``planner.packing``.
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


def greedy(problem: Problem) -> Allocation:
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
