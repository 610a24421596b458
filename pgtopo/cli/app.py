"""The typer app, the error handler and helpers shared by every command module.

Exit codes: 0 success, 1 an operation failed, 2 bad input or usage, 3 unexpected error
(traceback written to the log file), 130 interrupted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, cast

import psycopg
import typer

from pgtopo import errors
from pgtopo.cli import output
from pgtopo.model import loader
from pgtopo.model.topology import Topology
from pgtopo.runtime.gateway import DOCKER_ERRORS

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
    """The one place errors become exit codes (applied to every command by ``command()``)."""
    try:
        yield
    except errors.PgtopoError as exc:
        output.error_lines([f"error: {exc.lines()[0]}", *exc.lines()[1:]])
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        output.error_lines(["interrupted"])
        raise typer.Exit(errors.EXIT_INTERRUPTED) from None
    # A database or Docker error that a domain module did not translate (a connection lost
    # mid-command, a container removed meanwhile): one line and exit 1, not a traceback. Anything
    # else is a bug and goes on to main()'s crash log (exit 3).
    except psycopg.Error as exc:
        _untranslated("database", exc)
    except DOCKER_ERRORS as exc:
        _untranslated("Docker", exc)


def _untranslated(what: str, exc: Exception) -> NoReturn:
    text = str(exc).strip()
    output.error_lines([f"error: {what} error: {text.splitlines()[0] if text else type(exc).__name__}"])
    raise typer.Exit(errors.EXIT_FAILED) from None


def run_handled(fn: F) -> F:
    """``fn`` run inside ``handled()``; functools.wraps keeps the signature typer reads its parameters from."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with handled():
            return fn(*args, **kwargs)

    return cast(F, run)


def command(*args: Any, **kwargs: Any) -> Callable[[F], F]:
    return sub_command(app, *args, **kwargs)


def sub_command(target: typer.Typer, *args: Any, **kwargs: Any) -> Callable[[F], F]:
    """Register a command of ``target`` (the app or a sub-app), run inside ``handled()``."""
    def register(fn: F) -> F:
        target.command(*args, **kwargs)(run_handled(fn))
        return fn

    return register


def load_topology(path: Path) -> Topology:
    return loader.load(path)
