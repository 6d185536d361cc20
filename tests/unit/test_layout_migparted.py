"""mig-parted configs load unchanged and resolve as mig-parted would apply them.

Why this exists: clusters keep their MIG layouts in mig-parted files (the GPU operator's
default config); migctl must accept them as they are and reach the same per-GPU result:
device filters by PCI id (lists, single strings, unknown GPUs, subsystem ids), ``devices:
all`` skipping GPUs without MIG, later entries winning, zero counts, ``+me`` profiles and
``<c>c.<g>g.<gb>gb`` keys. Expected results are written out by hand from mig-parted's
rules, not computed by migctl. Test-only.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from migctl.catalog import Catalog
from migctl.errors import InvalidInputError
from migctl.layout import (
    GpuLayout,
    LayoutFile,
    LayoutFormat,
    MachineGpu,
    Resolution,
    load_layouts,
    parse_layouts,
    resolve,
    resolve_machine,
    select_layout,
)
from migctl.model import GpuModel

DATA = Path(__file__).parents[1] / "data" / "layouts"
MIXED = ["a100-sxm4-40gb", "a100-sxm4-40gb", "h100-80gb-hbm3", "h100-80gb-hbm3", "a30-24gb", "l40s"]


def machine(catalog: Catalog, *keys: str) -> list[tuple[int, GpuModel]]:
    return [(index, catalog.get(key)) for index, key in enumerate(keys)]


def profile_counts(layout: GpuLayout) -> dict[str, int]:
    return dict(Counter(wanted.profile for wanted in layout.instances))


@pytest.fixture(scope="module")
def operator_file() -> LayoutFile:
    return load_layouts(DATA / "gpu-operator-style.yaml")


def resolve_named(
    file: LayoutFile, name: str, gpus: list[tuple[int, GpuModel]]
) -> dict[int, GpuLayout]:
    return resolve(select_layout(file, name), gpus)


def test_format_is_detected_and_every_config_is_read(operator_file: LayoutFile) -> None:
    assert operator_file.format is LayoutFormat.MIG_PARTED
    assert operator_file.names == (
        "all-disabled",
        "all-enabled",
        "all-1g.10gb",
        "all-1g.10gb.me",
        "all-3g.40gb",
        "all-balanced",
        "mixed-custom",
    )


def test_all_balanced_picks_the_entry_of_each_model(
    operator_file: LayoutFile, catalog: Catalog
) -> None:
    result = resolve_named(operator_file, "all-balanced", machine(catalog, *MIXED))
    a100 = {"1g.5gb": 2, "2g.10gb": 1, "3g.20gb": 1}
    h100 = {"1g.10gb": 2, "2g.20gb": 1, "3g.40gb": 1}
    assert {i: profile_counts(layout) for i, layout in result.items()} == {
        0: a100,
        1: a100,
        2: h100,
        3: h100,
        4: {"1g.6gb": 2, "2g.12gb": 1},
    }
    assert all(layout.mig_enabled for layout in result.values())
    assert 5 not in result  # no entry's device-filter matches the L40S


def test_all_balanced_on_h200_and_rtx_pro(operator_file: LayoutFile, catalog: Catalog) -> None:
    result = resolve_named(operator_file, "all-balanced", machine(catalog, "h200", "rtx-pro-6000"))
    assert profile_counts(result[0]) == {"1g.18gb": 2, "2g.35gb": 1, "3g.71gb": 1}
    assert profile_counts(result[1]) == {"1g.24gb": 2, "2g.48gb": 1}


def test_all_1g_10gb_means_seven_on_80gb_parts_and_four_on_40gb_a100s(
    operator_file: LayoutFile, catalog: Catalog
) -> None:
    result = resolve_named(operator_file, "all-1g.10gb", machine(catalog, *MIXED))
    assert {i: profile_counts(layout) for i, layout in result.items()} == {
        0: {"1g.10gb": 4},
        1: {"1g.10gb": 4},
        2: {"1g.10gb": 7},
        3: {"1g.10gb": 7},
    }
    full_ci = {wanted.compute for layout in result.values() for wanted in layout.instances}
    assert full_ci == {("1g.10gb",)}


def test_devices_all_skips_gpus_without_mig_only_when_turning_mig_on(
    operator_file: LayoutFile, catalog: Catalog
) -> None:
    """mig-parted's apply skips the L40S for ``devices: all`` with MIG on (its assert fails
    there); with MIG off the L40S is selected and satisfies it (its assert passes)."""
    disabled = resolve_machine(
        select_layout(operator_file, "all-disabled"), machine(catalog, *MIXED)
    )
    assert disabled == Resolution({i: GpuLayout(False) for i in range(6)})
    enabled = resolve_machine(select_layout(operator_file, "all-enabled"), machine(catalog, *MIXED))
    assert enabled == Resolution({i: GpuLayout(True) for i in range(5)}, skipped=(5,))


def test_media_extension_profile(operator_file: LayoutFile, catalog: Catalog) -> None:
    result = resolve_named(operator_file, "all-1g.10gb.me", machine(catalog, "h100", "h100"))
    assert {i: profile_counts(layout) for i, layout in result.items()} == {
        0: {"1g.10gb+me": 1},
        1: {"1g.10gb+me": 1},
    }


def test_a_profile_one_gpu_lacks_is_an_error_naming_it(
    operator_file: LayoutFile, catalog: Catalog
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        resolve_named(operator_file, "all-3g.40gb", machine(catalog, "h100", "a30"))
    assert (
        caught.value.context["key_path"] == 'mig-configs["all-3g.40gb"][0].mig-devices["3g.40gb"]'
    )
    assert "GPU 1" in caught.value.message and "A30" in caught.value.message


def test_per_index_entries_later_wins_zero_counts_and_ci_keys(
    operator_file: LayoutFile, catalog: Catalog
) -> None:
    gpus = machine(catalog, *MIXED)
    a30 = MachineGpu(4, catalog.get("a30"), 0x20B7, 0x153210DE)
    resolution = resolve_machine(
        select_layout(operator_file, "mixed-custom"), [*gpus[:4], a30, gpus[5]]
    )
    result = resolution.layouts
    assert profile_counts(result[0]) == {"1g.5gb+me": 1, "1g.5gb": 2}
    assert result[1] == GpuLayout(True)  # only the first entry matched GPU 1
    gpu2 = result[2].instances  # 2 x 1c.3g.40gb: one 3g.40gb GI holding both CIs
    assert [(w.profile, w.start_slice, w.compute) for w in gpu2] == [
        ("3g.40gb", None, ("1c.3g.40gb", "1c.3g.40gb")),
    ]
    gpu3 = {(w.profile, w.compute) for w in result[3].instances}
    assert gpu3 == {("3g.40gb", ("3g.40gb",)), ("4g.40gb", ("4g.40gb",))}
    assert result[4] == GpuLayout(False)  # the subsystem-qualified filter matched the A30
    assert result[5] == GpuLayout(False)  # an explicit index may turn MIG off on the L40S
    assert set(result) == set(range(6))
    assert resolution.absent == (9,)  # devices: [5, 9] on a machine without GPU 9


def test_a_subsystem_in_a_device_filter_must_match_too(
    operator_file: LayoutFile, catalog: Catalog
) -> None:
    """As mig-parted's DeviceID.Matches: a filter with a subsystem needs all four ids."""
    layout = select_layout(operator_file, "mixed-custom")
    a30 = catalog.get("a30")
    for subsystem, mig_on in ((0x153210DE, False), (0x153110DE, True), (None, True)):
        result = resolve(layout, [MachineGpu(4, a30, 0x20B7, subsystem)])
        assert result[4] == GpuLayout(mig_on), hex(subsystem or 0)


def test_explicit_index_turning_mig_on_for_a_gpu_without_mig_is_an_error(catalog: Catalog) -> None:
    text = (
        "version: v1\nmig-configs:\n  x:\n    - devices: [1]\n      mig-enabled: true\n"
        "      mig-devices: {}\n"
    )
    layout = select_layout(parse_layouts(text, source="x.yaml"))
    with pytest.raises(InvalidInputError) as caught:
        resolve(layout, machine(catalog, "h100", "l40s"))
    assert caught.value.context["key_path"] == "mig-configs.x[0].mig-enabled"
    assert "GPU 1" in caught.value.message


def test_device_filter_needs_the_real_pci_id_when_a_model_has_several(catalog: Catalog) -> None:
    from migctl.layout import MachineGpu

    text = (
        'version: v1\nmig-configs:\n  x:\n    - device-filter: "0x20F110DE"\n      devices: all\n'
        '      mig-enabled: true\n      mig-devices: {"7g.40gb": 1}\n'
    )
    layout = select_layout(parse_layouts(text))
    pcie = catalog.get("a100-pcie-40gb")
    assert set(pcie.pci_device_ids) == {0x20B1, 0x20F1}
    known = resolve(layout, [MachineGpu(0, pcie, 0x20B1), MachineGpu(1, pcie, 0x20F1)])
    assert set(known) == {1}
    unknown = resolve(layout, [(0, pcie), (1, pcie)])  # without the GPU's id: any of the model's
    assert set(unknown) == {0, 1}


def one_entry(filter_line: str, devices: str = '{"3g.40gb": 2}') -> str:
    return (
        f"version: v1\nmig-configs:\n  x:\n    - {filter_line}devices: all\n"
        f"      mig-enabled: true\n      mig-devices: {devices}\n"
    )


def test_a_config_whose_every_count_is_zero_is_refused_as_mig_parted_refuses_it(
    catalog: Catalog,
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        parse_layouts(one_entry("", '{"1g.10gb": 0, "2g.20gb": 0}'), source="zero.yaml")
    assert caught.value.context["key_path"] == "mig-configs.x[0].mig-devices"
    assert "every count is 0" in caught.value.message
    h100 = [(0, catalog.get("h100"))]
    some = select_layout(parse_layouts(one_entry("", '{"1g.10gb": 0, "2g.20gb": 1}')))
    assert profile_counts(resolve(some, h100)[0]) == {"2g.20gb": 1}
    empty = select_layout(parse_layouts(one_entry("", "{}")))
    assert resolve(empty, h100) == {0: GpuLayout(True)}


@pytest.mark.parametrize(
    ("device_filter", "selects_the_h100"),
    [
        ('"A100"', False),  # a model name: mig-parted accepts it and matches nothing
        ('"0x2330"', False),  # device 0, vendor 0x2330
        ('["H100 80GB", "0x233010DE"]', True),
        ('"590352606"', True),  # 0x233010DE in decimal, as Go's ParseUint(s, 0, 32) reads it
        ('"04314010336"', True),  # ... and in octal
        ('"0X2330_10DE"', True),
        ('"0x233010DE:0x16C110DE"', False),  # the subsystem must match too; this one is unknown
        ('"0x233010DE:0x16C110DE:0x1"', False),  # not a device id: matches nothing
        ('"0x1233010DE"', False),  # more than 32 bits
    ],
)
def test_device_filter_strings_are_read_as_mig_parted_reads_them(
    catalog: Catalog, device_filter: str, selects_the_h100: bool
) -> None:
    layout = select_layout(parse_layouts(one_entry(f"device-filter: {device_filter}\n      ")))
    resolution = resolve_machine(layout, [(0, catalog.get("h100"))])
    assert (0 in resolution.layouts) is selects_the_h100
    assert resolution.unselected == (() if selects_the_h100 else (0,))
