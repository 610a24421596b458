"""Deprecated import path: the routing helper lives in ``pgtopo.apps.routing``.

Applications imported ``pgtopo.routing`` before the package was split into layers; this
module keeps that import working for one release and says where to go.
"""

from __future__ import annotations

import warnings

from pgtopo.apps.routing import (
    STRATEGIES,
    CommitUnknown,
    ReadInfo,
    Router,
    RoutingError,
    Session,
    Strategy,
    Token,
)

__all__ = ["STRATEGIES", "CommitUnknown", "ReadInfo", "Router", "RoutingError", "Session", "Strategy", "Token"]

warnings.warn("pgtopo.routing moved to pgtopo.apps.routing; import it from there", DeprecationWarning, stacklevel=2)
