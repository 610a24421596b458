"""The command line entry point: the app with every command registered, and ``main()``.

Commands live in the modules of ``pgtopo.cli``; each translates only.

Exit codes: 0 success, 1 an operation failed, 2 bad input or usage, 3 unexpected error
(traceback written to the log file), 130 interrupted.
"""

from __future__ import annotations

import os
import traceback

from pgtopo import errors
from pgtopo.cli import bench, core, drill, env, ha, network, observe, output, subscription
from pgtopo.cli.app import create_app
from pgtopo.runtime import interrupt, state

# Every command of pgtopo, in the order `pgtopo --help` lists them (typer shows sub-command groups
# after the plain commands, so they come last here too).
COMMANDS = (
    core.commands,
    env.commands,
    ha.commands,
    network.commands,
    observe.commands,
    subscription.commands,
    core.image,
    bench.commands,
    drill.commands,
    network.latency,
)
app = create_app(COMMANDS)


def main() -> None:
    """Entry point: run the app; unexpected errors are logged to a file, not shown as tracebacks."""
    interrupt.install()
    try:
        app()
    except SystemExit as exc:
        if exc.code == errors.EXIT_INTERRUPTED:
            interrupt.leave(errors.EXIT_INTERRUPTED)  # not waiting for a worker still in a docker exec
        raise
    except Exception as exc:
        log = state.state_root() / "crash.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # tracebacks may hold values
        with os.fdopen(fd, "a") as fh:
            fh.write(traceback.format_exc() + "\n")
        output.error_lines([f"unexpected error: {exc.__class__.__name__}: {exc}", f"traceback written to {log}"])
        raise SystemExit(errors.EXIT_UNEXPECTED) from None

