"""The organizations a snapshot knows, by role: what a user's ``--org`` may name.

- ``payer``: the payers of the eligibility;
- ``employer``: the employers of ``employer_group``;
- ``practice``: the practices of the provider roster and of the attribution;
- ``hospital``: the hospitals of the provider roster (``organization_id`` of ``practice_type:
  hospital``) and of the fixed payments.

`known_orgs` returns None when the snapshot has none of the tables that would say (a user may be
added before the first load), so that callers check only what they can.
"""

from __future__ import annotations

from pathlib import Path

SOURCES: dict[str, tuple[tuple[str, str], ...]] = {
    "payer": (("eligibility", "SELECT DISTINCT payer FROM eligibility"),),
    "employer": (("employer_group", "SELECT DISTINCT employer_id FROM employer_group"),),
    "practice": (("provider_roster", "SELECT DISTINCT practice_id FROM provider_roster WHERE practice_type <> 'hospital'"),
                 ("attribution", "SELECT DISTINCT practice_id FROM attribution")),
    "hospital": (("provider_roster", "SELECT DISTINCT organization_id FROM provider_roster "
                                     "WHERE practice_type = 'hospital'"),
                 ("fixed_payment_performance", "SELECT DISTINCT hospital_id FROM fixed_payment_performance "
                                               "WHERE hospital_id <> 'ALL'")),
}


def known_orgs(con, role: str) -> set[str] | None:
    """The organization ids of `role` in the open snapshot `con` (see the module docstring); None
    when the role has no organization or the snapshot has no table that lists them."""
    if role not in SOURCES:
        return None
    tables = set(con.list_tables())
    found = [q for t, q in SOURCES[role] if t in tables]
    if not found:
        return None
    ids: set[str] = set()
    for q in found:
        ids.update(r[0] for r in con.con.execute(q).fetchall() if r[0] is not None)
    return ids


def check_org(db: str | Path, role: str, org_id: str, option: str = "--org", con=None) -> None:
    """Refuse an organization id the published snapshot `db` does not know for `role` (a misspelt
    id would give a user who sees nothing, silently). `con`: the snapshot, when the caller has it
    open."""
    from allpayer import runs
    from allpayer.errors import AllpayerError

    opened = con is None
    if opened:
        if role not in SOURCES or not Path(db).exists():
            return
        con = runs.open_snapshot(db)
    try:
        known = known_orgs(con, role)
    finally:
        if opened:
            con.disconnect()
    if known is None or org_id in known:
        return
    near = sorted(k for k in known if k.lower().startswith(org_id.lower()[:3]))[:5] or sorted(known)[:5]
    raise AllpayerError(f"{option} {org_id}: no {role} of that id in {db} ({len(known):,} known, e.g. {', '.join(near)})")
