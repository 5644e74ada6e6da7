"""The payer tables of the input contract agree with the terms and the engine that reads them."""

from __future__ import annotations

from typing import get_args

import pydantic
import pytest

from allpayer.inputs.schema import EXCLUSION_REASONS, TABLES
from allpayer.terms.models import Exclusion, ExclusionReason


def test_exclusion_event_reasons_are_the_terms_reasons():
    # one list: the input contract's, which the terms' type is built from
    assert get_args(ExclusionReason) == EXCLUSION_REASONS
    assert len(EXCLUSION_REASONS) == len(set(EXCLUSION_REASONS)) == 12
    assert {"death", "hospice", "employer_opt_out"} <= set(EXCLUSION_REASONS)
    assert TABLES["exclusion_event"].column("reason").allowed == EXCLUSION_REASONS


def test_terms_accept_exactly_the_contract_reasons():
    for reason in EXCLUSION_REASONS:
        assert Exclusion(reason=reason).reason == reason
    with pytest.raises(pydantic.ValidationError):
        Exclusion(reason="moved_to_mars")


def test_payer_tables_carry_the_columns_the_engine_reads():
    # allpayer.pipeline selects these columns before handing the tables to attribution and targets
    need = {
        "payer_attribution": {"payer", "program_id", "member_id", "month", "practice_id", "npi", "tin"},
        "payer_target": {"program_id", "cell_id", "month", "target_pmpm", "member_months"},
        "voluntary_alignment": {"payer", "member_id", "npi", "tin", "designation_date", "end_date"},
        "exclusion_event": {"payer", "member_id", "reason", "event_date", "end_date", "program_id"},
    }
    for table, cols in need.items():
        assert cols <= set(TABLES[table].column_names), table
        assert TABLES[table].extension
