"""Native layout files resolve to the per-GPU layouts they describe.

Why this exists: apply and assert trust ``resolve``: selectors must pick exactly the GPUs
meant (by index, model name or alias, PCI id, combined), later entries must override
earlier ones, unselected GPUs must stay out, defaults (one full CI) must be spelled out,
fixed placements kept, and the result must not depend on how the file orders things.
Expected values are written out by hand. Test-only.
"""

from __future__ import annotations

import textwrap
from collections import Counter
from pathlib import Path

import pytest

from migctl.catalog import Catalog
from migctl.errors import InvalidInputError, NotFoundError, NotSupportedError
from migctl.layout import (
    GpuLayout,
    Layout,
    LayoutFormat,
    MachineGpu,
    WantedInstance,
    load_layout,
    parse_layouts,
    resolve,
    select_layout,
)
from migctl.model import GpuModel

MIXED = ("a100-sxm4-40gb", "a100-sxm4-40gb", "h100-80gb-hbm3", "h100-80gb-hbm3", "a30-24gb", "l40s")


def machine(catalog: Catalog, *keys: str) -> list[tuple[int, GpuModel]]:
    return [(index, catalog.get(key)) for index, key in enumerate(keys)]


def layout_of(gpus_yaml: str, catalog: Catalog) -> Layout:
    text = "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n  a:\n    gpus:\n"
    text += textwrap.indent(textwrap.dedent(gpus_yaml), "      ")
    return select_layout(parse_layouts(text, source="t.yaml", catalog=catalog))


def resolved(
    gpus_yaml: str, catalog: Catalog, gpus: list[tuple[int, GpuModel]]
) -> dict[int, GpuLayout]:
    return resolve(layout_of(gpus_yaml, catalog), gpus)


def counts(layout: GpuLayout) -> dict[str, int]:
    return dict(Counter(w.profile for w in layout.instances))


def test_a_later_entry_overrides_an_earlier_one(catalog: Catalog) -> None:
    result = resolved(
        """
        - select: all
          mig: true
          instances: [{profile: 1g.10gb, count: 7}]
        - select: {index: [2, 3]}
          mig: true
          instances: [{profile: 3g.40gb, count: 2}]
        - select: {index: 3}
          mig: false
        """,
        catalog,
        machine(catalog, *["h100"] * 4),
    )
    assert {i: counts(g) for i, g in result.items()} == {
        0: {"1g.10gb": 7},
        1: {"1g.10gb": 7},
        2: {"3g.40gb": 2},
        3: {},
    }
    assert [g.mig_enabled for g in result.values()] == [True, True, True, False]


def test_gpus_no_entry_selects_are_not_managed(catalog: Catalog) -> None:
    result = resolved(
        "- select: {index: 1}\n  mig: false\n", catalog, machine(catalog, "h100", "h100")
    )
    assert result == {1: GpuLayout(False)}


def test_mixed_node_by_model_alias_and_pci(catalog: Catalog) -> None:
    result = resolved(
        """
        - select: {model: a100-40gb}
          mig: true
          instances: [{profile: 1g.5gb, count: 7}]
        - select: {model: "NVIDIA H100 80GB HBM3"}
          mig: true
          instances: [{profile: 7g.80gb}]
        - select: {pci: 0x20B7}
          mig: true
          instances: [{profile: 4g.24gb}]
        - select: {model: l40s}
          mig: false
        """,
        catalog,
        machine(catalog, *MIXED),
    )
    assert {i: counts(g) for i, g in result.items()} == {
        0: {"1g.5gb": 7},
        1: {"1g.5gb": 7},
        2: {"7g.80gb": 1},
        3: {"7g.80gb": 1},
        4: {"4g.24gb": 1},
        5: {},
    }
    assert result[5] == GpuLayout(False)


def test_mig_on_an_l40s_names_the_gpu(catalog: Catalog) -> None:
    with pytest.raises(InvalidInputError) as caught:
        resolved("- select: {index: [4, 5]}\n  mig: true\n", catalog, machine(catalog, *MIXED))
    assert "GPU 5" in caught.value.message and "L40S" in caught.value.message
    assert caught.value.context["key_path"] == "layouts.a.gpus[0].mig"
    assert caught.value.context["line"] == 7


def test_selector_keys_combine_with_and(catalog: Catalog) -> None:
    result = resolved(
        "- select: {model: [h100, a30], index: [0, 3, 4]}\n  mig: false\n",
        catalog,
        machine(catalog, *MIXED),
    )
    assert set(result) == {3, 4}


@pytest.mark.parametrize(
    "name", ["h100", "h100-sxm5", "H100_80GB", "NVIDIA H100 80GB HBM3", "0x2330"]
)
def test_model_selector_accepts_every_catalog_spelling(name: str, catalog: Catalog) -> None:
    result = resolved(
        f'- select: {{model: "{name}"}}\n  mig: false\n', catalog, machine(catalog, *MIXED)
    )
    assert set(result) == {2, 3}


def test_pci_selector_uses_the_gpu_s_own_id_when_known(catalog: Catalog) -> None:
    pcie = catalog.get("a100-pcie-40gb")
    layout = layout_of('- select: {pci: "0x20F110DE"}\n  mig: false\n', catalog)
    gpus = [MachineGpu(0, pcie, 0x20B1), MachineGpu(1, pcie, 0x20F1)]
    assert set(resolve(layout, gpus)) == {1}


def test_optional_entry_may_match_nothing(catalog: Catalog) -> None:
    result = resolved(
        "- select: {model: h200}\n  optional: true\n  mig: false\n- select: all\n  mig: false\n",
        catalog,
        machine(catalog, "h100"),
    )
    assert result == {0: GpuLayout(False)}


def test_defaults_are_spelled_out_and_names_normalised(catalog: Catalog) -> None:
    result = resolved(
        """
        - select: all
          mig: true
          instances:
            - {profile: "MIG 3G.40GB", count: 1}
            - {profile: 2g.20gb, compute: [1c.2g.20gb, 1c.2g.20gb]}
            - {profile: 1g.20gb, compute: []}
        """,
        catalog,
        machine(catalog, "h100"),
    )
    assert set(result[0].instances) == {
        WantedInstance("3g.40gb", None, ("3g.40gb",)),
        WantedInstance("2g.20gb", None, ("1c.2g.20gb", "1c.2g.20gb")),
        WantedInstance("1g.20gb", None, ()),
    }


def test_fixed_placements_are_kept_and_order_does_not_matter(catalog: Catalog) -> None:
    first = resolved(
        """
        - select: all
          mig: true
          instances:
            - {profile: 1g.10gb, count: 2, placement: [1, 0]}
            - {profile: 3g.40gb, placement: 4}
            - {profile: 2g.20gb}
        """,
        catalog,
        machine(catalog, "h100"),
    )
    second = resolved(
        """
        - select: all
          mig: true
          instances:
            - {profile: 2g.20gb}
            - {profile: 3g.40gb, placement: [4]}
            - {profile: 1g.10gb, placement: 0}
            - {profile: 1g.10gb, placement: 1}
        """,
        catalog,
        machine(catalog, "h100"),
    )
    assert first == second
    starts = [(w.profile, w.start_slice) for w in first[0].instances]
    assert starts == [("1g.10gb", 0), ("1g.10gb", 1), ("3g.40gb", 4), ("2g.20gb", None)]


def test_instances_that_only_fit_beside_fixed_ones_in_one_way(catalog: Catalog) -> None:
    # 4g.40gb can only start at 0; with 3g.40gb pinned at 4 the pair fits, but a 1g more
    # cannot: memory slices 0-7 are all taken.
    ok = resolved(
        "- select: all\n  mig: true\n  instances:\n    - {profile: 3g.40gb, placement: 4}\n"
        "    - {profile: 4g.40gb}\n",
        catalog,
        machine(catalog, "h100"),
    )
    assert counts(ok[0]) == {"3g.40gb": 1, "4g.40gb": 1}
    with pytest.raises(InvalidInputError) as caught:
        resolved(
            "- select: all\n  mig: true\n  instances:\n    - {profile: 3g.40gb, placement: 0}\n"
            "    - {profile: 4g.40gb}\n",
            catalog,
            machine(catalog, "h100"),
        )
    assert caught.value.context["key_path"] == "layouts.a.gpus[0].instances"


def test_all_media_profile_allows_only_no_media_profiles(catalog: Catalog) -> None:
    gpus = machine(catalog, "rtx-pro-6000")
    fine = resolved(
        "- select: all\n  mig: true\n  instances:\n    - profile: 1g.24gb+me.all\n"
        "    - {profile: 1g.24gb-me, count: 3}\n",
        catalog,
        gpus,
    )
    assert counts(fine[0]) == {"1g.24gb+me.all": 1, "1g.24gb-me": 3}
    with pytest.raises(InvalidInputError, match=r"\+me\.all"):
        resolved(
            "- select: all\n  mig: true\n  instances:\n    - profile: 1g.24gb+me.all\n"
            "    - profile: 1g.24gb\n",
            catalog,
            gpus,
        )


def test_models_without_known_placements_cannot_be_planned(catalog: Catalog) -> None:
    gpus = machine(catalog, "rtx-pro-5000")
    assert resolved("- select: all\n  mig: true\n", catalog, gpus) == {0: GpuLayout(True)}
    with pytest.raises(NotSupportedError, match="placements"):
        resolved("- select: all\n  mig: true\n  instances: [{profile: 2g.48gb}]\n", catalog, gpus)


def test_gpu_layout_is_canonical_and_hashable() -> None:
    a = WantedInstance("1g.10gb", None, ("1g.10gb",))
    b = WantedInstance("3g.40gb", 4, ("3g.40gb",))
    assert GpuLayout(True, (a, b)) == GpuLayout(True, (b, a))
    assert GpuLayout(True, (a, b)).instances == (b, a)  # fixed placements first
    assert len({GpuLayout(True, (a, b)), GpuLayout(True, (b, a))}) == 1


def test_a_machine_with_repeated_indexes_is_refused(catalog: Catalog) -> None:
    layout = layout_of("- select: all\n  mig: false\n", catalog)
    with pytest.raises(ValueError, match="repeat"):
        resolve(layout, [(0, catalog.get("h100")), (0, catalog.get("a30"))])


def test_files_load_from_disk_and_missing_files_are_not_found(
    tmp_path: Path, catalog: Catalog
) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(
        "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n"
        "  only:\n    gpus: [{select: all, mig: false}]\n"
    )
    layout = load_layout(path, catalog=catalog)
    assert (layout.name, layout.format, layout.source) == ("only", LayoutFormat.NATIVE, str(path))
    with pytest.raises(NotFoundError):
        load_layout(tmp_path / "missing.yaml")
    with pytest.raises(InvalidInputError) as caught:
        load_layout(path, "other", catalog=catalog)
    assert "only" in str(caught.value.hint)


def test_load_time_checks_for_model_entries_use_the_catalog(catalog: Catalog) -> None:
    # The same mistake is found when the file is loaded if the entry names the model,
    # and only when resolving if it selects by index.
    by_index = layout_of(
        "- select: {index: 0}\n  mig: true\n  instances: [{profile: 1g.5gb}]\n", catalog
    )
    with pytest.raises(InvalidInputError) as caught:
        resolve(by_index, machine(catalog, "h100"))
    assert caught.value.context["key_path"] == "layouts.a.gpus[0].instances[0].profile"
    with pytest.raises(InvalidInputError):
        layout_of(
            "- select: {model: h100}\n  mig: true\n  instances: [{profile: 1g.5gb}]\n", catalog
        )
