"""`allpayer users ...` and `allpayer serve` at the command line."""

from __future__ import annotations

from allpayer.cli import main


def _db(tmp_path):
    """An (empty) database for the user store to sit beside: `users` refuses a --db that does not exist."""
    import duckdb

    db = tmp_path / "x.duckdb"
    duckdb.connect(str(db)).close()
    return db


def test_users_add_list_key_revoke(tmp_path, capsys):
    db = _db(tmp_path)
    assert main(["users", "add", "ana", "--role", "practice", "--org", "P1", "--password", "long-enough", "--db", str(db)]) == 0
    assert main(["users", "key", "ana", "--label", "etl", "--db", str(db)]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("ak_")
    assert main(["users", "list", "--db", str(db)]) == 0
    listed = capsys.readouterr().out
    assert "ana\tpractice\tP1\tkeys=1" in listed and key not in listed
    assert main(["users", "revoke", key.split("_")[1], "--db", str(db)]) == 0
    assert main(["users", "list", "--db", str(db)]) == 0
    assert "keys=0" in capsys.readouterr().out
    assert (tmp_path / "x.duckdb.store.sqlite").exists()


def test_users_errors_are_one_line(tmp_path, capsys):
    db = _db(tmp_path)
    assert main(["users", "add", "bo", "--role", "practice", "--password", "long-enough", "--db", str(db)]) == 2
    assert "needs --org" in capsys.readouterr().err
    assert main(["users", "add", "bo", "--role", "aco_admin", "--password", "short", "--db", str(db)]) == 2


def test_serve_needs_a_database(tmp_path, capsys):
    assert main(["serve", "--db", str(tmp_path / "missing.duckdb")]) == 2
    assert "no such database" in capsys.readouterr().err


def test_users_unlock(tmp_path, capsys):
    from allpayer.api.ratelimit import ACCOUNT_FAILURES, LoginLimiter
    from allpayer.store import default_store_url, open_store

    db = _db(tmp_path)
    assert main(["users", "add", "ana", "--role", "aco_admin", "--password", "long-enough", "--db", str(db)]) == 0
    store = open_store(default_store_url(db))
    lim = LoginLimiter(store)
    for _ in range(ACCOUNT_FAILURES):
        lim.failed("ana", "10.1.1.1")
    assert lim.retry_after("ana", None) > 0
    store.close()
    capsys.readouterr()
    assert main(["users", "unlock", "ana", "--db", str(db)]) == 0
    assert "unlocked ana" in capsys.readouterr().out
    assert LoginLimiter(open_store(default_store_url(db))).retry_after("ana", None) == 0
    assert main(["users", "unlock", "ana", "--db", str(db)]) == 0
    assert "no failed logins" in capsys.readouterr().out


def test_users_add_refuses_an_organization_the_snapshot_does_not_know(tmp_path, capsys):
    import duckdb

    db = tmp_path / "x.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE employer_group AS SELECT * FROM (VALUES ('G1', 'EMP-SOV'), ('G2', 'EMP-UVMMC')) "
                "t(group_id, employer_id)")
    con.close()
    assert main(["users", "add", "eve", "--role", "employer", "--org", "EMP-NOPE", "--password", "long-enough",
                 "--db", str(db)]) == 2
    assert "--org EMP-NOPE: no employer of that id in" in capsys.readouterr().err
    assert main(["users", "add", "eve", "--role", "employer", "--org", "EMP-SOV", "--password", "long-enough",
                 "--db", str(db)]) == 0
    # a role whose organizations the snapshot cannot list yet (no eligibility loaded) is not checked
    assert main(["users", "add", "pat", "--role", "payer", "--org", "medicaid", "--password", "long-enough",
                 "--db", str(db)]) == 0


def test_serve_passes_the_trusted_proxies_and_keeps_the_access_log_off(tmp_path, monkeypatch):
    import duckdb
    import uvicorn

    db = tmp_path / "x.duckdb"
    duckdb.connect(str(db)).close()
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    assert main(["serve", "--db", str(db), "--forwarded-allow-ips", "10.0.0.5"]) == 0
    assert (seen["proxy_headers"], seen["forwarded_allow_ips"], seen["access_log"]) == (True, "10.0.0.5", False)
    assert main(["serve", "--db", str(db)]) == 0
    assert seen["forwarded_allow_ips"] == "127.0.0.1"
