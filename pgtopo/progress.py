"""How long operations report progress: ``progress(subject, message)``, printed by the CLI."""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[str, str], None]


def quiet(_subject: str, _message: str) -> None:
    """A progress callback that reports nothing."""
