"""All printing goes through here (rich on a terminal, plain text when piped)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from rich.console import Console, Group
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
    show([TableData(title=title, columns=columns, rows=rows)])


class StepPrinter:
    """Progress of long operations: one line per step with the elapsed time."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, subject: str, message: str) -> None:
        elapsed = time.monotonic() - self.started
        err.print(f"[dim]{elapsed:6.1f}s[/dim] [bold]{escape(subject):<12}[/bold] {escape(message)}")


# -- screens: tables and styled lines, printed once or refreshed in place (`status --watch`) -------

@dataclass(frozen=True)
class TableData:
    title: str | None
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Line:
    """A line of text; style is one of STYLES ("" for plain)."""

    text: str
    style: str = ""


Block = TableData | Line
STYLES = {"": "", "error": "red", "warning": "yellow", "info": "cyan", "success": "green", "dim": "dim",
          "alarm": "bold white on red"}


def _renderable(blocks: Sequence[Block]) -> Group:
    from rich.text import Text

    parts: list[Table | Text] = []
    for b in blocks:
        if isinstance(b, TableData):
            t = Table(title=b.title, title_justify="left", header_style="bold")
            for col in b.columns:
                t.add_column(col, overflow="fold")
            for row in b.rows:
                t.add_row(*[escape(c) for c in row])
            parts.append(t)
        else:
            parts.append(Text(b.text, style=STYLES.get(b.style, "")))
    return Group(*parts)


def show(blocks: Sequence[Block]) -> None:
    # Piped output is not folded to 80 columns: tables keep their natural width.
    console = out if out.is_terminal else Console(highlight=False, soft_wrap=True, width=250, file=out.file)
    console.print(_renderable(blocks))


@contextmanager
def live() -> Iterator[Callable[[Sequence[Block]], None]]:
    """Refresh a screen in place; yields ``update(blocks)``. The last screen stays visible."""
    from rich.live import Live

    with Live(console=out, auto_refresh=False, screen=False, transient=False) as view:
        def update(blocks: Sequence[Block]) -> None:
            view.update(_renderable(blocks), refresh=True)

        yield update


def json_line(data: Any) -> None:
    """One compact JSON document per line (streams such as `status --watch --json`)."""
    sys.stdout.write(json.dumps(data, separators=(",", ":"), default=str) + "\n")
    sys.stdout.flush()


def fmt_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.1f} s"
