"""mig-parted's compute-instance counts: ``"1c.2g.10gb": 6`` is six CIs in three shared GIs.

Why this exists: since mig-parted's commit 00d6a4c (2022) a ``<c>c.<g>g.<gb>gb`` count
counts compute instances, packed into GPU instances of ``<g>g.<gb>gb`` in mig-parted's
creation order; migctl made one GI per count and refused 7 of the 8 example layouts of
that change, all valid on an A100. The expected GIs below are written out by hand from
mig-parted's rule (``pkg/mig/config/config.go``: items sorted by G, then C, descending; a
CI goes into the GI created last when its GI profile is the same and it still fits), and
the oracle test checks migctl against a port of that code driving the simulator.
Test-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from migctl.backends.nvml import NvmlBackend
from migctl.backends.select import open_backend
from migctl.catalog import Catalog
from migctl.errors import InvalidInputError
from migctl.layout import GpuLayout, load_layout, parse_layouts, resolve, select_layout
from tests.unit import migparted_oracle as oracle

EXAMPLES = Path(__file__).parents[1] / "data" / "layouts" / "mig-parted-ci-counts.yaml"
TWO_1C = ("1c.2g.10gb", "1c.2g.10gb")

# GPU -> [(GI profile, its CIs)], by hand from mig-parted's packing rule
EXPECTED: dict[int, list[tuple[str, tuple[str, ...]]]] = {
    0: [("1g.5gb", ("1g.5gb",))] * 7,
    1: [("2g.10gb", TWO_1C)] * 3,
    2: [("3g.20gb", ("1c.3g.20gb",) * 3)] * 2,
    3: [("4g.20gb", ("1c.4g.20gb",) * 4)],
    4: [("7g.40gb", ("1c.7g.40gb",) * 7)],
    5: [("1g.5gb", ("1g.5gb",))] * 3 + [("2g.10gb", TWO_1C)] * 2,
    6: [("1g.5gb", ("1g.5gb",))] * 3 + [("2g.10gb", ("2g.10gb",)), ("2g.10gb", TWO_1C)],
    7: [("1g.5gb", ("1g.5gb",))] * 3 + [("2g.10gb", ("2g.10gb",)), ("2g.10gb", TWO_1C)],
}


def gis(layout: GpuLayout) -> list[tuple[str, tuple[str, ...]]]:
    return sorted((wanted.profile, wanted.compute) for wanted in layout.instances)


def test_every_example_of_mig_parted_s_ci_count_change_resolves_as_mig_parted_packs_it(
    catalog: Catalog,
) -> None:
    layout = load_layout(EXAMPLES)
    a100 = catalog.get("a100-sxm4-40gb")
    result = resolve(layout, [(gpu, a100) for gpu in range(8)])
    assert {gpu: gis(result[gpu]) for gpu in result} == {
        gpu: sorted(want) for gpu, want in EXPECTED.items()
    }


def mig_parted(devices: str, model_entry: str = "devices: all") -> str:
    return (
        f"version: v1\nmig-configs:\n  x:\n    - {model_entry}\n      mig-enabled: true\n"
        f"      mig-devices: {devices}\n"
    )


@pytest.mark.parametrize(
    ("devices", "expected"),
    [
        # a 2c and two 1c share one 4g.40gb GI (sorted 2c first; both 1c still fit)
        ('{"2c.4g.40gb": 1, "1c.4g.40gb": 2}', [("4g.40gb", ("2c.4g.40gb", "1c.4g.40gb", "1c.4g.40gb"))]),
        # the full 3g.40gb has its own GI; the 1c items fill another
        ('{"3g.40gb": 1, "1c.3g.40gb": 2}', [("3g.40gb", ("1c.3g.40gb", "1c.3g.40gb")), ("3g.40gb", ("3g.40gb",))]),
        # 4 x 1c.3g.40gb: three fill the first 3g.40gb, the fourth opens a second
        ('{"1c.3g.40gb": 4}', [("3g.40gb", ("1c.3g.40gb",) * 3), ("3g.40gb", ("1c.3g.40gb",))]),
        # 2c.3g.40gb sits at compute slice 0 (its only placement), a 1c fits beside it
        ('{"2c.3g.40gb": 2, "1c.3g.40gb": 1}',
         [("3g.40gb", ("2c.3g.40gb",)), ("3g.40gb", ("2c.3g.40gb", "1c.3g.40gb"))]),
        # "3c.3g.40gb" is the full CI: the same as "3g.40gb"
        ('{"3c.3g.40gb": 2}', [("3g.40gb", ("3g.40gb",))] * 2),
    ],
)  # fmt: skip
def test_packing_rule_cases_on_an_h100(
    catalog: Catalog, devices: str, expected: list[tuple[str, tuple[str, ...]]]
) -> None:
    layout = select_layout(parse_layouts(mig_parted(devices)))
    result = resolve(layout, [(0, catalog.get("h100"))])
    assert gis(result[0]) == sorted(expected)


def test_ci_counts_beyond_what_the_gis_hold_are_refused(catalog: Catalog) -> None:
    layout = select_layout(parse_layouts(mig_parted('{"1c.3g.40gb": 7}')))
    with pytest.raises(InvalidInputError) as caught:
        resolve(layout, [(0, catalog.get("h100"))])
    assert "7 x 1c.3g.40gb asked" in caught.value.message
    assert "at most 6 per GPU (2 x 3g.40gb, 3 in each)" in caught.value.message


def built_by_mig_parted(backend: NvmlBackend, gpu: int) -> list[tuple[str, tuple[str, ...]]]:
    """The GIs on ``gpu``, each with its CIs (a full CI named like its GI), sorted."""
    model = backend.live_model(gpu)
    found = []
    for gi in backend.gpu_instances(gpu):
        names = []
        for ci in backend.compute_instances(gpu, gi.id):
            profile = next(
                p for p in model.ci_profiles_for(gi.profile_name) if p.nvml_index == ci.profile_id
            )
            names.append(gi.profile_name if profile.is_default else profile.name)
        found.append((gi.profile_name, tuple(sorted(names))))
    return sorted(found)


def test_mig_parted_s_own_algorithm_builds_the_same_gis_on_the_simulator(catalog: Catalog) -> None:
    """The oracle (a port of mig-parted's SetMigConfig driving the simulated driver through
    pynvml, the driver choosing placements) agrees with the hand-written expectations."""
    layout = load_layout(EXAMPLES)
    backend = open_backend("dgx-a100", catalog=catalog)
    try:
        for gpu in range(8):
            assert backend.set_mig_mode(gpu, True).done
            entry = layout.rules[gpu]
            counts = {inst.profile: inst.count for inst in entry.instances}
            assert oracle.set_mig_config(backend, gpu, counts), (gpu, counts)
            expected = sorted((gi, tuple(sorted(cis))) for gi, cis in EXPECTED[gpu])
            assert built_by_mig_parted(backend, gpu) == expected, gpu
    finally:
        backend.close()
