"""CLI: ``allpayer users add|list|key|revoke|password|unlock``: people and machine keys of the API."""

from __future__ import annotations

from pathlib import Path

import typer


def _users(db: Path, store: str | None):
    """The users of the store beside `db` (or at `store`). A `db` that does not exist is refused:
    the default store would be created beside a misspelt path, holding users no API serves."""
    from allpayer.api.auth import Users
    from allpayer.errors import AllpayerError
    from allpayer.store import default_store_url, open_store

    if store is None and not db.exists():
        raise AllpayerError(f"{db}: database not found (load data first with `allpayer load`)")
    return Users(open_store(store or default_store_url(db)))


def register(app: typer.Typer) -> None:
    users_app = typer.Typer(help="Users and API keys of the REST API and dashboard (kept in the store, hashed).",
                            no_args_is_help=True)
    app.add_typer(users_app, name="users")

    DB = typer.Option(..., "--db", help="Published snapshot whose store holds the users.")
    STORE = typer.Option(None, "--store", help="Store URL (default sqlite:///<db>.store.sqlite).")

    @users_app.command("add", help="Add a user with a role (and the organization id for payer, employer, practice, hospital).")
    def add(
        username: str = typer.Argument(..., help="User name."),
        role: str = typer.Option(..., "--role", help="aco_admin, aco_analyst, payer, employer, practice, hospital or regulator."),
        org: str = typer.Option(None, "--org", help="Organization id: payer id, employer id, practice id or hospital id."),
        password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True,
                                     help="Password (at least 8 characters); prompted when left out."),
        db: Path = DB,
        store: str = STORE,
    ) -> None:
        from allpayer.api.orgs import check_org

        if org:
            check_org(db, role, org)
        _users(db, store).add(username, password, role=role, org_id=org)
        typer.echo(f"added {username} ({role}{' ' + org if org else ''})")

    @users_app.command("list", help="List users with their role, organization and number of live API keys.")
    def list_(db: Path = DB, store: str = STORE) -> None:
        for u in _users(db, store).list():
            typer.echo(f"{u['username']}\t{u['role']}\t{u['org_id'] or '-'}\tkeys={u['keys']}\tcreated {u['created_at']}")

    @users_app.command("key", help="Create an API key for a user; the key is printed once and stored only hashed.")
    def key(
        username: str = typer.Argument(..., help="User name."),
        label: str = typer.Option("", "--label", help="What the key is for."),
        db: Path = DB,
        store: str = STORE,
    ) -> None:
        typer.echo(_users(db, store).new_key(username, label))

    @users_app.command("revoke", help="Revoke an API key by its key id (the part after ak_).")
    def revoke(key_id: str = typer.Argument(..., help="Key id."), db: Path = DB, store: str = STORE) -> None:
        _users(db, store).revoke_key(key_id)
        typer.echo(f"revoked {key_id}")

    @users_app.command("password", help="Set a user's password (ends the user's sessions).")
    def password(
        username: str = typer.Argument(..., help="User name."),
        password: str = typer.Option(..., "--password", prompt=True, hide_input=True, confirmation_prompt=True,
                                     help="New password (at least 8 characters)."),
        db: Path = DB,
        store: str = STORE,
    ) -> None:
        _users(db, store).set_password(username, password)
        typer.echo(f"password of {username} set")

    @users_app.command("unlock", help="Lift the lock that failed logins put on a user name (see docs/api.md).")
    def unlock(username: str = typer.Argument(..., help="User name."), db: Path = DB, store: str = STORE) -> None:
        from allpayer.api.ratelimit import LoginLimiter

        had = LoginLimiter(_users(db, store).store).unlock(username)
        typer.echo(f"unlocked {username}" if had else f"{username} had no failed logins on record")
