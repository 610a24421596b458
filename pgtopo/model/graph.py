"""The topology as a picture: a text tree, Mermaid or Graphviz dot."""

from __future__ import annotations

from pgtopo.model.topology import Topology


def _edges(topo: Topology) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    physical = []
    for cname, cluster in topo.clusters.items():
        for nname, node in cluster.nodes.items():
            if node.upstream:
                sync = cluster.synchronous
                kind = "sync" if sync and nname in sync.standbys else "async"
                rtt = topo.rtt_ms(node.region, topo.node(node.upstream).region)
                physical.append((node.upstream, nname, f"physical {kind}, {rtt:g} ms" if rtt else f"physical {kind}"))
        del cname
    logical = []
    for cluster in topo.clusters.values():
        sub_node = cluster.primary_name
        for sname, sub in cluster.subscriptions.items():
            pub_node = topo.clusters[sub.publisher].primary_name
            rtt = topo.rtt_ms(topo.node(sub_node).region, topo.node(pub_node).region)
            label = f"{sub.publication} -> {sname}" + (f", {rtt:g} ms" if rtt else "")
            logical.append((pub_node, sub_node, label))
    return physical, logical


def tree(topo: Topology) -> str:
    lines = [f"{topo.name} (PostgreSQL {topo.postgres.version})"]
    regions = list(topo.regions)
    for i, region in enumerate(regions):
        last_r = i == len(regions) - 1
        lines.append(("└── " if last_r else "├── ") + f"region {region}")
        pad = "    " if last_r else "│   "
        members = [(c, n, node) for c, n, node in topo.all_nodes() if node.region == region]
        for j, (c, n, node) in enumerate(members):
            role = "primary" if node.role == "primary" else f"replica of {node.upstream}"
            lines.append(pad + ("└── " if j == len(members) - 1 else "├── ") + f"{n} [{c}] {role}")
    physical, logical = _edges(topo)
    if physical or logical:
        lines.append("replication")
        for a, b, label in physical + logical:
            lines.append(f"  {a} ──▶ {b}  ({label})")
    if topo.latency:
        lines.append("latency (round trip)")
        for link in topo.latency:
            jitter = f" ± {link.jitter_ms:g}" if link.jitter_ms else ""
            lines.append(f"  {link.between[0]} ↔ {link.between[1]}: {link.rtt_ms:g}{jitter} ms")
    return "\n".join(lines) + "\n"


def _mid(name: str) -> str:
    return name.replace("-", "_")


def mermaid(topo: Topology) -> str:
    lines = ["flowchart LR"]
    for region in topo.regions:
        lines.append(f"  subgraph {_mid(region)}[\"{region}\"]")
        for c, n, node in topo.all_nodes():
            if node.region == region:
                shape = f"[(\"{n}<br/>{c} primary\")]" if node.role == "primary" else f"[(\"{n}<br/>{c} replica\")]"
                lines.append(f"    {_mid(n)}{shape}")
        lines.append("  end")
    physical, logical = _edges(topo)
    for a, b, label in physical:
        lines.append(f"  {_mid(a)} -->|\"{label}\"| {_mid(b)}")
    for a, b, label in logical:
        lines.append(f"  {_mid(a)} -.->|\"{label}\"| {_mid(b)}")
    return "\n".join(lines) + "\n"


def dot(topo: Topology) -> str:
    lines = [f'digraph "{topo.name}" {{', "  rankdir=LR;", "  node [shape=cylinder];"]
    for i, region in enumerate(topo.regions):
        lines.append(f'  subgraph cluster_{i} {{ label="{region}";')
        for c, n, node in topo.all_nodes():
            if node.region == region:
                lines.append(f'    "{n}" [label="{n}\\n{c} {node.role}"];')
        lines.append("  }")
    physical, logical = _edges(topo)
    for a, b, label in physical:
        lines.append(f'  "{a}" -> "{b}" [label="{label}"];')
    for a, b, label in logical:
        lines.append(f'  "{a}" -> "{b}" [label="{label}", style=dashed];')
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"tree": tree, "mermaid": mermaid, "dot": dot}
