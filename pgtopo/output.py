"""All printing goes through here (rich on a terminal, plain text when piped)."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    out.print(message, markup=False)


def success(message: str) -> None:
    out.print(f"[green]✓[/green] {escape(message)}")


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error_lines(lines: list[str]) -> None:
    for line in lines:
        err.print(line, markup=False)


def escape(text: str) -> str:
    from rich.markup import escape as _esc

    return _esc(text)


def as_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    sys.stdout.flush()


def table(title: str | None, columns: list[str], rows: list[list[str]]) -> None:
    t = Table(title=title, title_justify="left", show_lines=False, header_style="bold")
    for col in columns:
        t.add_column(col, overflow="fold")
    for row in rows:
        t.add_row(*[escape(c) for c in row])
    out.print(t)


class StepPrinter:
    """Progress of long operations: one line per step with the elapsed time."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, subject: str, message: str) -> None:
        elapsed = time.monotonic() - self.started
        err.print(f"[dim]{elapsed:6.1f}s[/dim] [bold]{escape(subject):<12}[/bold] {escape(message)}")
