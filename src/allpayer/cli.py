"""The `allpayer` command line: parse arguments, call the library, print results.

Commands live in `allpayer.commands.*`; each module exposes `register(app)`. Errors a user can
cause (`AllpayerError`) are shown as one line with a non-zero exit code; a traceback appears only
with `--debug`.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import sys

import typer
from rich.console import Console

from allpayer import __version__
from allpayer.errors import AllpayerError

# The order commands appear in `allpayer --help`; any other module in `allpayer.commands` with a
# `register(app)` follows in alphabetical order, so a new command needs no edit here.
COMMAND_ORDER = ("demo", "generate", "load", "run", "export", "terms", "mssp", "runs")


def _command_modules() -> list[str]:
    import pkgutil

    from allpayer import commands

    found = sorted(m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_"))
    return [n for n in COMMAND_ORDER if n in found] + [n for n in found if n not in COMMAND_ORDER]


COMMAND_MODULES = tuple(_command_modules())

err_console = Console(stderr=True)

app = typer.Typer(
    name="allpayer",
    help="Run an ACO's value-based payment programs for every payer: load, attribute, pay, measure, settle, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        print(f"allpayer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    _state["debug"] = debug


for _name in COMMAND_MODULES:
    importlib.import_module(f"allpayer.commands.{_name}").register(app)


def _is_usage_error(exc: Exception) -> bool:
    """True for the parser's own errors (bad option, missing argument), which print themselves."""
    return hasattr(exc, "show") and hasattr(exc, "exit_code")


GC_THRESHOLDS = (50_000, 20, 100)
"""Python's garbage-collector thresholds while a command runs (the default is (700, 10, 10))."""


@contextlib.contextmanager
def _fewer_collections():
    """Python's cyclic garbage collector runs less often while a command runs.

    Building and compiling a stage's expressions allocates hundreds of thousands of small objects.
    With the default thresholds the collector then traverses every object the process holds (the
    expression graphs, the reference tables) dozens of times per command: 3-4 s of a
    10,000-member `allpayer quality` (benchmarks/README.md, "Roster rows built narrow; bill types,
    attribution changes and the garbage collector"). Objects are freed as before when their last
    reference goes; only reference cycles wait longer. The previous thresholds come back when the
    command ends (the CLI also runs inside other programs)."""
    previous = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)


def _interrupted(exc: BaseException) -> bool:
    """True for the error a database raises when Ctrl-C interrupts its query."""
    return type(exc).__name__ == "InterruptException" or (
        isinstance(exc, RuntimeError) and str(exc).strip().lower() == "query interrupted")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the Typer app with one error boundary."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        with _fewer_collections():
            rc = app(args=args, standalone_mode=False)
        return rc if isinstance(rc, int) else 0
    except AllpayerError as exc:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code or 0
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        return 130
    except Exception as exc:  # usage errors from the parser, and anything unexpected
        if _is_usage_error(exc):
            exc.show()
            return exc.exit_code
        if debug:
            raise
        if _interrupted(exc):  # Ctrl-C inside a query: the database reports it as its own error
            err_console.print("aborted")
            return 130
        if isinstance(exc, OSError) and exc.filename is not None:  # a file that cannot be read or written
            err_console.print(f"[bold red]error:[/] {exc.filename}: {exc.strerror or exc}", highlight=False, soft_wrap=True)
            return 1
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} (rerun with --debug for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
