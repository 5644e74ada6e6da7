from pathlib import Path

import allpayer
from allpayer.synth import names

README = Path(allpayer.__file__).parent / "programs" / "vermont" / "README.md"


def test_names_match_the_vermont_programs_readme():
    text = README.read_text()
    for payer in names.PAYERS:
        assert f"`{payer}`" in text
    for plan in (names.PLAN_MEDICARE, names.PLAN_MEDICAID, names.PLAN_QHP, names.PLAN_ASO):
        assert f"`{plan}`" in text
    for group in ("SOV", "UVMMC"):
        assert f"`{group}`" in text


def test_state_and_uvmmc_plans_move_to_mvp_in_2024():
    by_id = {e.group_id: e for e in names.EMPLOYERS}
    for g in ("SOV", "UVMMC"):
        admins = dict(by_id[g].administrators)
        assert [p for _, p in sorted(admins.items())] == ["bcbsvt", "mvp"]
        assert max(admins) .isoformat() == "2024-01-01"


def test_plan_entities_are_unique_and_typed():
    keys = [e.key for e in names.PLAN_ENTITIES]
    assert len(keys) == len(set(keys))
    types = {e.payer_type for e in names.PLAN_ENTITIES}
    assert types == {"medicare", "medicaid", "commercial", "self_funded"}
    assert all(e.plan == names.PLAN_ASO and e.group_id for e in names.PLAN_ENTITIES if e.payer_type == "self_funded")
    assert abs(sum(names.COVERAGE_MIX.values()) - 1) < 1e-9
