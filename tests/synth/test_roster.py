import datetime as dt

import numpy as np
import pytest

from allpayer.inputs.schema import PROVIDER_ROSTER
from allpayer.synth import reference as ref
from allpayer.synth.roster import RosterOptions, build_roster
from tests.synth.formats import FQHC_RANGES, RHC_RANGES, ccn_in, valid


@pytest.fixture(scope="module")
def roster():
    return build_roster(np.random.SeedSequence(11))


@pytest.fixture(scope="module")
def rows(roster):
    return roster.table.to_pylist()


def test_roster_columns_and_allowed_values(roster, rows):
    assert roster.table.column_names == [c for c in PROVIDER_ROSTER.column_names if c in roster.table.column_names]
    for col in PROVIDER_ROSTER.required_columns:
        assert col in roster.table.column_names
        assert all(r[col] is not None for r in rows), col
    for col in PROVIDER_ROSTER.columns:
        if col.allowed:
            assert {r[col.name] for r in rows} <= set(col.allowed), col.name
    keys = [(r["npi"], r["tin"], r["payer"], r["effective_start_date"]) for r in rows]
    assert len(keys) == len(set(keys))


def test_identifiers_are_valid(rows):
    assert all(valid("npi", r["npi"]) and valid("tin", r["tin"]) for r in rows)
    ccns = {r["ccn"] for r in rows if r["ccn"]}
    assert all(valid("ccn", c) for c in ccns)


def test_every_hsa_has_a_hospital_and_primary_care(rows):
    hospitals = {r["hsa"] for r in rows if r["practice_type"] == "hospital" and r["participation"] == "participant"}
    pcp = {r["hsa"] for r in rows if r["primary_care_flag"]}
    keys = {h.key for h in ref.HSAS}
    assert len(keys) == 14
    assert keys <= hospitals and keys <= pcp


def test_hospital_placement(rows):
    fac = {r["provider_name"]: r for r in rows if r["practice_type"] in ("hospital", "non_participating") and r["entity_type"] == "organization" and r["ccn"]}
    assert fac["Grace Cottage Hospital"]["hsa"] == "brattleboro"
    assert fac["Brattleboro Memorial Hospital"]["hsa"] == "brattleboro"
    dh = fac["Dartmouth-Hitchcock Medical Center"]
    assert (dh["hsa"], dh["state"], dh["participation"]) == ("upper_valley", "NH", "participant")
    for oos in ("Massachusetts General Hospital", "Albany Medical Center"):
        assert fac[oos]["participation"] == "non_participating"
    assert fac["University of Vermont Medical Center"]["ccn"].startswith("47")


def test_fqhc_and_rhc_bill_under_ccns_in_their_ranges(rows):
    fq = {r["ccn"] for r in rows if r["practice_type"] == "fqhc"}
    rh = {r["ccn"] for r in rows if r["practice_type"] == "rhc"}
    assert fq and rh and None not in fq and None not in rh
    assert all(c.startswith("47") and ccn_in(c, FQHC_RANGES) for c in fq)
    assert all(c.startswith("47") and ccn_in(c, RHC_RANGES) for c in rh)


def test_clinician_mix(rows):
    codes = {r["specialty_code"] for r in rows if r["primary_care_flag"]}
    assert {"08", "11", "37", "50", "97"} <= codes
    spec = {r["specialty_code"] for r in rows if r["entity_type"] == "individual" and not r["primary_care_flag"]}
    assert {"06", "46", "26", "29", "39", "93"} <= spec
    types = {r["practice_type"] for r in rows if r["primary_care_flag"]}
    assert {"hospital_owned", "independent", "fqhc", "rhc"} <= types


def _model(rows, practice_type, payer, when=dt.date(2022, 6, 1)):
    out = set()
    for r in rows:
        if r["practice_type"] == practice_type and r["payer"] == payer and r["effective_start_date"] <= when and (
            r["effective_end_date"] is None or r["effective_end_date"] >= when
        ):
            out.add((r["participation"], r["payment_model"]))
    return out


def test_payment_models_by_payer(rows):
    assert ("participant", "fpp") in _model(rows, "hospital", "medicaid")
    assert ("participant", "fpp") in _model(rows, "hospital", "medicare")
    assert _model(rows, "independent", "medicaid") >= {("participant", "cpr")}
    assert _model(rows, "hospital", "bcbsvt") == {("participant", "ffs")}
    assert _model(rows, "hospital", "bcbsvt", dt.date(2023, 3, 1)) == {("non_participating", "ffs")}
    assert ("participant", "capitated") in _model(rows, "specialist", "medicaid")
    mvp = {(r["provider_name"], r["payment_model"]) for r in rows if r["payer"] == "mvp" and r["practice_type"] == "hospital"}
    assert ("University of Vermont Medical Center", "fpp") in mvp and ("Rutland Regional Medical Center", "ffs") in mvp


def test_one_practice_leaves_mid_2023(rows):
    ends = {r["practice_id"] for r in rows if r["effective_end_date"] == dt.date(2023, 6, 30)}
    assert len(ends) == 1
    (pid,) = ends
    later = {r["participation"] for r in rows if r["practice_id"] == pid and r["effective_start_date"] == dt.date(2023, 7, 1)}
    assert later == {"non_participating"}


def test_dhmc_fpp_is_a_parameter():
    def dhmc(opts):
        t = build_roster(np.random.SeedSequence(11), opts).table.to_pylist()
        return {r["payment_model"] for r in t if r["provider_name"] == "Dartmouth-Hitchcock Medical Center" and r["payer"] == "medicaid"}
    assert dhmc(RosterOptions(dhmc_fpp=False)) == {"ffs"}
    assert dhmc(RosterOptions(dhmc_fpp=True)) == {"fpp"}


def test_same_seed_same_roster_and_pools_pick_within_site(roster):
    again = build_roster(np.random.SeedSequence(11))
    assert again.table.equals(roster.table)
    rng = np.random.default_rng(0)
    sites = np.repeat(np.arange(len(ref.HSAS)), 50)
    picked = roster.pick(rng, "pcp_adult", sites)
    assert (roster.hsa[picked] == sites).all()
