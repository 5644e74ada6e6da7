"""CLI: ``allpayer serve --db FILE``: the REST API and the web dashboard on one server."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from allpayer.errors import AllpayerError


def register(app: typer.Typer) -> None:
    @app.command("serve", help="Serve the REST API (/api/v1, OpenAPI at /openapi.json) and the web dashboard (/) "
                               "over the published snapshot of --db; users and API keys live in the store.")
    def serve_cmd(
        db: Path = typer.Option(..., "--db", help="Published snapshot (DuckDB file) to serve."),
        host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
        port: int = typer.Option(8000, "--port", help="TCP port to listen on."),
        store: str = typer.Option(None, "--store", help="Store URL for users, keys, audit and ledger "
                                                        "(default sqlite:///<db>.store.sqlite)."),
        workers: int = typer.Option(1, "--workers", help="Server processes."),
        forwarded_allow_ips: str = typer.Option(
            "127.0.0.1", "--forwarded-allow-ips", metavar="IPS",
            help="Comma-separated addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
                 "headers are trusted, so that the login limits see the real client ('*' trusts any peer; "
                 "never use it without a proxy in front)."),
    ) -> None:
        import uvicorn

        from allpayer.api.app import create_app

        if not db.exists():
            raise AllpayerError(f"--db {db}: no such database (run `allpayer load` or `allpayer demo` first)")
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        typer.echo(f"serving {db} on http://{host}:{port}/ (API under /api/v1, OpenAPI at /openapi.json)")
        if workers > 1:
            import os

            os.environ["ALLPAYER_SERVE_DB"] = str(db.absolute())
            if store:
                os.environ["ALLPAYER_SERVE_STORE"] = store
            # a worker that misses uvicorn's health check is killed and a new one spawned; on a busy
            # machine a new worker can take longer than uvicorn's 5 s default just to start, so
            # that every worker was killed while starting, again and again
            uvicorn.run("allpayer.api.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                        access_log=False, log_level="warning", timeout_worker_healthcheck=60,
                        proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)
        else:
            uvicorn.run(create_app(db, store), host=host, port=port, access_log=False, log_level="warning",
                        proxy_headers=True, forwarded_allow_ips=forwarded_allow_ips)
