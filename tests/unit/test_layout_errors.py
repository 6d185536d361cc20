"""Malformed layout files: each is refused with the exact key path, a line and a hint.

Why this exists: a layout file drives destructive changes, so every mistake must be
reported as an InvalidInputError (exit 11) naming the file, where in it, and how to fix
it, never as a traceback or a silent misreading (duplicate keys!). Each case below is a
small file with one mistake; the test checks the error's key path exactly, that the
message starts with the file name, and that there is a hint. Cases marked with a machine
are only detectable against that machine (resolve). Test-only.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import pytest

from migctl.catalog import Catalog
from migctl.errors import InvalidInputError
from migctl.layout import parse_layouts, resolve, select_layout
from migctl.model import GpuModel
from tests.unit.layout_attacks import alias_bomb, deep_nesting, mig_parted_count, native_count

HEADER = "apiVersion: migctl/v1\nkind: Layouts\nlayouts:\n"
MIXED = ["a100-sxm4-40gb", "a100-sxm4-40gb", "h100-80gb-hbm3", "h100-80gb-hbm3", "a30-24gb", "l40s"]
H100_NODE = ["h100-80gb-hbm3"] * 2


def native(body: str) -> str:
    """A native file whose ``layouts:`` mapping is ``body`` (indented by two)."""
    return HEADER + textwrap.indent(textwrap.dedent(body), "  ")


def one_gpu_entry(entry: str) -> str:
    """Layout ``a`` with one ``gpus`` entry given as YAML lines."""
    return native("a:\n  gpus:\n" + textwrap.indent(textwrap.dedent(entry), "    "))


def mig_parted(body: str) -> str:
    return "version: v1\nmig-configs:\n" + textwrap.indent(textwrap.dedent(body), "  ")


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    key_path: str
    machine: tuple[str, ...] = ()  # catalog keys by GPU index; empty: a load-time error
    layout: str | None = None
    line: int | None = None


GOOD_ENTRY = "- select: all\n  mig: true\n"

CASES = [
    # --- the document itself -------------------------------------------------------------
    Case("empty file", "", ""),
    Case("only a comment", "# nothing here\n", ""),
    Case("a list, not a mapping", "- a\n- b\n", "", line=1),
    Case("a scalar document", "just text\n", ""),
    Case(
        "YAML syntax error", HEADER + "  a:\n    gpus:\n      - select: all\n     mig: true\n", ""
    ),
    Case("two YAML documents", HEADER + "  a: {}\n---\nkind: Layouts\n", "", line=6),
    Case("neither format", "layout:\n  a: {}\n", ""),
    # --- documents that would take unbounded work to read --------------------------------
    Case("alias bomb", alias_bomb(7, 9), "", line=6),
    Case("recursive alias", "version: v1\nmig-configs: &m\n  a: [*m]\n", "", line=2),
    Case("nesting 60000 deep", deep_nesting(60000), "", line=1),
    Case(
        "a 5000-digit count",
        mig_parted("x:\n  - devices: all\n    mig-enabled: true\n    mig-devices:\n")
        + '        "1g.10gb": '
        + "9" * 5000
        + "\n",
        "",
        line=7,
    ),
    # --- duplicate keys (PyYAML would keep the last silently) ----------------------------
    Case(
        "duplicate top-level key",
        HEADER + "  a: {gpus: [{select: all, mig: false}]}\nlayouts: {}\n",
        "layouts",
        line=5,
    ),
    Case(
        "duplicate layout name",
        native("a:\n  gpus: [{select: all, mig: false}]\na:\n  gpus: [{select: all, mig: true}]\n"),
        "layouts.a",
        line=6,
    ),
    Case(
        "duplicate key in a GPU entry",
        one_gpu_entry("- select: all\n  mig: true\n  mig: false\n"),
        "layouts.a.gpus[0].mig",
        line=8,
    ),
    Case(
        "duplicate mig-devices key",
        mig_parted(
            "x:\n  - devices: all\n    mig-enabled: true\n"
            '    mig-devices:\n      "1g.10gb": 3\n      "1g.10gb": 4\n'
        ),
        'mig-configs.x[0].mig-devices["1g.10gb"]',
        line=8,
    ),
    # --- native header -------------------------------------------------------------------
    Case(
        "wrong apiVersion",
        "apiVersion: migctl/v2\nkind: Layouts\nlayouts:\n  a:\n"
        "    gpus: [{select: all, mig: false}]\n",
        "apiVersion",
        line=1,
    ),
    Case(
        "wrong kind",
        "apiVersion: migctl/v1\nkind: Layout\nlayouts:\n  a:\n"
        "    gpus: [{select: all, mig: false}]\n",
        "kind",
        line=2,
    ),
    Case(
        "missing apiVersion",
        "kind: Layouts\nlayouts:\n  a:\n    gpus: [{select: all, mig: false}]\n",
        "apiVersion",
    ),
    Case(
        "unknown top-level key",
        HEADER.replace("layouts:", "metadata: {}\nlayouts:")
        + "  a: {gpus: [{select: all, mig: false}]}\n",
        "metadata",
        line=3,
    ),
    Case("no layouts", HEADER.replace("layouts:", "layouts: {}"), "layouts"),
    Case(
        "layout name with a space",
        native('"my layout":\n  gpus: [{select: all, mig: false}]\n'),
        'layouts["my layout"]',
    ),
    Case(
        "description not a string",
        native("a:\n  description: 42\n  gpus: [{select: all, mig: false}]\n"),
        "layouts.a.description",
    ),
    Case(
        "unknown key in a layout",
        native("a:\n  gpu: [{select: all, mig: false}]\n"),
        "layouts.a.gpu",
    ),
    # --- GPU entries ---------------------------------------------------------------------
    Case("gpus empty", native("a:\n  gpus: []\n"), "layouts.a.gpus"),
    Case("gpus not a list", native("a:\n  gpus: {select: all}\n"), "layouts.a.gpus"),
    Case("missing mig", one_gpu_entry("- select: all\n"), "layouts.a.gpus[0].mig"),
    Case("missing select", one_gpu_entry("- mig: false\n"), "layouts.a.gpus[0].select"),
    Case(
        "mig as a quoted string",
        one_gpu_entry('- select: all\n  mig: "yes"\n'),
        "layouts.a.gpus[0].mig",
    ),
    Case(
        "misspelt key in a GPU entry",
        one_gpu_entry(GOOD_ENTRY + "  instancs: []\n"),
        "layouts.a.gpus[0].instancs",
        line=8,
    ),
    Case(
        "instances with mig false",
        one_gpu_entry("- select: all\n  mig: false\n  instances:\n    - profile: 1g.10gb\n"),
        "layouts.a.gpus[0].instances",
        line=8,
    ),
    Case(
        "unknown selector word",
        one_gpu_entry("- select: every\n  mig: false\n"),
        "layouts.a.gpus[0].select",
    ),
    Case(
        "empty selector", one_gpu_entry("- select: {}\n  mig: false\n"), "layouts.a.gpus[0].select"
    ),
    Case(
        "unknown selector key",
        one_gpu_entry("- select: {gpu: 0}\n  mig: false\n"),
        "layouts.a.gpus[0].select.gpu",
    ),
    Case(
        "negative GPU index",
        one_gpu_entry("- select: {index: [0, -1]}\n  mig: false\n"),
        "layouts.a.gpus[0].select.index[1]",
    ),
    Case(
        "unknown model name",
        one_gpu_entry("- select: {model: [h100, h1000]}\n  mig: false\n"),
        "layouts.a.gpus[0].select.model[1]",
    ),
    Case(
        "malformed PCI id",
        one_gpu_entry('- select: {pci: "0x23"}\n  mig: false\n'),
        "layouts.a.gpus[0].select.pci",
    ),
    Case(
        "PCI id of no catalog GPU",
        one_gpu_entry('- select: {pci: ["0x2330", "0x9999"]}\n  mig: false\n'),
        "layouts.a.gpus[0].select.pci[1]",
    ),
    Case(
        "mig on a GPU model without MIG",
        one_gpu_entry("- select: {model: l40s}\n  mig: true\n"),
        "layouts.a.gpus[0].mig",
    ),
    # --- instances -----------------------------------------------------------------------
    Case(
        "missing profile",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - count: 2\n"),
        "layouts.a.gpus[0].instances[0].profile",
    ),
    Case(
        "profile is a number",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - profile: 7\n"),
        "layouts.a.gpus[0].instances[0].profile",
    ),
    Case(
        "negative count",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - {profile: 1g.10gb, count: -2}\n"),
        "layouts.a.gpus[0].instances[0].count",
        line=9,
    ),
    Case(
        "zero count",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - {profile: 1g.10gb, count: 0}\n"),
        "layouts.a.gpus[0].instances[0].count",
    ),
    Case(
        "count as a string",
        one_gpu_entry(GOOD_ENTRY + '  instances:\n    - {profile: 1g.10gb, count: "3"}\n'),
        "layouts.a.gpus[0].instances[0].count",
    ),
    Case(
        "fractional count",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - {profile: 1g.10gb, count: 1.5}\n"),
        "layouts.a.gpus[0].instances[0].count",
    ),
    Case(
        "misspelt instance key",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - {profile: 1g.10gb, cout: 2}\n"),
        "layouts.a.gpus[0].instances[0].cout",
    ),
    Case(
        "placement count mismatch",
        one_gpu_entry(
            GOOD_ENTRY + "  instances:\n    - {profile: 3g.40gb, count: 2, placement: 4}\n"
        ),
        "layouts.a.gpus[0].instances[0].placement",
    ),
    Case(
        "same start twice",
        one_gpu_entry(
            GOOD_ENTRY + "  instances:\n    - {profile: 1g.10gb, count: 2, placement: [3, 3]}\n"
        ),
        "layouts.a.gpus[0].instances[0].placement",
    ),
    Case(
        "negative start",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - {profile: 1g.10gb, placement: [-1]}\n"),
        "layouts.a.gpus[0].instances[0].placement[0]",
    ),
    Case(
        "compute not a list",
        one_gpu_entry(GOOD_ENTRY + "  instances:\n    - {profile: 3g.40gb, compute: 1c.3g.40gb}\n"),
        "layouts.a.gpus[0].instances[0].compute",
    ),
    # --- model-specific, found at load time for model selectors --------------------------
    Case(
        "unknown profile for the model",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - profile: 1g.10gb\n    - profile: 3g.45gb\n"
        ),
        "layouts.a.gpus[0].instances[1].profile",
        line=10,
    ),
    Case(
        "CI profile written as GI profile",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n  instances:\n    - profile: 1c.3g.40gb\n"
        ),
        "layouts.a.gpus[0].instances[0].profile",
    ),
    Case(
        "illegal start for the profile",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - {profile: 3g.40gb, placement: 2}\n"
        ),
        "layouts.a.gpus[0].instances[0].placement",
    ),
    Case(
        "fixed placements collide",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - {profile: 4g.40gb, placement: 0}\n"
            "    - {profile: 2g.20gb, placement: 2}\n"
        ),
        "layouts.a.gpus[0].instances[1].placement",
    ),
    Case(
        "unknown CI profile",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - {profile: 3g.40gb, compute: [1c.3g.40gb, 1c.4g.40gb]}\n"
        ),
        "layouts.a.gpus[0].instances[0].compute[1]",
    ),
    Case(
        "CIs exceed the GI",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - {profile: 3g.40gb, compute: [2c.3g.40gb, 2c.3g.40gb]}\n"
        ),
        "layouts.a.gpus[0].instances[0].compute",
    ),
    Case(
        "count above the profile limit",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - {profile: 3g.40gb, count: 3}\n"
        ),
        "layouts.a.gpus[0].instances[0].profile",
    ),
    Case(
        "instances can never fit",
        one_gpu_entry(
            "- select: {model: h100}\n  mig: true\n"
            "  instances:\n    - profile: 4g.40gb\n    - profile: 2g.20gb\n    - profile: 1g.20gb\n"
            "    - profile: 1g.10gb\n"
        ),
        "layouts.a.gpus[0].instances",
    ),
    Case(
        "too many instances",
        one_gpu_entry(
            "- select: {model: a30}\n  mig: true\n"
            "  instances:\n    - {profile: 1g.6gb, count: 4}\n    - {profile: 1g.6gb+me}\n"
        ),
        "layouts.a.gpus[0].instances",
    ),
    # --- choosing a layout ---------------------------------------------------------------
    Case(
        "several layouts, none chosen",
        native(
            "a:\n  gpus: [{select: all, mig: false}]\nb:\n  gpus: [{select: all, mig: false}]\n"
        ),
        "layouts",
    ),
    Case(
        "unknown layout name",
        native("a:\n  gpus: [{select: all, mig: false}]\n"),
        "layouts",
        layout="inference",
    ),
    # --- only against a machine ----------------------------------------------------------
    Case(
        "selector matches no GPU",
        one_gpu_entry("- select: {model: a30}\n  mig: false\n"),
        "layouts.a.gpus[0].select",
        machine=tuple(H100_NODE),
    ),
    Case(
        "index beyond the machine",
        one_gpu_entry("- select: {index: [1, 2]}\n  mig: false\n"),
        "layouts.a.gpus[0].select",
        machine=tuple(H100_NODE),
    ),
    Case(
        "mig on every GPU of a node with an L40S",
        one_gpu_entry(GOOD_ENTRY),
        "layouts.a.gpus[0].mig",
        machine=tuple(MIXED),
    ),
    Case(
        "profile unknown on one model of the machine",
        one_gpu_entry(
            "- select: {index: [2, 4]}\n  mig: true\n  instances:\n    - profile: 1g.10gb\n"
        ),
        "layouts.a.gpus[0].instances[0].profile",
        machine=tuple(MIXED),
    ),
    # --- mig-parted ----------------------------------------------------------------------
    Case(
        "mig-parted wrong version",
        "version: v2\nmig-configs:\n  x:\n    - devices: all\n      mig-enabled: false\n",
        "version",
        line=1,
    ),
    Case(
        "mig-parted missing version",
        "mig-configs:\n  x:\n    - devices: all\n      mig-enabled: false\n",
        "version",
    ),
    Case(
        "mig-parted unknown top-level key",
        mig_parted("x:\n  - devices: all\n    mig-enabled: false\n") + "flavor: x\n",
        "flavor",
    ),
    Case("mig-parted no configs", "version: v1\nmig-configs: {}\n", "mig-configs"),
    Case("mig-parted empty config", mig_parted("x: []\n"), "mig-configs.x"),
    Case(
        "mig-parted missing devices",
        mig_parted("x:\n  - mig-enabled: false\n"),
        "mig-configs.x[0].devices",
    ),
    Case(
        "mig-parted missing mig-enabled",
        mig_parted("x:\n  - devices: all\n"),
        "mig-configs.x[0].mig-enabled",
    ),
    Case(
        "mig-parted devices word",
        mig_parted("x:\n  - devices: some\n    mig-enabled: false\n"),
        "mig-configs.x[0].devices",
    ),
    Case(
        "mig-parted devices null",
        mig_parted("x:\n  - devices:\n    mig-enabled: false\n"),
        "mig-configs.x[0].devices",
    ),
    Case(
        "mig-parted mig-devices missing",
        mig_parted("x:\n  - devices: all\n    mig-enabled: true\n"),
        "mig-configs.x[0].mig-devices",
    ),
    Case(
        "mig-parted devices with MIG off",
        mig_parted(
            'x:\n  - devices: all\n    mig-enabled: false\n    mig-devices: {"1g.10gb": 1}\n'
        ),
        "mig-configs.x[0].mig-devices",
    ),
    Case(
        "mig-parted negative count",
        mig_parted(
            'x:\n  - devices: all\n    mig-enabled: true\n    mig-devices: {"1g.10gb": -1}\n'
        ),
        'mig-configs.x[0].mig-devices["1g.10gb"]',
    ),
    Case(
        "mig-parted malformed profile",
        mig_parted('x:\n  - devices: all\n    mig-enabled: true\n    mig-devices: {"1g10gb": 1}\n'),
        'mig-configs.x[0].mig-devices["1g10gb"]',
    ),
    Case(
        "mig-parted unquoted device-filter",
        mig_parted("x:\n  - device-filter: 0x233010DE\n    devices: all\n    mig-enabled: false\n"),
        "mig-configs.x[0].device-filter",
    ),
    Case(
        "mig-parted misspelt entry key",
        mig_parted("x:\n  - devices: all\n    mig-enabled: false\n    devicefilter: x\n"),
        "mig-configs.x[0].devicefilter",
    ),
    Case(
        "mig-parted profile unknown for the model",
        mig_parted('x:\n  - devices: all\n    mig-enabled: true\n    mig-devices: {"1g.5gb": 7}\n'),
        'mig-configs.x[0].mig-devices["1g.5gb"]',
        machine=tuple(H100_NODE),
    ),
    Case(
        "mig-parted count too high",
        mig_parted(
            '"all-1g.10gb":\n  - devices: [0]\n'
            '    mig-enabled: true\n    mig-devices: {"1g.10gb": 8}\n'
        ),
        'mig-configs["all-1g.10gb"][0].mig-devices["1g.10gb"]',
        machine=tuple(H100_NODE),
    ),
    Case(
        "native count of a billion",
        native_count("1g.10gb", 10**9),
        "layouts.x.gpus[0].instances[0].profile",
        machine=tuple(H100_NODE),
        line=8,
    ),
    Case(
        "mig-parted count of a billion",
        mig_parted_count("1g.10gb", 10**9),
        'mig-configs.x[0].mig-devices["1g.10gb"]',
        machine=tuple(H100_NODE),
    ),
    Case(
        "mig-parted CI count of a billion",
        mig_parted_count("1c.7g.80gb", 10**9),
        'mig-configs.x[0].mig-devices["1c.7g.80gb"]',
        machine=tuple(H100_NODE),
    ),
    Case(
        "mig-parted unknown CI profile",
        mig_parted(
            'x:\n  - devices: all\n    mig-enabled: true\n    mig-devices: {"5c.7g.80gb": 1}\n'
        ),
        'mig-configs.x[0].mig-devices["5c.7g.80gb"]',
        machine=tuple(H100_NODE),
    ),
    Case(
        "mig-parted MIG on a GPU without MIG",
        mig_parted("x:\n  - devices: [5]\n    mig-enabled: true\n    mig-devices: {}\n"),
        "mig-configs.x[0].mig-enabled",
        machine=tuple(MIXED),
    ),
]


def _machine(catalog: Catalog, keys: tuple[str, ...]) -> list[tuple[int, GpuModel]]:
    return [(index, catalog.get(key)) for index, key in enumerate(keys)]


def test_the_cases_are_many_and_distinct() -> None:
    assert len(CASES) >= 30
    assert len({case.id for case in CASES}) == len(CASES)
    assert len({case.text for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_malformed_file_is_refused_precisely(case: Case, catalog: Catalog) -> None:
    source = "bad-" + case.id.replace(" ", "-") + ".yaml"
    with pytest.raises(InvalidInputError) as caught:
        layout = select_layout(
            parse_layouts(case.text, source=source, catalog=catalog), case.layout
        )
        assert case.machine, "the file was accepted without a machine to resolve against"
        resolve(layout, _machine(catalog, case.machine))
    error = caught.value
    assert error.exit_code == 11
    assert error.context["key_path"] == case.key_path
    assert error.context["file"] == source
    assert error.message.startswith(source)
    assert case.key_path in error.message
    assert error.hint, "every layout error says how to fix it"
    assert "Traceback" not in str(error)
    if case.line is not None:
        assert error.context["line"] == case.line
        assert error.message.startswith(f"{source}:{case.line}: ")
