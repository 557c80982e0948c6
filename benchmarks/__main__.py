"""``python -m benchmarks [--quick]``: every figure, every peer, one run.

Prints a markdown table, writes ``results.json`` and ``benchmarks.png`` to
``docs/benchmarks/``, and rewrites the numbers blocks of ``docs/benchmarks.md``
and ``docs/design.md`` so the published page always matches the chart beside it.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import measure, metrics_hit, report
from .async_figures import async_figures
from .design import eviction_design
from .infra import MotoProcess, use_fake_aws_env
from .peers import ALL_PEERS, API_PEERS, CACHING_PEERS, DictPeer
from .rotation import db_rotation
from .silent import silent_endpoint
from .ssm_calls import ssm_cold_start

ROOT = Path(__file__).resolve().parent.parent


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _merge(into: dict[str, dict[str, Any]], found: dict[str, dict[str, Any]]) -> None:
    for key, values in found.items():
        into.setdefault(key, {}).update(values)


def run(quick: bool, output: Path, update_docs: bool) -> dict[str, Any]:
    use_fake_aws_env()
    # The outage measurements make the cache log a warning per failed refresh, as it
    # should; the table reports them, so keep them off the terminal.
    logging.getLogger("secretcache").setLevel(logging.ERROR)
    settings = measure.Settings.for_mode(quick)
    command = "python -m benchmarks" + (" --quick" if quick else "")
    results: dict[str, dict[str, Any]] = {}
    timings: dict[str, float] = {}

    def phase(name: str, action: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        print(f"… {name}", file=sys.stderr, flush=True)
        value = action()
        timings[name] = round(time.perf_counter() - start, 2)
        return value

    server = MotoProcess()
    try:
        secrets = measure.Secrets(server.endpoint)
        _merge(results, phase("hit path", lambda: measure.hits(ALL_PEERS, secrets, settings)))
        _merge(
            results,
            phase("hit, metrics off and on", lambda: metrics_hit.measure_hits(secrets, settings)),
        )
        _merge(results, phase("32 concurrent misses", lambda: measure.concurrent_misses(secrets)))
        _merge(
            results, phase("TTL and forced refresh", lambda: measure.refreshes(secrets, settings))
        )
        silent_results, async_silent = phase(
            "silent endpoint past TTL",
            lambda: silent_endpoint(secrets, server.port, settings),
        )
        _merge(results, silent_results)
        asyncio_figures = phase("asyncio", lambda: async_figures(secrets, server.port, settings))
        asyncio_figures["silent"] = async_silent
        _merge(
            results,
            phase(
                "retained memory",
                lambda: measure.retained_memory((*CACHING_PEERS, DictPeer), secrets, settings),
            ),
        )
        design = phase("eviction design", lambda: eviction_design(quick))
        _merge(results, phase("import time", lambda: measure.import_times(settings)))
        # The database rotations and the Parameter Store cold start count failures
        # and calls (no figure of theirs is a sub-second duration), so they run
        # while the outage readers sit blocked on sockets.
        outage_results, (rotation, ssm) = phase(
            "outages, database rotations, Parameter Store cold start",
            lambda: measure.outages(
                secrets,
                server.port,
                settings,
                while_waiting=lambda: (
                    db_rotation(server.endpoint, quick),
                    ssm_cold_start(server.endpoint),
                ),
            ),
        )
        _merge(results, outage_results)
    finally:
        server.stop()

    data: dict[str, Any] = {
        "meta": {
            "command": command,
            "mode": "quick" if quick else "full",
            "date": datetime.date.today().isoformat(),
            "cpu": _cpu_model(),
            "cores": os.cpu_count(),
            "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}",
            "phase_seconds": timings,
        },
        "peers": {cls.name: cls.label for cls in ALL_PEERS},
        "api_peers": [cls.name for cls in API_PEERS],
        "results": results,
        "design": design,
        "db_rotation": rotation,
        "async": asyncio_figures,
        "ssm": ssm,
    }
    table = report.markdown_table(data)
    async_table = report.async_table(data)
    ssm_table = report.ssm_table(data)
    print(table)
    print()
    print(async_table)
    print()
    print(ssm_table)
    print()
    print(report.design_table(design))
    print()
    print(f"machine: {report.machine_line(data['meta'])}")
    print(f"db rotations: {rotation['status']} ({rotation['reason']})")
    report.write_json(data, output / "results.json")
    report.write_chart(data, output / "benchmarks.png")
    if update_docs:
        block = "\n".join(
            [
                f"Measured on: {report.machine_line(data['meta'])}.",
                "",
                f"Command: `{command}`",
                "",
                table,
            ]
        )
        report.replace_block(ROOT / "docs" / "benchmarks.md", "results", block)
        report.replace_block(ROOT / "docs" / "benchmarks.md", "async", async_table)
        report.replace_block(ROOT / "docs" / "benchmarks.md", "ssm", ssm_table)
        report.replace_block(ROOT / "docs" / "design.md", "eviction", report.design_table(design))
    total = sum(timings.values())
    print(f"wrote {output / 'results.json'} and {output / 'benchmarks.png'} in {total:.0f} s")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats, shorter windows (about two minutes)"
    )
    parser.add_argument(
        "--output", type=Path, default=ROOT / "docs" / "benchmarks", help="JSON and chart here"
    )
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite the numbers in docs/*.md"
    )
    args = parser.parse_args(argv)
    run(args.quick, args.output, not args.no_docs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
