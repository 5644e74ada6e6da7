"""Settlement postings: who pays whom, one batch per program, forecasts never posted."""

from __future__ import annotations

from decimal import Decimal

from allpayer.ledger import Ledger
from allpayer.settlement.distribution import Participant, distribute
from allpayer.settlement.engine import SettlementInputs, settle_program
from allpayer.settlement.postings import post_year, settlement_entries
from allpayer.settlement.run import ProgramResult, YearResult, employer_shares
from allpayer.settlement.inputs import EmployerBase
from allpayer.store import open_store
from allpayer.terms import load_program, programs_dir

VT = programs_dir() / "vermont" / "2024"


def year_result(version="initial", actual=4_700_000_00):
    med = load_program(VT / "medicaid.yaml")
    s = settle_program(med, SettlementInputs(5_000_000_00, actual))
    d = distribute(s.net_cents, [Participant("org-a", Decimal(3), 10**9), Participant("org-b", Decimal(1), 1_000_00)])
    sov = load_program(VT / "sov_employees.yaml")
    s2 = settle_program(sov, SettlementInputs(1_000_000_00, 900_000_00))
    emp = employer_shares(s2.net_cents, [EmployerBase("EMP-A", 50, 600, 600_000_00, 1), EmployerBase("EMP-B", 5, 40, 400_000_00, 1)])
    r = YearResult(2024, version, "core-run", None)
    r.programs = [ProgramResult(med, s, d), ProgramResult(sov, s2, None, emp)]
    return r


def test_entries_and_balances(tmp_path):
    r = year_result()
    batches = settlement_entries(r, "run-1")
    assert set(batches) == {"settlement:vt-2024-medicaid:2024", "distribution:vt-2024-medicaid:2024",
                            "settlement:vt-2024-sov-employees:2024"}
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    lines = post_year(tmp_path / "a.duckdb", r, "run-1", store_url=url)
    assert all("posted" in x for x in lines)
    led = Ledger(open_store(url))
    med_net = r.programs[0].settlement.net_cents  # 3% corridor: $150,000
    assert med_net == 150_000_00
    assert led.balance_of("payer:medicaid") == -med_net
    assert led.balance_of("hospital:org-b") == 1_000_00  # held at its limit
    assert led.balance_of("hospital:org-a") == med_net - 1_000_00
    # self-funded: each employer pays its share; the small employer's share is still posted
    sov_net = r.programs[1].settlement.net_cents
    assert led.balance_of("employer:EMP-A") + led.balance_of("employer:EMP-B") == -sov_net
    assert r.programs[1].employers[1]["suppressed"] and r.programs[1].employers[1]["members"] is None
    assert led.total_imbalance() == 0
    # a restatement with other amounts replaces the batches; the same amounts post nothing
    again = post_year(tmp_path / "a.duckdb", year_result("restated", 4_900_000_00), "run-2", store_url=url)
    assert any("replaced" in x for x in again)
    assert led.balance_of("payer:medicaid") == -100_000_00


def test_forecast_is_not_posted(tmp_path):
    assert post_year(tmp_path / "a.duckdb", year_result("forecast"), "r") == ["forecast version: not posted to the ledger"]
