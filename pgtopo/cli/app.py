"""The typer app, the error handler and helpers shared by every command module.

Exit codes: 0 success, 1 an operation failed, 2 bad input or usage, 3 unexpected error
(traceback written to the log file), 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pgtopo import errors
from pgtopo.cli import output
from pgtopo.model import loader
from pgtopo.model.topology import Topology

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Design, run and operate multi-region PostgreSQL topologies on one machine.",
    pretty_exceptions_enable=False,
)
image_app = typer.Typer(help="The PostgreSQL image (built locally, no registry needed).", no_args_is_help=True)
app.add_typer(image_app, name="image")

TopologyFile = Annotated[Path, typer.Argument(help="The topology file (YAML).", show_default=False)]
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def handled() -> Iterator[None]:
    """The one place errors become exit codes."""
    try:
        yield
    except errors.PgtopoError as exc:
        output.error_lines([f"error: {exc.lines()[0]}", *exc.lines()[1:]])
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error_lines(["interrupted"])
        raise typer.Exit(errors.EXIT_INTERRUPTED) from None
    except Exception as exc:
        # A database or Docker error that a domain module did not translate (a connection lost
        # mid-command, a container removed meanwhile): one line and exit 1, not a traceback.
        # Anything else is a bug: re-raised for main()'s crash log (exit 3).
        source = type(exc).__module__.split(".")[0]
        if source not in ("psycopg", "docker", "requests", "urllib3"):
            raise
        what = "database" if source == "psycopg" else "Docker"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        output.error_lines([f"error: {what} error: {first}"])
        raise typer.Exit(errors.EXIT_FAILED) from None


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    return app.command(*args, **kwargs)


def load_topology(path: Path) -> Topology:

    return loader.load(path)
