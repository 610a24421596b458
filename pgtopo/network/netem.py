"""Does this kernel have netem? Asked at run time, with a throw-away container.

Many kernels (this workplace's hosts among them) are built without ``sch_netem``; users'
distributions and Docker Desktop normally have it. pgtopo simulates latency with its
userspace relay either way (``pgtopo/relay.py``): netem is detected and reported, not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pgtopo.errors import PgtopoError
from pgtopo.runtime import gateway, state

PROBE_COMMAND = ["tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms"]
RELAY = "relay"


@dataclass(frozen=True)
class Mechanism:
    """How cross-region latency is simulated, and what the kernel would offer instead."""

    name: str  # "relay" or "none" (a single region has no cross-region links)
    netem_available: bool | None  # None: not checked or could not tell
    detail: str

    def describe(self) -> str:
        return f"{self.name} ({self.detail})"

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "netem_available": self.netem_available, "detail": self.detail}


def interpret(rc: int, output: str) -> tuple[bool | None, str]:
    """Read the probe's exit code and output: (netem available?, why)."""
    text = " ".join(output.split())
    if rc == 0:
        return True, "netem available on this kernel"
    if "unknown" in text.lower() and "qdisc" in text.lower():
        return False, "netem unavailable on this kernel"
    return None, f"netem detection failed: exit code {rc}" + (f": {text[:160]}" if text else "")


@lru_cache(maxsize=4)
def _detect(image: str, topology: str) -> tuple[bool | None, str]:
    # network_mode none: the container gets its own loopback and nothing else, so the probe
    # changes nothing outside itself; NET_ADMIN is what adding a qdisc needs.
    rc, out = gateway.run_oneshot(image, PROBE_COMMAND, cap_add=["NET_ADMIN"], network_mode="none",
                                  labels=gateway.labels(topology, "probe"))
    return interpret(rc, out)


def detect(image: str, *, topology: str) -> tuple[bool | None, str]:
    """Run ``tc qdisc add dev lo root netem`` in a throw-away container of ``image``."""
    if not gateway.image_exists(image):
        return None, f"netem not checked: image {image} is not built yet"
    try:
        return _detect(image, topology)
    except PgtopoError as exc:
        return None, f"netem detection failed: {exc.message}"


def describe(available: bool | None, why: str) -> Mechanism:
    if available is True:
        return Mechanism(RELAY, True, "netem available on this kernel, but pgtopo simulates latency with the relay only")
    if available is False:
        return Mechanism(RELAY, False, why)
    return Mechanism(RELAY, None, why)


def mechanism(*, topology: str, image: str, multi_region: bool, running: bool) -> Mechanism:
    """The mechanism in use; a running topology remembers the kernel's answer in its state."""
    if not multi_region:
        return Mechanism("none", None, "a single region has no cross-region links")
    # Only a state that `up` wrote is a cache: never create one for a topology started elsewhere.
    known = running and state.exists(topology)
    cached = state.load(topology).netem if known else None
    if cached is not None:
        return describe(cached.available, cached.detail)
    available, why = detect(image, topology=topology)
    if known and available is not None:
        rec = state.NetemRecord(available=available, detail=why)
        state.update(topology, lambda rt: rt.model_copy(update={"netem": rec}))
    return describe(available, why)
