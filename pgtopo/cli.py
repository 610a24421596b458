"""The command line entry point. Commands live in ``pgtopo.commands``; each translates only.

Exit codes: 0 success, 1 an operation failed, 2 bad input or usage, 3 unexpected error
(traceback written to the log file), 130 interrupted.
"""

from __future__ import annotations

import os
import traceback

from pgtopo import errors, output, state
from pgtopo.app import app
from pgtopo.commands import bench as _bench  # noqa: F401  (registers bench ryw)
from pgtopo.commands import core  # noqa: F401  (registers commands)
from pgtopo.commands import env as _env  # noqa: F401  (registers env)
from pgtopo.commands import ha as _ha  # noqa: F401  (registers failover, switchover, rejoin, kill)
from pgtopo.commands import network as _network  # noqa: F401  (registers latency, partition, heal)
from pgtopo.commands import observe as _observe  # noqa: F401  (registers status, verify)
from pgtopo.commands import subscription as _subscription  # noqa: F401  (registers add-/remove-subscription)


def main() -> None:
    """Entry point: run the app; unexpected errors are logged to a file, not shown as tracebacks."""
    try:
        app()
    except SystemExit:
        raise
    except Exception as exc:
        log = state.state_root() / "crash.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)  # tracebacks may hold values
        with os.fdopen(fd, "a") as fh:
            fh.write(traceback.format_exc() + "\n")
        output.error_lines([f"unexpected error: {exc.__class__.__name__}: {exc}", f"traceback written to {log}"])
        raise SystemExit(errors.EXIT_UNEXPECTED) from None

