"""Turning results into the table, the JSON file, the chart, and the docs' numbers."""

from __future__ import annotations

import json
import math
import re
import textwrap
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


def _capped(found: dict[str, Any]) -> str:
    return ("≥ " if found.get("capped") else "") + _seconds(found["seconds"])


def _silent_first(d: dict[str, Any]) -> str:
    found = d["silent_first"]
    return f"{found['outcome']}, {_capped(found)}"


def _silent_worst(d: dict[str, Any]) -> str:
    worst = _capped(d["silent_worst"])
    if not d.get("silent_reads"):
        return f"still blocked, {worst}"
    return f"{worst} (median {_seconds(d['silent_median_seconds'])})"


def _attempts(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    return f"{total} attempt" + ("" if total == 1 else "s")


def _silent_reads(d: dict[str, Any]) -> str:
    reads = d["silent_reads"]
    outcomes = d.get("silent_outcomes") or {}
    if len(outcomes) == 1:
        answered = f"{reads}, all: {next(iter(outcomes))}"
    elif outcomes:
        answered = f"{reads}: " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items()))
    else:
        answered = "none"
    return f"{answered}; {_attempts(d['silent_calls'])}"


def _metrics(d: dict[str, Any], cls: Any) -> str:
    if cls.name != "secretcache":
        return "—"
    return (
        f"{d['hit_ns_metrics_off']:,.0f} → {d['hit_ns_metrics_on']:,.0f} ns "
        f"(x{d['metrics_hit_ratio']:.2f})"
    )


def _window(peers: dict[str, Any]) -> str:
    window = next((d["silent_window"] for d in peers.values() if "silent_window" in d), None)
    return "the window" if window is None else f"{window:.0f} s"


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
        ("hit, metrics off → on (OpenTelemetry SDK)", each(_metrics)),
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
            "silent endpoint past TTL: first read",
            each(lambda d, c: _silent_first(d)),
        ),
        (
            f"silent endpoint past TTL: worst read, a read every 30 ms for {_window(peers)}",
            each(lambda d, c: _silent_worst(d)),
        ),
        (
            f"silent endpoint past TTL: reads answered, API attempts in {_window(peers)}",
            each(lambda d, c: _silent_reads(d)),
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


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _row(*cells: str) -> str:
    return "| " + " | ".join(cells) + " |"


def async_table(results: dict[str, Any]) -> str:
    """The asyncio door's figures, against its own sync door and the dict floor."""
    a = results.get("async")
    if not a:
        return "Not measured in this run."
    sync, floor = a["sync_hit_ns"], a["dict_hit_ns"]
    calls = sum(a["awaiters_calls"].values())
    lines = [
        _row("figure", "measured", "compared", "target", "met"),
        "|---|---|---|---|---|",
        _row(
            "hit, `await cache.get_secret_string(id)` in a loop",
            f"{a['async_hit_ns']:,.0f} ns",
            f"x{a['async_over_sync']:.2f} the sync hit, x{a['async_hit_ns'] / floor:,.1f} the dict",
            "≤ x2 the sync hit",
            _met(a["async_over_sync"] <= 2),
        ),
        _row(
            "hit, the coroutine driven by one `send(None)`, no event loop",
            f"{a['async_send_hit_ns']:,.0f} ns",
            f"x{a['async_send_over_sync']:.2f} the sync hit (creating the coroutine "
            "and raising its `StopIteration` included)",
            "finishes in one step",
            "yes",  # hits() checks it and stops the run otherwise
        ),
        _row(
            "sync hit, `SecretCache.get_secret_string`, same phase",
            f"{sync:,.0f} ns",
            f"x{sync / floor:,.1f} the dict",
            "",
            "",
        ),
        _row("dict floor, same phase", f"{floor:,.0f} ns", "x1.0", "", ""),
        _row(
            f"{a['awaiters']} awaiters of one cold entry (`asyncio.gather`)",
            f"{_calls(a['awaiters_calls'])} API call{'' if calls == 1 else 's'}, "
            f"{_seconds(a['awaiters_seconds'])}",
            ("all" if a["awaiters_all_correct"] else "**not all**") + " got the value",
            "1 call",
            _met(calls == 1 and a["awaiters_all_correct"]),
        ),
        _row(
            f"event-loop lag (largest gap between ticks, a tick every "
            f"{a['lag_tick_s'] * 1e3:.0f} ms): idle loop",
            _seconds(a["lag_idle_s"]),
            "baseline",
            "",
            "",
        ),
        _row(
            f"event-loop lag: a cold read through a proxy answering "
            f"{a['lag_slow_answer_s']:.1f} s late",
            _seconds(a["lag_slow_s"]),
            f"the read took {_seconds(a['lag_slow_read_s'])}",
            "< 50 ms",
            _met(a["lag_slow_s"] < 0.05),
        ),
        _row(
            f"event-loop lag: a cold read of a silent endpoint, watched "
            f"{a['lag_silent_watch_s']:.0f} s, then cancelled",
            _seconds(a["lag_silent_s"]),
            "",
            "< 50 ms",
            _met(a["lag_silent_s"] < 0.05),
        ),
    ]
    silent = a.get("silent")
    if silent:
        worst = silent["silent_worst"]
        lines.append(
            _row(
                f"silent endpoint past TTL, `await`ed every 30 ms for "
                f"{silent['silent_window']:.0f} s: first / worst read",
                f"{_capped(silent['silent_first'])} / {_capped(worst)} (median "
                f"{_seconds(silent['silent_median_seconds'] or 0.0)})",
                f"{silent['silent_reads']} reads answered; {_attempts(silent['silent_calls'])}",
                "≤ 150 ms",
                _met(not worst["capped"] and worst["seconds"] <= 0.15),
            )
        )
    return "\n".join(lines)


def _ssm_order(ssm: dict[str, Any]) -> list[str]:
    found = ssm["approaches"]
    return [k for k in ssm.get("order", ()) if k in found] + [
        k for k in found if k not in ssm.get("order", ())
    ]


def ssm_table(results: dict[str, Any]) -> str:
    """Parameter Store calls at a cold start, per approach, against the 40 reads/s quota."""
    ssm = results.get("ssm")
    if not ssm:
        return "Not measured in this run."
    quota = ssm["quota_per_second"]
    lines = [
        f"{ssm['threads']} threads each read the same {ssm['parameters']} uncached parameters, "
        "released at once:",
        "",
        f"| approach | API calls | most in any 1 s | wall time | over {quota} reads/s? |",
        "|---|---|---|---|---|",
    ]
    for key in _ssm_order(ssm):
        found = ssm["approaches"][key]
        calls = " + ".join(f"{op} {n}" for op, n in sorted(found["calls"].items())) or "0"
        wrong = "" if found["all_correct"] else " (**wrong values**)"
        lines.append(
            f"| {found['label']}{wrong} | {calls} | {found['peak_per_second']} "
            f"| {_seconds(found['seconds'])} | {'yes' if found['over_quota'] else 'no'} |"
        )
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
    fig, axes = plt.subplots(3, 2, figsize=(12, 12.5))
    fig.suptitle(f"secretcache and its peers — {machine_line(results['meta'])}", fontsize=9)

    def bars(
        ax: Any,
        names: list[str],
        values: list[float],
        title: str,
        log: bool,
        labels: list[str] | None = None,
        notes: list[str] | None = None,
    ) -> None:
        if labels is None:
            labels = [next(c.label for c in ALL_PEERS if c.name == n) for n in names]
        colours = ["#2b7bba" if n.startswith("secretcache") else "#9aa5b1" for n in names]
        ax.barh(labels, values, color=colours)
        ax.invert_yaxis()
        ax.set_title(title, fontsize=10)
        if log:
            ax.set_xscale("log")
        for y, value in enumerate(values):
            note = notes[y] if notes else f"{value:,.3g}"
            ax.annotate(
                note,
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
    silent_names = [c.name for c in ALL_PEERS if "silent_worst" in peers.get(c.name, {})]
    if silent_names:
        worst = [peers[n]["silent_worst"] for n in silent_names]
        bars(
            axes[2][0],
            silent_names,
            [w["seconds"] for w in worst],
            f"silent endpoint past TTL: worst read in {_window(peers)}, s (log scale)",
            True,
            notes=[_capped(w) for w in worst],
        )
    else:
        axes[2][0].set_visible(False)
    ssm = (results.get("ssm") or {}).get("approaches") or {}
    if ssm:
        keys = _ssm_order(results["ssm"])
        bars(
            axes[2][1],
            keys,
            [max(ssm[k]["total"], 0.5) for k in keys],
            f"SSM calls, {results['ssm']['threads']} threads x "
            f"{results['ssm']['parameters']} names, cold (log)",
            True,
            labels=[_chart_label(ssm[k]["label"]) for k in keys],
            notes=[str(ssm[k]["total"]) for k in keys],
        )
    else:
        axes[2][1].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _chart_label(label: str) -> str:
    """A table label, short enough for a chart axis."""
    return textwrap.fill(label.replace("`", ""), width=32)


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
