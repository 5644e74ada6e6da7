"""The payments ledger: append-only, double-entry, in the transactional store.

Every payment the engine computes (a payer's fixed payment to the ACO, the ACO's payment to a
hospital or practice, an employer's invoice, a settlement) is recorded as entries. An entry moves
``amount_cents`` (a positive whole number of cents) from ``credit_account`` (the party that pays)
to ``debit_account`` (the party that receives). Each entry is therefore balanced by construction,
and the sum of every account balance is always zero. An account's balance is its debits minus its
credits: what it received net of what it paid. A payer's balance is negative; the ACO's balance
is what it retained.

Accounts are named ``<kind>:<id>``: ``payer:<payer_id>``, ``aco:<aco_id>``,
``aco_reserve:<aco_id>``, ``hospital:<id>``, ``practice:<practice_id>``,
``employer:<employer_id>``.

Entries are posted in batches named by a caller-chosen key (for example
``fpp:medicaid_2024:2024-03``). Posting is idempotent per key:

* a key never posted (or last reversed): the entries are posted;
* the same entries again (same accounts, amounts, program, period, rule, refs; the run id and
  memo do not count): nothing is written (status ``unchanged``);
* changed entries: every entry of the previous posting is reversed (same amount, accounts
  swapped, ``reverses_entry_id`` pointing at it) and the new entries are posted; reversals and new
  entries carry the new ``run_id`` and the previous run's id as ``prior_run_id``.

Nothing is ever updated or deleted (the SQLite schema refuses both with triggers); a batch's
history is the list of its versions in ``ledger_batches``.

    >>> from allpayer.store import open_store
    >>> led = Ledger(open_store("sqlite:///:memory:"))
    >>> e = Entry("aco:onecare", "payer:dvha", 150_00, "medicaid_2024", "2024-01", "fpp.payer_to_aco")
    >>> led.post("fpp:medicaid_2024:2024-01", [e], run_id="r1").status
    'posted'
    >>> led.post("fpp:medicaid_2024:2024-01", [e], run_id="r2").status
    'unchanged'
    >>> [(b.account, b.balance_cents) for b in led.balances()]
    [('aco:onecare', 15000), ('payer:dvha', -15000)]
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import asdict, dataclass, replace
from typing import Iterable, Sequence

from allpayer.errors import AllpayerError
from allpayer.store import Store, register_migrations


class LedgerError(AllpayerError):
    """A posting that breaks the ledger's rules (bad account, period or amount)."""


ACCOUNT_KINDS = ("payer", "aco", "aco_reserve", "hospital", "practice", "employer")
_ACCOUNT_RE = re.compile(r"^([a-z_]+):(\S+)$")
_PERIOD_RE = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?$")

LEDGER_MIGRATIONS = [
    """
CREATE TABLE ledger_batches (
    batch_key VARCHAR(300) NOT NULL,
    version BIGINT NOT NULL,
    state VARCHAR(20) NOT NULL,
    run_id VARCHAR(100) NOT NULL,
    prior_run_id VARCHAR(100),
    fingerprint VARCHAR(64) NOT NULL,
    n_entries BIGINT NOT NULL,
    total_cents BIGINT NOT NULL,
    posted_at VARCHAR(40) NOT NULL,
    PRIMARY KEY (batch_key, version)
);
CREATE TABLE ledger_entries (
    entry_id BIGINT PRIMARY KEY,
    batch_key VARCHAR(300) NOT NULL,
    batch_version BIGINT NOT NULL,
    line_no BIGINT NOT NULL,
    kind VARCHAR(20) NOT NULL,
    debit_account VARCHAR(200) NOT NULL,
    credit_account VARCHAR(200) NOT NULL,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    program_id VARCHAR(200) NOT NULL,
    period VARCHAR(10) NOT NULL,
    rule VARCHAR(200) NOT NULL,
    run_id VARCHAR(100) NOT NULL,
    prior_run_id VARCHAR(100),
    reverses_entry_id BIGINT,
    memo TEXT NOT NULL,
    payer_ref VARCHAR(200),
    payee_ref VARCHAR(200),
    posted_at VARCHAR(40) NOT NULL,
    CHECK (debit_account <> credit_account),
    FOREIGN KEY (batch_key, batch_version) REFERENCES ledger_batches (batch_key, version)
);
CREATE INDEX ledger_entries_batch ON ledger_entries (batch_key, batch_version);
CREATE INDEX ledger_entries_debit ON ledger_entries (debit_account, period);
CREATE INDEX ledger_entries_credit ON ledger_entries (credit_account, period);
-- sqlite-only
CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: entries are never updated'); END;
CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: entries are never deleted'); END;
CREATE TRIGGER ledger_batches_no_update BEFORE UPDATE ON ledger_batches
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: batches are never updated'); END;
CREATE TRIGGER ledger_batches_no_delete BEFORE DELETE ON ledger_batches
BEGIN SELECT RAISE(ABORT, 'the ledger is append-only: batches are never deleted'); END;
-- end
-- postgresql-only
CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'the ledger is append-only'; END $$;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
CREATE TRIGGER ledger_batches_append_only BEFORE UPDATE OR DELETE ON ledger_batches FOR EACH ROW EXECUTE FUNCTION ledger_append_only();
-- end
""",
]

register_migrations("ledger", LEDGER_MIGRATIONS)


def check_account(name: str) -> str:
    """Validate an account name ``<kind>:<id>`` with a known kind; returns it unchanged."""
    m = _ACCOUNT_RE.match(name or "")
    if not m or m.group(1) not in ACCOUNT_KINDS:
        raise LedgerError(
            f"bad ledger account {name!r}: expected <kind>:<id> with kind one of {', '.join(ACCOUNT_KINDS)}"
        )
    return name


def check_period(period: str) -> str:
    """Validate a period: ``YYYY``, ``YYYY-MM`` or ``YYYY-Qn``; returns it unchanged."""
    if not _PERIOD_RE.match(period or ""):
        raise LedgerError(f"bad ledger period {period!r}: expected YYYY, YYYY-MM or YYYY-Qn")
    return period


def periods_within(period: str) -> list[str]:
    """The periods a period covers, itself included (a year covers its quarters and months).

    >>> periods_within("2024-Q2")
    ['2024-Q2', '2024-04', '2024-05', '2024-06']
    >>> len(periods_within("2024"))
    17
    """
    m = _PERIOD_RE.match(check_period(period))
    year, month, quarter = m.group(1), m.group(2), m.group(3)
    if month:
        return [period]
    if quarter:
        q = int(quarter)
        return [period] + [f"{year}-{mm:02d}" for mm in range(3 * q - 2, 3 * q + 1)]
    return (
        [period]
        + [f"{year}-Q{q}" for q in range(1, 5)]
        + [f"{year}-{mm:02d}" for mm in range(1, 13)]
    )


@dataclass(frozen=True)
class Entry:
    """One movement of money: `credit_account` pays `amount_cents` to `debit_account`."""

    debit_account: str
    credit_account: str
    amount_cents: int
    program_id: str
    period: str
    rule: str
    run_id: str | None = None
    memo: str = ""
    payer_ref: str | None = None
    payee_ref: str | None = None

    def __post_init__(self) -> None:
        check_account(self.debit_account)
        check_account(self.credit_account)
        check_period(self.period)
        if isinstance(self.amount_cents, bool) or not isinstance(self.amount_cents, int):
            raise LedgerError(f"entry amount must be whole cents (int), got {self.amount_cents!r}")
        if self.amount_cents < 0:
            raise LedgerError("entry amount must not be negative: swap the accounts (see Entry.transfer)")
        if self.debit_account == self.credit_account:
            raise LedgerError(f"entry moves money from {self.debit_account} to itself")
        if not self.program_id or not self.rule:
            raise LedgerError("entry needs a program_id and a rule")

    @classmethod
    def transfer(
        cls, payer: str, payee: str, amount_cents: int, program_id: str, period: str, rule: str, **kw
    ) -> "Entry":
        """`payer` pays `payee` a signed amount; a negative amount is recorded as the payee paying back."""
        amount_cents = int(amount_cents)
        if amount_cents < 0:
            return cls(payer, payee, -amount_cents, program_id, period, rule, **kw)
        return cls(payee, payer, amount_cents, program_id, period, rule, **kw)

    def key(self) -> tuple:
        """What makes two entries the same posting (run id and memo excluded)."""
        return (
            self.debit_account,
            self.credit_account,
            self.amount_cents,
            self.program_id,
            self.period,
            self.rule,
            self.payer_ref or "",
            self.payee_ref or "",
        )


@dataclass(frozen=True)
class PostResult:
    batch_key: str
    status: str  # 'posted' | 'unchanged' | 'replaced' | 'reversed'
    version: int | None
    run_id: str
    prior_run_id: str | None = None
    entries_posted: int = 0
    entries_reversed: int = 0


@dataclass(frozen=True)
class Balance:
    account: str
    period: str | None
    debit_cents: int
    credit_cents: int

    @property
    def balance_cents(self) -> int:
        return self.debit_cents - self.credit_cents


@dataclass(frozen=True)
class PostedEntry:
    entry_id: int
    batch_key: str
    batch_version: int
    line_no: int
    kind: str
    debit_account: str
    credit_account: str
    amount_cents: int
    program_id: str
    period: str
    rule: str
    run_id: str
    prior_run_id: str | None
    reverses_entry_id: int | None
    memo: str
    payer_ref: str | None
    payee_ref: str | None
    posted_at: str


_ENTRY_COLUMNS = [f for f in PostedEntry.__dataclass_fields__]


def fingerprint(entries: Iterable[Entry]) -> str:
    """A hash of the multiset of entry keys (order-free)."""
    keys = sorted(e.key() for e in entries)
    return hashlib.sha256(json.dumps(keys, separators=(",", ":")).encode()).hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")


@dataclass
class Ledger:
    """The ledger in a `Store`. Creating one applies the ledger's schema migrations."""

    store: Store

    def __post_init__(self) -> None:
        self.store.migrate("ledger")

    # -- writing ---------------------------------------------------------------------------
    def _lock(self) -> None:
        if self.store.dialect == "postgresql":
            self.store.execute("SELECT pg_advisory_xact_lock(hashtext('allpayer.ledger'))")

    def _current(self, batch_key: str) -> tuple | None:
        rows = self.store.query(
            "SELECT version, state, run_id, fingerprint FROM ledger_batches WHERE batch_key = ? "
            "ORDER BY version DESC LIMIT 1",
            (batch_key,),
        )
        return rows[0] if rows else None

    def _next_entry_id(self) -> int:
        return int(self.store.query("SELECT COALESCE(MAX(entry_id), 0) + 1 FROM ledger_entries")[0][0])

    def post(self, batch_key: str, entries: Sequence[Entry], run_id: str) -> PostResult:
        """Post `entries` as batch `batch_key` for run `run_id` (idempotent; see the module doc).

        Entries of zero cents are dropped (they move nothing). An empty batch is allowed: posting
        it over a previous batch reverses that batch.
        """
        if not batch_key:
            raise LedgerError("a batch needs a key")
        if not run_id:
            raise LedgerError("a posting needs a run id")
        new = [replace(e, run_id=run_id) for e in entries if e.amount_cents != 0]
        fp = fingerprint(new)
        with self.store.transaction():
            self._lock()
            cur = self._current(batch_key)
            if cur is not None and cur[1] == "posted" and cur[3] == fp:
                return PostResult(batch_key, "unchanged", int(cur[0]), run_id, cur[2])
            if cur is None and not new:
                return PostResult(batch_key, "unchanged", None, run_id, None)
            version = 1 if cur is None else int(cur[0]) + 1
            prior_run = cur[2] if cur is not None and cur[1] == "posted" else None
            now = _now()
            self.store.execute(
                "INSERT INTO ledger_batches (batch_key, version, state, run_id, prior_run_id, fingerprint, "
                "n_entries, total_cents, posted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_key, version, "posted", run_id, prior_run, fp, len(new),
                 sum(e.amount_cents for e in new), now),
            )
            next_id = self._next_entry_id()
            n_rev, next_id = self._write_reversals(batch_key, cur, version, run_id, now, next_id)
            rows = []
            for line_no, e in enumerate(new, start=1):
                rows.append((
                    next_id, batch_key, version, line_no, "entry", e.debit_account, e.credit_account,
                    e.amount_cents, e.program_id, e.period, e.rule, run_id, prior_run, None, e.memo,
                    e.payer_ref, e.payee_ref, now,
                ))
                next_id += 1
            self._insert(rows)
        if cur is None or cur[1] != "posted":
            status = "posted"
        else:
            status = "replaced"
        return PostResult(batch_key, status, version, run_id, prior_run, len(new), n_rev)

    def reverse(self, batch_key: str, run_id: str) -> PostResult:
        """Reverse the current posting of `batch_key`; a later `post` of the key posts afresh."""
        with self.store.transaction():
            self._lock()
            cur = self._current(batch_key)
            if cur is None or cur[1] != "posted":
                return PostResult(batch_key, "unchanged", int(cur[0]) if cur else None, run_id)
            version = int(cur[0]) + 1
            now = _now()
            self.store.execute(
                "INSERT INTO ledger_batches (batch_key, version, state, run_id, prior_run_id, fingerprint, "
                "n_entries, total_cents, posted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (batch_key, version, "reversed", run_id, cur[2], fingerprint([]), 0, 0, now),
            )
            n_rev, _ = self._write_reversals(batch_key, cur, version, run_id, now, self._next_entry_id())
        return PostResult(batch_key, "reversed", version, run_id, cur[2], 0, n_rev)

    def _write_reversals(self, batch_key, cur, version, run_id, now, next_id) -> tuple[int, int]:
        if cur is None or cur[1] != "posted":
            return 0, next_id
        old = self.store.query(
            "SELECT entry_id, debit_account, credit_account, amount_cents, program_id, period, rule, "
            "run_id, payer_ref, payee_ref FROM ledger_entries "
            "WHERE batch_key = ? AND batch_version = ? AND kind = 'entry' ORDER BY line_no",
            (batch_key, int(cur[0])),
        )
        rows = []
        for i, (eid, deb, cred, amt, prog, per, rule, old_run, pref, yref) in enumerate(old, start=1):
            rows.append((
                next_id, batch_key, version, -i, "reversal", cred, deb, amt, prog, per, rule, run_id,
                old_run, eid, f"reversal of entry {eid}", pref, yref, now,
            ))
            next_id += 1
        self._insert(rows)
        return len(rows), next_id

    def _insert(self, rows: list[tuple]) -> None:
        if rows:
            cols = ", ".join(_ENTRY_COLUMNS)
            marks = ", ".join("?" for _ in _ENTRY_COLUMNS)
            self.store.executemany(f"INSERT INTO ledger_entries ({cols}) VALUES ({marks})", rows)

    # -- reading ---------------------------------------------------------------------------
    def _where(self, period: str | None, program_id: str | None, alias: str = "") -> tuple[str, list]:
        clauses, params = [], []
        if period is not None:
            within = periods_within(period)
            clauses.append(f"{alias}period IN ({', '.join('?' for _ in within)})")
            params += within
        if program_id is not None:
            clauses.append(f"{alias}program_id = ?")
            params.append(program_id)
        return (" AND ".join(clauses) or "1 = 1"), params

    def balances(
        self,
        period: str | None = None,
        account: str | None = None,
        *,
        program_id: str | None = None,
        by_period: bool = True,
    ) -> list[Balance]:
        """Debits, credits and balance per account (and per period unless `by_period` is False).

        `period` keeps entries inside it (a year includes its quarters and months; a quarter its
        months). Rows are sorted by account, then period.
        """
        where, params = self._where(period, program_id)
        sel, grp = ("period", ", period") if by_period else ("NULL", "")
        sql = (
            f"SELECT account, {sel} AS p, SUM(dr), SUM(cr) FROM ("
            f" SELECT debit_account AS account, period, amount_cents AS dr, 0 AS cr FROM ledger_entries WHERE {where}"
            f" UNION ALL"
            f" SELECT credit_account AS account, period, 0 AS dr, amount_cents AS cr FROM ledger_entries WHERE {where}"
            f") t"
        )
        params = params + params
        if account is not None:
            sql += " WHERE account = ?"
            params.append(account)
        sql += f" GROUP BY account{grp} ORDER BY account{grp}"
        return [Balance(a, p, int(d), int(c)) for a, p, d, c in self.store.query(sql, params)]

    def balance_of(self, account: str, period: str | None = None, program_id: str | None = None) -> int:
        rows = self.balances(period, account, program_id=program_id, by_period=False)
        return rows[0].balance_cents if rows else 0

    def entries(
        self,
        *,
        batch_key: str | None = None,
        account: str | None = None,
        period: str | None = None,
        program_id: str | None = None,
    ) -> list[PostedEntry]:
        """Posted entries (reversals included) in posting order."""
        where, params = self._where(period, program_id)
        if batch_key is not None:
            where += " AND batch_key = ?"
            params.append(batch_key)
        if account is not None:
            where += " AND (debit_account = ? OR credit_account = ?)"
            params += [account, account]
        cols = ", ".join(_ENTRY_COLUMNS)
        rows = self.store.query(f"SELECT {cols} FROM ledger_entries WHERE {where} ORDER BY entry_id", params)
        return [PostedEntry(*r) for r in rows]

    def batch_history(self, batch_key: str) -> list[dict]:
        rows = self.store.query(
            "SELECT version, state, run_id, prior_run_id, fingerprint, n_entries, total_cents, posted_at "
            "FROM ledger_batches WHERE batch_key = ? ORDER BY version",
            (batch_key,),
        )
        keys = ["version", "state", "run_id", "prior_run_id", "fingerprint", "n_entries", "total_cents", "posted_at"]
        return [dict(zip(keys, r)) for r in rows]

    def total_imbalance(self) -> int:
        """Sum of all balances; zero in a consistent ledger."""
        return sum(b.balance_cents for b in self.balances(by_period=False))


def entry_dict(e: Entry) -> dict:
    return asdict(e)
