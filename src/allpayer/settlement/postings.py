"""Settlement postings to the payments ledger (`allpayer.ledger`).

One batch per program and year for the payer's settlement and one for its distribution; a later
version of the same year (final after initial, a restatement) posts under the same batch keys,
so the ledger reverses the earlier entries and posts the new ones, referencing both runs.
Forecasts are never posted.

- ``settlement:<program_id>:<year>``: the payer (or, for a self-funded program, each employer
  for its share) pays the ACO the net settlement; a negative net is the ACO paying back.
- ``distribution:<program_id>:<year>``: the ACO pays each risk-bearing participant its final
  allocation (a loss is the participant paying the ACO) and moves the rest to its reserve.
"""

from __future__ import annotations

from pathlib import Path

POSTED_VERSIONS = ("initial", "final", "restated")


def settlement_entries(result, run_id: str) -> dict[str, list]:
    """The ledger batches of a year's settlement: batch key -> entries."""
    from allpayer.ledger import Entry

    batches: dict[str, list] = {}
    year = str(result.year)
    for pr in result.programs:
        s = pr.settlement
        aco = f"aco:{s.aco_id}"
        memo = f"{result.version} settlement, core run {result.core_run_id}"
        key = f"settlement:{s.program_id}:{year}"
        entries = []
        if pr.employers and s.kind == "self_funded":
            for e in pr.employers:
                if e["aco_share_cents"]:
                    entries.append(Entry.transfer(f"employer:{e['employer_id']}", aco, e["aco_share_cents"],
                                                  s.program_id, year, "settlement.net", run_id=run_id, memo=memo,
                                                  payer_ref=e["employer_id"]))
        elif s.net_cents:
            entries.append(Entry.transfer(f"payer:{s.payer}", aco, s.net_cents, s.program_id, year, "settlement.net",
                                          run_id=run_id, memo=memo, payer_ref=s.payer))
        batches[key] = entries
        d = pr.distribution
        if d is None:
            continue
        dentries = []
        for a in d.allocations:
            if a.final_cents:
                dentries.append(Entry.transfer(aco, f"hospital:{a.participant_id}", a.final_cents, s.program_id, year,
                                               "settlement.distribution", run_id=run_id, memo=memo,
                                               payee_ref=a.participant_id))
        if d.reserve_cents:
            dentries.append(Entry.transfer(aco, f"aco_reserve:{s.aco_id}", d.reserve_cents, s.program_id, year,
                                           "settlement.reserve", run_id=run_id, memo=memo))
        batches[f"distribution:{s.program_id}:{year}"] = dentries
    return batches


def post_year(db, result, run_id: str, *, store_url: str | None = None) -> list[str]:
    """Post a year's settlement and distribution; returns one line per batch (or why nothing was
    posted)."""
    if result.version not in POSTED_VERSIONS:
        return [f"{result.version} version: not posted to the ledger"]
    try:
        from allpayer.ledger import Ledger
        from allpayer.store import default_store_url, open_store
    except ImportError:  # the payments ledger is not part of this installation
        return ["ledger not available in this installation: nothing posted"]
    url = store_url or default_store_url(Path(db))
    store = open_store(url)
    try:
        ledger = Ledger(store)
        out = []
        for key, entries in settlement_entries(result, run_id).items():
            r = ledger.post(key, entries, run_id)
            out.append(f"{key}: {r.status} ({r.entries_posted} posted, {r.entries_reversed} reversed)")
        return out
    finally:
        close = getattr(store, "close", None)
        if close:
            close()


__all__ = ["post_year", "settlement_entries", "POSTED_VERSIONS"]
