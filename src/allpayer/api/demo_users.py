"""Demo users, one per role, for a demo or test snapshot (their passwords are printed; never use
them outside a demo)."""

from __future__ import annotations

from pathlib import Path

from allpayer import runs
from allpayer.api.auth import Users
from allpayer.store import default_store_url, open_store

DEMO_PASSWORD = "demo-password"


def pick_orgs(db: str | Path) -> dict[str, str | None]:
    """One organization of each kind in the snapshot, preferring ones with results: the first
    payer, the first practice with attributed members, the first FPP hospital, the first employer
    with an invoice (else the first employer group)."""
    con = runs.open_snapshot(db)
    raw = con.con
    tables = set(con.list_tables())

    def first(sql: str) -> str | None:
        try:
            rows = raw.execute(sql).fetchall()
        except Exception:  # noqa: BLE001 - a table a stage has not written yet
            return None
        return rows[0][0] if rows and rows[0][0] is not None else None

    try:
        out = {
            "payer": first("SELECT payer FROM tcoc_summary GROUP BY payer ORDER BY sum(member_months) DESC, payer LIMIT 1")
            if "tcoc_summary" in tables else
            first("SELECT payer FROM eligibility GROUP BY payer ORDER BY count(*) DESC, payer LIMIT 1"),
            "practice": first("SELECT practice_id FROM attribution WHERE attributed AND practice_id IS NOT NULL "
                              "GROUP BY practice_id ORDER BY count(*) DESC, practice_id LIMIT 1")
            if "attribution" in tables else None,
            "hospital": first("SELECT hospital_id FROM fixed_payment_performance WHERE hospital_id <> 'ALL' "
                              "ORDER BY hospital_id LIMIT 1") if "fixed_payment_performance" in tables else None,
            "employer": first("SELECT employer_id FROM value_payment_invoices ORDER BY employer_id LIMIT 1")
            if "value_payment_invoices" in tables else None,
        }
        if out["hospital"] is None and "provider_roster" in tables:
            out["hospital"] = first("SELECT min(organization_id) FROM provider_roster WHERE practice_type = 'hospital'")
        if out["practice"] is None and "provider_roster" in tables:
            out["practice"] = first("SELECT min(practice_id) FROM provider_roster WHERE practice_type <> 'hospital'")
        if out["employer"] is None and "employer_group" in tables:
            out["employer"] = first("SELECT min(employer_id) FROM employer_group")
    finally:
        con.disconnect()
    return out


def create_demo_users(db: str | Path, store_url: str | None = None, password: str = DEMO_PASSWORD) -> list[dict]:
    """Create (or keep) one user per role; returns username, role, org_id and password."""
    users = Users(open_store(store_url or default_store_url(db)))
    orgs = pick_orgs(db)
    wanted = [("aco-admin", "aco_admin", None), ("aco-analyst", "aco_analyst", None),
              ("payer", "payer", orgs["payer"]), ("employer", "employer", orgs["employer"]),
              ("practice", "practice", orgs["practice"]), ("hospital", "hospital", orgs["hospital"]),
              ("regulator", "regulator", None)]
    out = []
    for name, role, org in wanted:
        if role in ("payer", "employer", "practice", "hospital") and not org:
            continue
        if users.get(name) is None:
            users.add(name, password, role=role, org_id=org)
        out.append({"username": name, "role": role, "org_id": org, "password": password})
    users.store.close()
    return out
