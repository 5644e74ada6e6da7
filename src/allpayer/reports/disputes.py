"""Disputed attributions: a practice flags a member month it believes is attributed wrongly.

Disputes live in the transactional store (`allpayer.store`), table ``attribution_disputes``,
one row per flag (dispute_id), never replaced: the ACO's attribution team reviews and resolves
them. The practice report lists its open disputes; the CLI (`allpayer dispute`) and later the API
write them.
"""

from __future__ import annotations

import datetime as dt
import secrets

from allpayer.errors import AllpayerError
from allpayer.store import Store, register_migrations

COLUMNS = ("dispute_id", "program_id", "member_id", "month", "practice_id", "reason", "status",
           "flagged_by", "flagged_at", "run_id")

register_migrations("reports", ["""
CREATE TABLE attribution_disputes (
    dispute_id VARCHAR(40) PRIMARY KEY,
    program_id VARCHAR(200) NOT NULL,
    member_id VARCHAR(200) NOT NULL,
    month VARCHAR(7) NOT NULL,
    practice_id VARCHAR(200) NOT NULL,
    reason TEXT NOT NULL,
    status VARCHAR(20) NOT NULL,
    flagged_by VARCHAR(200),
    flagged_at VARCHAR(40) NOT NULL,
    run_id VARCHAR(40)
)
"""])


class DisputeError(AllpayerError):
    """A dispute cannot be recorded (missing reason, bad month)."""


def parse_month(month: str) -> dt.date:
    """The first day of a disputed month given as ``YYYY-MM``."""
    try:
        return dt.date.fromisoformat(f"{month}-01")
    except ValueError as e:
        raise DisputeError(f"month {month!r} is not YYYY-MM") from e


def flag(store: Store, program_id: str, member_id: str, month: str, practice_id: str, reason: str,
         flagged_by: str | None = None, run_id: str | None = None, now: dt.datetime | None = None) -> str:
    """Record an open dispute and return its id. `month` is YYYY-MM."""
    if not reason or not reason.strip():
        raise DisputeError("a disputed attribution needs a reason")
    parse_month(month)
    store.migrate("reports")
    when = (now or dt.datetime.now(dt.timezone.utc)).isoformat(timespec="seconds")
    did = "D" + secrets.token_hex(8)
    with store.transaction():
        store.execute(
            "INSERT INTO attribution_disputes (dispute_id, program_id, member_id, month, practice_id, reason, status, "
            "flagged_by, flagged_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (did, program_id, member_id, month, practice_id, reason.strip(), "open", flagged_by, when, run_id))
    return did


def for_practice(store: Store, practice_id: str) -> list[dict]:
    store.migrate("reports")
    got = store.query(f"SELECT {', '.join(COLUMNS)} FROM attribution_disputes WHERE practice_id = ? "
                      f"ORDER BY flagged_at, dispute_id", (practice_id,))
    return [dict(zip(COLUMNS, r)) for r in got]
