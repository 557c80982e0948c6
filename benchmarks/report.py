"""Turning results into the table, the JSON file, the chart, and the docs' numbers."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from .peers import ALL_PEERS

SHORT_OPS = {
    "GetSecretValue": "Get",
    "DescribeSecret": "Describe",
    "BatchGetSecretValue": "BatchGet",
    "GetParameters": "SSM GetParameters",
}


def _calls(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "—"
    total = sum(counts.values())
    if set(counts) <= {"GetSecretValue"}:
        return str(total)
    parts = " + ".join(f"{SHORT_OPS.get(op, op)} {n}" for op, n in sorted(counts.items()))
    return f"{total} ({parts})"


def _seconds(value: float) -> str:
    if value < 0.001:
        return "< 1 ms"
    if value < 1:
        return f"{value * 1e3:.0f} ms"
    return f"{value:.1f} s"


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M/s"
    if value >= 1e3:
        return f"{value / 1e3:.0f} k/s"
    return f"{value:.0f}/s"


def _outage(readers: list[dict[str, Any]] | None, index: int) -> str:
    if readers is None:
        return "—"
    found = readers[index]
    prefix = "≥ " if found.get("capped") else ""
    return f"{found['outcome']}, {prefix}{_seconds(found['seconds'])}"


def _db(results: dict[str, Any], key: str, field: str) -> str:
    rotation = results.get("db_rotation") or {}
    approaches = rotation.get("approaches") or {}
    if key not in approaches:
        return "not measured in this run" if key == "secretcache" else "—"
    value = approaches[key].get(field)
    return "—" if value is None else str(value)


def rows(results: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(figure, {peer name: cell}) in table order."""
    peers = results["results"]
    floor = peers.get("dict", {}).get("hit_ns")

    def each(render: Any) -> dict[str, str]:
        cells = {}
        for cls in ALL_PEERS:
            data = peers.get(cls.name, {})
            try:
                cells[cls.name] = render(data, cls)
            except (KeyError, TypeError):
                cells[cls.name] = "—"
        return cells

    memory_n = next((d["memory_secrets"] for d in peers.values() if "memory_secrets" in d), "N")
    table: list[tuple[str, dict[str, str]]] = [
        ("hit, 1 thread (median)", each(lambda d, c: f"{d['hit_ns']:,.0f} ns")),
        (
            "hit ÷ dict floor, same run",
            each(lambda d, c: f"x{d['hit_ns'] / floor:,.1f}" if floor else "—"),
        ),
        ("hits, 8 threads", each(lambda d, c: _rate(d["threads8_reads_per_s"]))),
        ("API calls: first read", each(lambda d, c: _calls(d["first_read_calls"]))),
        ("API calls: 32 threads miss at once", each(lambda d, c: _calls(d["miss32_calls"]))),
        (
            "API calls: TTL refresh, unchanged",
            each(lambda d, c: _calls(d["refresh_unchanged_calls"])),
        ),
        (
            "API calls: TTL refresh, rotated",
            each(
                lambda d, c: (
                    _calls(d["refresh_rotated_calls"])
                    + ("" if d["refresh_rotated_seen"] else ", old value")
                )
            ),
        ),
        (
            "outage past TTL, refused: first read",
            each(lambda d, c: _outage(d["outage_refused"], 0)),
        ),
        (
            "outage past TTL, refused: read 0.25 s later",
            each(lambda d, c: _outage(d["outage_refused"], 1)),
        ),
        (
            "outage past TTL, never answers: first read",
            each(lambda d, c: _outage(d["outage_hangs"], 0)),
        ),
        (
            "outage past TTL, never answers: read 0.25 s later",
            each(lambda d, c: _outage(d["outage_hangs"], 1)),
        ),
        (
            "forced refresh after rotation: time",
            each(lambda d, c: _seconds(d["forced"]["seconds"])),
        ),
        (
            "forced refresh after rotation: API calls",
            each(
                lambda d, c: (
                    _calls(d["forced"]["calls"]) + ("" if d["forced"]["saw_new"] else ", old value")
                )
            ),
        ),
        ("`import` (fresh interpreter)", each(lambda d, c: f"{d['import_ms']:.0f} ms")),
        ("`import` + ready client", each(lambda d, c: f"{d['ready_ms']:.0f} ms")),
        (
            f"retained per cached secret ({memory_n:,} secrets)",
            each(lambda d, c: f"{d['bytes_per_secret']:,.0f} B"),
        ),
        (
            "DB rotations: failed connects",
            each(lambda d, c: _db(results, c.name, "failed_logins")),
        ),
        ("DB rotations: API calls", each(lambda d, c: _db(results, c.name, "api_calls"))),
    ]
    return table


def markdown_table(results: dict[str, Any]) -> str:
    header = ["figure", *(cls.label for cls in ALL_PEERS)]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for figure, cells in rows(results):
        lines.append("| " + " | ".join([figure, *(cells[cls.name] for cls in ALL_PEERS)]) + " |")
    return "\n".join(lines)


def design_table(design: dict[str, float]) -> str:
    return "\n".join(
        [
            "| per operation | time |",
            "|---|---|",
            f"| hit: `dict.get` + `last_used` store | {design['dict_hit_ns']:.0f} ns |",
            f"| hit: `cachetools.LRUCache.__getitem__` | {design['lru_hit_ns']:.0f} ns |",
            f"| saved on every hit | {design['saved_per_hit_ns']:.0f} ns |",
            f"| one eviction scan, {design['max_size']:.0f} entries | "
            f"{design['eviction_scan_us']:.0f} µs |",
            f"| hits whose savings pay for one scan | {design['hits_to_pay_for_one_scan']:,.0f} |",
        ]
    )


def machine_line(meta: dict[str, Any]) -> str:
    return (
        f"{meta['cpu']} ({meta['cores']} cores), Python {meta['python']}, {meta['os']}; "
        f"{meta['mode']} mode, {meta['date']}"
    )


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, sort_keys=True, default=str) + "\n")


def write_chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    peers = results["results"]
    floor = peers.get("dict", {}).get("hit_ns") or math.nan
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    fig.suptitle(f"secretcache and its peers — {machine_line(results['meta'])}", fontsize=9)

    def bars(ax: Any, names: list[str], values: list[float], title: str, log: bool) -> None:
        labels = [next(c.label for c in ALL_PEERS if c.name == n) for n in names]
        colours = ["#2b7bba" if n == "secretcache" else "#9aa5b1" for n in names]
        ax.barh(labels, values, color=colours)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_xscale("log")
        for y, value in enumerate(values):
            ax.annotate(
                f"{value:,.3g}",
                (value, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=8,
            )
        ax.tick_params(labelsize=8)

    hit_names = [c.name for c in ALL_PEERS if "hit_ns" in peers.get(c.name, {})]
    bars(
        axes[0][0],
        hit_names,
        [peers[n]["hit_ns"] / floor for n in hit_names],
        "cache hit, x the dict floor (log scale, lower is better)",
        True,
    )

    ax = axes[0][1]
    kinds = [
        ("first_read_calls", "first read"),
        ("refresh_unchanged_calls", "refresh, unchanged"),
        ("refresh_rotated_calls", "refresh, rotated"),
        ("miss32_calls", "32 threads miss"),
    ]
    api_names = [c.name for c in ALL_PEERS if "miss32_calls" in peers.get(c.name, {})]
    width = 0.8 / len(kinds)
    for k, (field, label) in enumerate(kinds):
        values = [sum(peers[n][field].values()) for n in api_names]
        ax.bar([i + k * width for i in range(len(api_names))], values, width, label=label)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(api_names))])
    short = {"aws_caching": "aws-secrets-\nmanager-caching", "powertools": "Powertools"}
    ax.set_xticklabels([short.get(n, n) for n in api_names], fontsize=7)
    ax.set_yscale("symlog")
    ax.set_title("API calls (lower is better)", fontsize=10)
    ax.legend(fontsize=8)

    mem_names = [c.name for c in ALL_PEERS if "bytes_per_secret" in peers.get(c.name, {})]
    bars(
        axes[1][0],
        mem_names,
        [peers[n]["bytes_per_secret"] for n in mem_names],
        "bytes retained per cached secret",
        False,
    )
    imp_names = [c.name for c in ALL_PEERS if "ready_ms" in peers.get(c.name, {})]
    bars(
        axes[1][1],
        imp_names,
        [peers[n]["ready_ms"] for n in imp_names],
        "ms to import and create a client (fresh interpreter)",
        False,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def replace_block(path: Path, marker: str, text: str) -> bool:
    """Rewrite what sits between ``<!-- marker:start -->`` and ``<!-- marker:end -->``."""
    if not path.exists():
        return False
    source = path.read_text()
    pattern = re.compile(rf"(<!-- {marker}:start -->\n).*?(<!-- {marker}:end -->)", flags=re.DOTALL)
    if not pattern.search(source):
        return False
    path.write_text(pattern.sub(lambda m: m.group(1) + text.rstrip() + "\n" + m.group(2), source))
    return True
