"""What the simulator derives for catalog models the reference describes only in part.

Why this exists: every catalog model must be simulatable, yet a value the catalog
publishes must never be replaced by a derived one, and every derived value must be listed
(``GpuModel.derivations``) so that users can tell it from a fact.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from migctl.catalog import Catalog, load_catalog
from migctl.catalog.complete import ENGINE_FIELDS, GI_FIELDS, complete_model, share, value_of
from migctl.model import GiProfile, GpuModel
from migctl.sim.machine import simulated_model, simulation_gaps

CATALOG = load_catalog()
MODELS = CATALOG.mig_models


def test_the_catalog_has_the_22_reference_models() -> None:
    assert len(MODELS) == 22


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.key)
def test_every_model_is_complete_enough_to_simulate(model: GpuModel) -> None:
    complete = simulated_model(model, CATALOG)  # raises NotSupportedError on a gap
    assert simulation_gaps(complete) == []
    assert complete.memory_slices is not None and complete.total_memory_mib is not None
    ids = [p.id for p in complete.gi_profiles]
    assert len(set(ids)) == len(ids), "driver ids must be unique per GPU"
    for profile in complete.gi_profiles:
        assert all(value_of(profile, field) is not None for field in GI_FIELDS), profile.name
        assert all(p.end <= complete.memory_slices for p in profile.placements), profile.name
        assert complete.ci_profiles_for(profile.name), f"{profile.name} has no CI profile"
    assert all(c.sm_count is not None for c in complete.ci_profiles)


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m.key)
def test_published_values_are_kept_and_derived_ones_listed(model: GpuModel) -> None:
    complete = complete_model(model, CATALOG.models)
    listed = {(d.profile, d.field): d.value for d in complete.derivations}
    for before, after in zip(model.gi_profiles, complete.gi_profiles, strict=True):
        assert before.name == after.name
        for field in GI_FIELDS:
            published, now = value_of(before, field), value_of(after, field)
            if published is not None:
                assert now == published, (before.name, field)
                assert (before.name, field) not in listed
            else:
                assert listed.get((before.name, field)) == str(now), (before.name, field)
        if before.placements:
            assert after.placements == before.placements
            assert before.memory_slices == after.memory_slices
        else:
            assert (before.name, "placements") in listed
    published_cis = {(c.gi_profile, c.name): c for c in model.ci_profiles}
    for ci in complete.ci_profiles:
        old = published_cis.get((ci.gi_profile, ci.name))
        if old is not None and old.sm_count is not None:
            assert ci.sm_count == old.sm_count
    assert bool(complete.derivations) == (complete != replace(model, derivations=()))


def test_a_fully_published_model_derives_nothing_but_its_total() -> None:
    h100 = complete_model(CATALOG.get("h100-80gb-hbm3"), CATALOG.models)
    assert h100.derivations == ()
    a30 = complete_model(CATALOG.get("a30-24gb"), CATALOG.models)
    assert [(d.profile, d.field) for d in a30.derivations] == [("", "total_memory_mib")]


def test_a100_80gb_1g_20gb_takes_what_its_own_and_its_sibling_publish() -> None:
    """The issue's example: memory from the 2g.20gb (same memory slices) of the same GPU,
    SMs and engines from the A100-40GB's 1g.10gb (the same NVML profile on the same chip)."""
    model = CATALOG.get("a100-sxm4-80gb")
    complete = complete_model(model, CATALOG.models)
    profile = complete.gi_profile("1g.20gb")
    assert profile is not None
    assert profile.memory_mib == _profile(model, "2g.20gb").memory_mib == 19968
    sibling = _profile(CATALOG.get("a100-sxm4-40gb"), "1g.10gb")
    assert profile.sm_count == sibling.sm_count == 14
    assert profile.engines == sibling.engines
    assert complete.derived_fields("1g.20gb") == {
        "memory_mib",
        "sm_count",
        *ENGINE_FIELDS,
    }


def test_a_profile_without_memory_anywhere_is_sized_by_its_memory_slices() -> None:
    complete = complete_model(CATALOG.get("b300-288gb"), CATALOG.models)
    full = _profile(complete, "7g.269gb")
    assert full.memory_mib == 269 * 1024
    for profile in complete.gi_profiles:
        assert profile.memory_mib == full.memory_mib * profile.memory_slices // 8


def test_sms_scale_with_compute_slices_when_nothing_closer_is_published() -> None:
    model = CATALOG.get("b200-180gb")
    complete = complete_model(model, CATALOG.models)
    per_slice = _profile(model, "1g.23gb").sm_count
    assert per_slice == 18
    assert _profile(complete, "3g.90gb").sm_count == 3 * per_slice
    assert _profile(complete, "7g.180gb").sm_count == 7 * per_slice


def test_the_two_slice_rtx_pro_parts_get_a_placement_unit_per_compute_slice() -> None:
    complete = complete_model(CATALOG.get("rtx-pro-5000"), CATALOG.models)
    assert complete.memory_slices == 2
    assert [str(p) for p in _profile(complete, "1g.24gb").placements] == ["0:1", "1:1"]
    assert [str(p) for p in _profile(complete, "2g.48gb").placements] == ["0:2"]
    assert complete.derived_fields("") >= {"memory_slices", "total_memory_mib"}


def test_the_id_rule_reproduces_every_published_id_another_model_shares() -> None:
    """Hide one published id at a time: the share-of-the-GPU rule must give it back (when
    another model publishes a profile of the same share; A30's 2g+me is the only one)."""
    checked = 0
    for model in MODELS:
        for position, profile in enumerate(model.gi_profiles):
            if profile.id is None or not _shared_elsewhere(model, profile):
                continue
            hidden = list(model.gi_profiles)
            hidden[position] = replace(profile, id=None)
            complete = complete_model(replace(model, gi_profiles=tuple(hidden)), CATALOG.models)
            assert _profile(complete, profile.name).id == profile.id, (model.key, profile.name)
            checked += 1
    assert checked > 100


def test_a_value_nothing_supports_stays_unknown_and_the_simulator_says_what() -> None:
    lonely = replace(
        CATALOG.get("h100-80gb-hbm3"),
        key="lonely",
        architecture="Unknown",
        gi_profiles=tuple(
            replace(p, sm_count=None, name=p.name.replace("gb", "x"))
            for p in CATALOG.get("h100-80gb-hbm3").gi_profiles
        ),
    )
    complete = complete_model(lonely, [])
    assert all(p.sm_count is None for p in complete.gi_profiles)
    from migctl.errors import NotSupportedError

    with pytest.raises(NotSupportedError) as caught:
        simulated_model(lonely, Catalog(()))
    assert "SM count" in str(caught.value)
    assert "catalog capture -f FILE" in (caught.value.hint or "")


def _shared_elsewhere(model: GpuModel, profile: GiProfile) -> bool:
    return any(
        share(other, p) == share(model, profile) and p.id is not None
        for other in MODELS
        if other.key != model.key
        for p in other.gi_profiles
    )


def _profile(model: GpuModel, name: str) -> GiProfile:
    profile = model.gi_profile(name)
    assert profile is not None, name
    return profile
