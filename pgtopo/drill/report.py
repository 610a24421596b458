"""A drill's report folder: ``index.html`` (self-contained: the charts are inlined), the charts as
PNG files, ``verdict.json`` and ``events.json`` (the whole log, which can be judged again).

Charts (matplotlib, Agg backend: no display needed): throughput, commit latency percentiles,
replication lag per edge, and which node accepted writes; every step is marked on the time axis.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pgtopo.drill.events import DrillLog, to_json
from pgtopo.drill.spec import Drill
from pgtopo.drill.verdict import Verdict, percentile

if TYPE_CHECKING:
    from matplotlib.axes import Axes

BUCKET_S = 1.0
CHARTS = ("throughput", "latency", "lag", "roles")


def drill_json(drill: Drill) -> dict[str, Any]:
    """The drill file as it was written (only what it set: a step holds its one action), which
    :func:`pgtopo.drill.spec.parse` reads back to the same drill."""
    return drill.model_dump(mode="json", by_alias=True, exclude_unset=True)


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    data = dataclasses.asdict(verdict)
    data["passed"] = verdict.passed
    data["checks"] = [{**dataclasses.asdict(c), "result": c.result} for c in verdict.checks]
    return data


# -- series (pure) ---------------------------------------------------------------------------------

def buckets(times: Sequence[float], end: float, size: float = BUCKET_S) -> list[int]:
    """How many of ``times`` fall in each ``size``-second bucket from 0 to ``end``."""
    out = [0] * max(1, math.ceil(end / size))
    for t in times:
        i = int(t / size)
        if 0 <= i < len(out):
            out[i] += 1
    return out


def throughput(log: DrillLog) -> dict[str, tuple[list[int], list[int]]]:
    """Workload (readers grouped) -> (commits, failed attempts) per second."""
    ok: dict[str, list[float]] = defaultdict(list)
    bad: dict[str, list[float]] = defaultdict(list)
    for a in log.attempts:
        name = "readers' writes" if a.kind == "reader" else a.workload
        (ok if a.outcome == "ok" else bad)[name].append(a.end)
    end = max(log.ended, log.duration)
    return {w: (buckets(ok[w], end), buckets(bad[w], end)) for w in sorted(set(ok) | set(bad))}


def latency_percentiles(log: DrillLog) -> dict[str, tuple[list[float], list[float], list[float]]]:
    """Ledger writer -> (bucket middles, p50 ms, p99 ms) of acknowledged commits."""
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    for a in log.attempts:
        if a.kind == "ledger" and a.outcome == "ok":
            by[a.workload][int(a.end / BUCKET_S)].append((a.end - a.start) * 1000)
    out = {}
    for w, per in sorted(by.items()):
        keys = sorted(per)
        out[w] = ([(k + 0.5) * BUCKET_S for k in keys], [percentile(per[k], 50) for k in keys],
                  [percentile(per[k], 99) for k in keys])
    return out


def roles(log: DrillLog) -> dict[str, list[tuple[float, str]]]:
    """Node -> (time, writable | replica | down) at each sample."""
    out: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for s in sorted(log.samples, key=lambda x: x.t):
        out[s.node].append((s.t, "down" if not s.reachable else ("writable" if s.writable else "replica")))
    return dict(out)


# -- charts ------------------------------------------------------------------------------------------

def _mark_steps(ax: Axes, log: DrillLog, *, label: bool) -> None:
    for s in log.steps:
        if s.status == "skipped":
            continue
        color = "tab:red" if s.action in ("kill", "pause", "partition", "latency") else (
            "tab:green" if s.action in ("failover", "switchover", "rejoin", "heal", "unpause") else "tab:gray")
        ax.axvline(s.start, color=color, linestyle="--", linewidth=1)
        if s.end - s.start > 0.2:
            ax.axvspan(s.start, s.end, color=color, alpha=0.08)
        if label:
            ax.annotate(f"{s.index}: {s.text}", xy=(s.start, 1.0), xycoords=("data", "axes fraction"),
                        rotation=90, va="top", ha="right", fontsize=7, color=color)


def _charts(log: DrillLog, out: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.patches import Patch

    end = max(log.ended, log.duration)
    paths: dict[str, Path] = {}

    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (w, (ok, bad)) in enumerate(throughput(log).items()):
        xs = [(k + 0.5) * BUCKET_S for k in range(len(ok))]
        ax.plot(xs, ok, label=f"{w} commits/s", linewidth=1.5, color=f"C{i}")
        if any(bad):
            ax.plot(xs, bad, linestyle=":", label=f"{w} failed/s", color=f"C{i}")
    _finish(ax, log, end, "throughput (per second)", "operations / s")
    paths["throughput"] = _save(fig, out / "throughput.png")

    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (w, (xs, p50, p99)) in enumerate(latency_percentiles(log).items()):
        color = f"C{i}"
        ax.plot(xs, p50, label=f"{w} p50", linewidth=1.5, color=color)
        ax.plot(xs, p99, label=f"{w} p99", linestyle="--", linewidth=1, color=color)
    ax.set_yscale("log")
    _finish(ax, log, end, "commit latency (acknowledged commits, per second)", "ms")
    paths["latency"] = _save(fig, out / "latency.png")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    edges: dict[str, list[tuple[float, int | None, float | None]]] = defaultdict(list)
    for s in log.lags:
        edges[f"{s.sender} -> {s.receiver}"].append((s.t, s.bytes, s.seconds))
    for name, pts in sorted(edges.items()):
        top.plot([p[0] for p in pts], [p[1] or 0 for p in pts], label=name, linewidth=1)
        bottom.plot([p[0] for p in pts], [p[2] or 0.0 for p in pts], label=name, linewidth=1)
    top.set_yscale("symlog", linthresh=1024)
    _finish(top, log, end, "replication lag per edge (as its sender sees it)", "bytes")
    _finish(bottom, log, end, None, "seconds (replay lag)", label_steps=False)
    paths["lag"] = _save(fig, out / "lag.png")

    states = roles(log)
    fig, ax = plt.subplots(figsize=(10, 0.6 + 0.45 * max(1, len(states))))
    colors = {"writable": "tab:orange", "replica": "tab:blue", "down": "lightgray"}
    for y, (_node, spans) in enumerate(sorted(states.items())):
        for (t0, st), (t1, _n) in zip(spans, [*spans[1:], (end, "")], strict=True):
            ax.barh(y, t1 - t0, left=t0, color=colors[st], height=0.6)
    ax.set_yticks(range(len(states)), sorted(states))
    handles = [Patch(color=c, label=s) for s, c in colors.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _mark_steps(ax, log, label=False)
    ax.set_xlim(0, end)
    ax.set_title("who accepted writes (every sample)")
    ax.set_xlabel("seconds since the drill started")
    paths["roles"] = _save(fig, out / "roles.png")
    return paths


def _finish(ax: Axes, log: DrillLog, end: float, title: str | None, ylabel: str, *, label_steps: bool = True) -> None:
    _mark_steps(ax, log, label=label_steps)
    ax.set_xlim(0, end)
    ax.set_ylabel(ylabel)
    ax.set_xlabel("seconds since the drill started")
    if title:
        ax.set_title(title)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    ax.grid(alpha=0.3)


def _save(fig: Any, path: Path) -> Path:
    from matplotlib import pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# -- the page ----------------------------------------------------------------------------------------

_STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4}.PASS{background:#d7f5d7}.FAIL{background:#f9d0d0}.details{color:#555;font-size:90%}
img{max-width:100%;border:1px solid #eee;margin:0.5em 0}code{background:#f4f4f4;padding:0 3px}"""


def page(*, drill: Drill, log: DrillLog, verdict: Verdict, images: dict[str, bytes]) -> str:
    """The report as one HTML document (pure: the PNGs are given as bytes and inlined)."""
    e = html.escape
    rows = "".join(
        f"<tr class='{c.result if c.passed is not None else ''}'><td>{e(c.key)}</td><td>{e(c.subject)}</td>"
        f"<td>{e(c.measured)}</td><td>{e(c.expected)}</td><td><b>{c.result}</b></td>"
        f"<td class='details'>{'<br>'.join(e(d) for d in c.details)}</td></tr>" for c in verdict.checks)
    step_rows = "".join(
        f"<tr><td>{s.index}</td><td>{e(s.text)}</td><td>{s.planned:.1f}</td><td>{s.start:.2f}</td>"
        f"<td>{s.end - s.start:.2f}</td><td>{e(s.status)}</td><td class='details'>{e(s.detail)}</td></tr>"
        for s in log.steps)
    charts = "".join(f"<h3>{e(name)}</h3><img alt='{e(name)}' src='data:image/png;base64,"
                     f"{base64.b64encode(data).decode()}'>" for name, data in images.items())
    notes = "".join(f"<li>{e(n)}</li>" for n in log.notes)
    outcome = "PASS" if verdict.passed else "FAIL"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>drill {e(drill.drill)}: {outcome}</title>
<style>{_STYLE}</style></head><body>
<h1>drill {e(drill.drill)}: <span class="{outcome}">{outcome}</span></h1>
<p>{e(drill.description or '')}</p>
<p>topology <code>{e(log.topology)}</code>, cluster <code>{e(log.cluster)}</code>; started {e(log.started_at)};
workload ran {log.ended:.1f} s; every node sampled every {log.sample_every * 1000:.0f} ms.</p>
<h2>verdict</h2>
<table><tr><th>expectation</th><th>subject</th><th>measured</th><th>expected</th><th>result</th><th>details</th></tr>
{rows}</table>
<h2>steps</h2>
<table><tr><th>#</th><th>step</th><th>planned (s)</th><th>started (s)</th><th>took (s)</th><th>status</th>
<th>what happened</th></tr>{step_rows}</table>
<h2>charts</h2>{charts}
{f'<h2>notes</h2><ul>{notes}</ul>' if notes else ''}
<p class="details">pgtopo drill; the events behind this page are in events.json (judge them again with
<code>pgtopo drill judge</code>).</p>
</body></html>
"""


def write(directory: Path, *, drill: Drill, log: DrillLog, verdict: Verdict) -> Path:
    """Write the report folder; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "events.json").write_text(json.dumps(to_json(log), separators=(",", ":")) + "\n")
    (directory / "verdict.json").write_text(json.dumps(verdict_json(verdict), indent=2, default=str) + "\n")
    (directory / "drill.json").write_text(json.dumps(drill_json(drill), indent=2) + "\n")
    paths = _charts(log, directory)
    images = {name: paths[name].read_bytes() for name in CHARTS if name in paths}
    (directory / "index.html").write_text(page(drill=drill, log=log, verdict=verdict, images=images))
    return directory
