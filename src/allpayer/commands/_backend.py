"""The backend options shared by the commands that read or write a database (load, run, export,
quality, payments, settle, report), the DuckDB database a command that reads through DuckDB
opens on each backend, and the option of the commands whose publish renders reports."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import typer

from allpayer.backend import BACKENDS
from allpayer.errors import AllpayerError

BACKEND_HELP = (
    "Compute backend: duckdb (--db is a DuckDB file) or spark (--db is a warehouse folder of Parquet "
    "tables; see docs/backends.md)."
)


def backend_option():
    return typer.Option("duckdb", "--backend", metavar="duckdb|spark", help=BACKEND_HELP)


def spark_master_option():
    return typer.Option("local[2]", "--spark-master", metavar="local[N]",
                        help="Spark master for a local session (with --backend spark).")


def spark_remote_option():
    return typer.Option(None, "--spark-remote", metavar="sc://HOST:PORT",
                        help="Spark Connect server to compute on instead of a local session (with --backend spark).")


def reports_option():
    return typer.Option(
        None, "--reports/--no-reports", show_default=False,
        help="Render (or not) every audience's reports when the run is published. Default: render, unless "
        "ALLPAYER_RENDER_REPORTS is 0. --no-reports suits a script that runs the year's stages one after another "
        "and renders once, on the last publish or with `allpayer report --all`.")


def reports_on_publish(render: bool | None):
    """The block in which a command publishes its run: `render` None keeps the ``ALLPAYER_RENDER_REPORTS``
    setting; True or False (``--reports``, ``--no-reports``) overrides it for the block."""
    if render is None:
        return contextlib.nullcontext()
    from allpayer.reports.publish import rendering_set

    return rendering_set(render)


def check_backend(backend: str, spark_remote: str | None = None) -> str:
    """The backend name, checked; a Spark option without --backend spark is an error."""
    if backend not in BACKENDS:
        raise AllpayerError(f"--backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if spark_remote and backend != "spark":
        raise AllpayerError("--spark-remote needs --backend spark")
    if spark_remote and not spark_remote.startswith("sc://"):
        raise AllpayerError(f"--spark-remote {spark_remote!r}: expected sc://HOST:PORT")
    return backend


@contextlib.contextmanager
def snapshot_db(db: Path, backend: str, spark_remote: str | None = None, *, write: bool = True) -> Iterator[Path]:
    """The DuckDB database file a command that reads through DuckDB works on (report; the
    published results a stage command prints): `db` itself with ``--backend duckdb``; with
    ``--backend spark``, a scratch file holding warehouse `db`'s published snapshot, whose changed
    tables are published back to the warehouse when the block ends normally and `write` is set
    (`allpayer.warehouse.duckdb_session`)."""
    if check_backend(backend, spark_remote) == "duckdb":
        yield db
        return
    from allpayer import warehouse

    with warehouse.duckdb_session(db, write=write) as scratch:
        yield scratch


def store_url(db: Path, store: str | None) -> str:
    """The ledger store: `store`, else the one beside `db` (``<db>.store.sqlite``, for a warehouse
    folder beside the folder), never one inside a scratch copy."""
    from allpayer.store import default_store_url

    return store or default_store_url(db)


def on_backend(*, write: bool = True):
    """Decorator of a stage command whose body works on a DuckDB file given as its ``db`` argument:
    adds the ``--backend``, ``--spark-master`` and ``--spark-remote`` options and runs the body on
    `snapshot_db` (so ``--backend spark`` reads the warehouse folder named by ``--db`` and, with
    `write`, publishes what the command changed back to it). A ``store`` argument left empty gets the
    ledger store beside the warehouse, and ``out`` of ``report --all`` the reports folder beside it."""
    import functools
    import inspect

    def decorate(fn):
        sig = inspect.signature(fn)
        extra = [
            inspect.Parameter("backend", inspect.Parameter.KEYWORD_ONLY, default=backend_option(), annotation=str),
            inspect.Parameter("spark_master", inspect.Parameter.KEYWORD_ONLY, default=spark_master_option(),
                              annotation=str),
            inspect.Parameter("spark_remote", inspect.Parameter.KEYWORD_ONLY, default=spark_remote_option(),
                              annotation=str),
        ]
        params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in sig.parameters.values()]

        @functools.wraps(fn)
        def wrapper(**kwargs):
            backend = kwargs.pop("backend")
            kwargs.pop("spark_master")
            spark_remote = kwargs.pop("spark_remote")
            db = kwargs["db"]
            if check_backend(backend, spark_remote) == "spark":
                if "store" in kwargs and not kwargs["store"]:
                    kwargs["store"] = store_url(db, None)
                if kwargs.get("all_") and "out" in kwargs and kwargs["out"] is None:
                    kwargs["out"] = Path(db).with_name(Path(db).name + ".reports")
            with snapshot_db(db, backend, spark_remote, write=write) as work_db:
                return fn(**{**kwargs, "db": work_db})

        wrapper.__signature__ = sig.replace(parameters=params + extra)
        del wrapper.__wrapped__
        return wrapper

    return decorate
