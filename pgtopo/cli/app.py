"""The typer app, the error handler, command registration and helpers shared by every command module.

Exit codes: 0 success, 1 an operation failed, 2 bad input or usage, 3 unexpected error
(traceback written to the log file), 130 interrupted.
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar, cast

import psycopg
import typer

from pgtopo import errors
from pgtopo.cli import completion, output
from pgtopo.model import loader
from pgtopo.model.topology import Topology
from pgtopo.runtime import lock, state
from pgtopo.runtime.gateway import DOCKER_ERRORS

TopologyFile = Annotated[Path, typer.Argument(help="The topology file (YAML).", show_default=False)]
# Commands pick a different default cluster (env: the first with replicas; failover: the cluster of
# --to, else the only one with replicas): each command's description says which.
ClusterOption = Annotated[str | None, typer.Option(
    "--cluster", "-c", help="The cluster to act on (default: see the description above).",
    show_default=False, autocompletion=completion.complete_cluster)]
NoWaitOption = Annotated[bool, typer.Option(
    "--no-wait", help="If another command is changing this topology, fail at once (naming it) instead of "
                      "waiting for it to finish.")]
F = TypeVar("F", bound=Callable[..., Any])


@contextmanager
def handled() -> Iterator[None]:
    """The one place errors become exit codes (``Commands.register`` applies it to every command)."""
    try:
        yield
    except errors.Interrupted as exc:
        output.error_lines([f"interrupted: {exc.lines()[0]}", *exc.lines()[1:]])
        raise typer.Exit(exc.exit_code) from None
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
    output.error_lines([f"error: {what} error: {errors.first_line(exc)}"])
    raise typer.Exit(errors.EXIT_FAILED) from None


def _run_handled(fn: F) -> F:
    """``fn`` run inside ``handled()``; functools.wraps keeps the signature typer reads its parameters from."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with handled():
            return fn(*args, **kwargs)

    return cast(F, run)


class Commands:
    """The commands one module contributes.

    ``@commands.command()`` only records a function; ``register(app)`` adds the recorded commands,
    each run inside ``handled()``, to ``app`` itself or, when ``name`` is given, to a sub-command
    group (``pgtopo NAME COMMAND ...``).
    """

    def __init__(self, name: str | None = None, *, help: str | None = None,
                 rich_help_panel: str | None = None) -> None:
        self.name = name
        self.help = help
        self.rich_help_panel = rich_help_panel
        self._recorded: list[tuple[Callable[..., Any], str | None, dict[str, Any]]] = []

    def command(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        def record(fn: F) -> F:
            self._recorded.append((fn, name, kwargs))
            return fn

        return record

    def register(self, app: typer.Typer) -> None:
        target = app
        if self.name is not None:
            target = typer.Typer(help=self.help, no_args_is_help=True)
            app.add_typer(target, name=self.name, rich_help_panel=self.rich_help_panel)
        for fn, name, kwargs in self._recorded:
            target.command(name, **kwargs)(_run_handled(fn))


def create_app(groups: Iterable[Commands]) -> typer.Typer:
    """The typer app with ``groups`` registered in order (the order `pgtopo --help` lists them)."""
    app = typer.Typer(
        add_completion=True,
        no_args_is_help=True,
        help="Design, run and operate multi-region PostgreSQL topologies on one machine.",
        pretty_exceptions_enable=False,
    )
    for group in groups:
        group.register(app)
    return app


PARSED_CACHE = ".parsed"  # beside the topologies' state directories: a name no topology can have


def load_topology(path: Path) -> Topology:
    # Kept only for a topology that has run (its state directory exists): a command refused on a
    # file never brought up creates nothing.
    return loader.load(path, cache=state.state_root() / PARSED_CACHE,
                       keep=lambda topo: state.topology_dir(topo.name).is_dir())


def _command_line() -> str:
    """This command as the user typed it (what another command waiting for the lock shows)."""
    return shlex.join(["pgtopo", *sys.argv[1:]])


@contextmanager
def changing(name: str, *, no_wait: bool, dry_run: bool = False, create: bool = False) -> Iterator[None]:
    """Held around the whole of a command that changes topology ``name`` (see pgtopo.runtime.lock):
    another one waits for it, saying so, or with --no-wait refuses. A dry run changes nothing and
    never waits; only `up` (``create``) locks a topology that has no state directory yet."""
    if dry_run:
        yield
        return
    with lock.command_lock(name, command=_command_line(), wait=not no_wait, progress=output.StepPrinter(),
                           create=create):
        yield
