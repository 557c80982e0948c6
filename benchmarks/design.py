"""The measurement behind the engine's eviction design (docs/design.md).

The engine keeps entries in a plain dict; a hit does ``dict.get`` and stores one
``last_used`` stamp. Exact LRU eviction then costs a scan of every stamp, but only
when a full cache inserts. The alternative, ``cachetools.LRUCache``, keeps recency
order itself: its ``__getitem__`` runs Python code on every hit. This compares the
two per hit, and prices one eviction scan, using the engine's own entry class.
"""

from __future__ import annotations

import statistics
import timeit
from typing import Any

MAX_SIZE = 1024


def _median_per_call(stmt: str, namespace: dict[str, Any], repeats: int, number: int) -> float:
    runs = timeit.Timer(stmt, globals=namespace).repeat(repeat=repeats, number=number)
    return statistics.median(runs) / number


def eviction_design(quick: bool) -> dict[str, float]:
    from cachetools import LRUCache

    from secretcache.cache import _Entry, _last_used

    keys = [(f"app/secret-{i:04d}", "AWSCURRENT") for i in range(MAX_SIZE)]
    entries = {key: _Entry(key, key[0], key[1], None) for key in keys}
    lru: LRUCache[tuple[str, str], _Entry] = LRUCache(maxsize=MAX_SIZE)
    for key, entry in entries.items():
        lru[key] = entry
    key = keys[MAX_SIZE // 2]
    namespace: dict[str, Any] = {
        "get": entries.get,
        "lru": lru,
        "key": key,
        "now": 12345.0,
        "values": entries.values,
        "stamp": _last_used,
    }
    repeats = 5 if quick else 9
    number = 200_000 if quick else 1_000_000
    plain = _median_per_call("e = get(key); e.last_used = now", namespace, repeats, number)
    cached = _median_per_call("e = lru[key]", namespace, repeats, number)
    scan_number = 200 if quick else 1000
    scan = _median_per_call("min(values(), key=stamp)", namespace, repeats, scan_number)
    return {
        "max_size": MAX_SIZE,
        "dict_hit_ns": plain * 1e9,
        "lru_hit_ns": cached * 1e9,
        "saved_per_hit_ns": (cached - plain) * 1e9,
        "eviction_scan_us": scan * 1e6,
        "hits_to_pay_for_one_scan": scan / (cached - plain) if cached > plain else float("inf"),
    }
