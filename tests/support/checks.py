"""Reading the checks verify makes (``pgtopo.observe.health_checks.Check``)."""

from __future__ import annotations

from pgtopo.observe.health_checks import Check


def failed(found: list[Check]) -> list[tuple[str, str, str]]:
    """(check, subject, reason) of every check that did not pass, in order."""
    return [(c.check, c.subject, c.reason) for c in found if not c.passed]
