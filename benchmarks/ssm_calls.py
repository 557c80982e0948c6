"""Parameter Store calls at a cold start: 32 threads each read the same 50 parameters.

Parameter Store's default read quota is 40 requests/s for a whole account and
region (``GetParameter``, ``GetParameters`` and ``GetParametersByPath`` together),
so what a cold start costs in calls decides whether a fleet starting at once is
throttled. Each approach gets a fresh ``ssm`` client aimed at moto's server, with
every attempt counted per operation by a botocore ``before-send`` hook (as for
Secrets Manager), and is read the way its documentation shows:

- secretcache ``ParameterCache.get`` per name (misses coalesce per parameter);
- secretcache with ``prefetch`` (``GetParameters``, 10 names per call), called by
  every thread before its reads, and called once at start-up before the threads;
- Powertools ``get_parameters_by_name`` (``GetParameters`` in batches of 10, a
  cache per provider), called by every thread;
- ssm-cache: an ``SSMParameter`` per name, and an ``SSMParameterGroup`` holding
  all 50 (a group refreshes its members together).

The 33 threads (32 readers and the clock) are released by one barrier. The peak
is the most attempts sent within any one second: what the quota would see.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .infra import REGION, CallCounter, admin_client, endpoint_env

THREADS = 32
PARAMETERS = 50
QUOTA_PER_SECOND = 40

APPROACHES: dict[str, str] = {
    "secretcache": "secretcache `ParameterCache.get`",
    "secretcache_prefetch": "secretcache, every thread `prefetch`es the 50 first",
    "secretcache_startup": "secretcache, one `prefetch` at start-up, then the threads read",
    "powertools": "Powertools `get_parameters_by_name`",
    "ssm_cache": "ssm-cache, an `SSMParameter` per name",
    "ssm_cache_group": "ssm-cache, one `SSMParameterGroup`",
}

Reader = Callable[[], dict[str, str]]
"""One thread's reads: every parameter's value, by name."""


def _client(endpoint: str) -> Any:
    import boto3

    return boto3.session.Session().client("ssm", region_name=REGION, endpoint_url=endpoint)


@contextmanager
def _approach(key: str, endpoint: str, names: list[str]) -> Iterator[tuple[Any, Reader, Any]]:
    """(client to count, one thread's reads, what to run once before the threads)."""
    if key.startswith("secretcache"):
        from secretcache import CacheConfig, ParameterCache

        with endpoint_env(endpoint):
            cache = ParameterCache(config=CacheConfig(ttl=300.0))
            client = cache.client  # created now, while the endpoint is set

        def read_all() -> dict[str, str]:
            if key == "secretcache_prefetch":
                cache.prefetch(*names)
            return {name: cache.get(name) for name in names}

        startup = (lambda: cache.prefetch(*names)) if key == "secretcache_startup" else None
        yield client, read_all, startup
    elif key == "powertools":
        from aws_lambda_powertools.utilities.parameters import SSMProvider, get_parameters_by_name
        from aws_lambda_powertools.utilities.parameters.ssm import DEFAULT_PROVIDERS

        client = _client(endpoint)
        saved = DEFAULT_PROVIDERS.get("ssm")
        # The module-level function uses the default provider: make it one with our client.
        DEFAULT_PROVIDERS["ssm"] = SSMProvider(boto3_client=client)
        wanted: dict[str, Any] = {name: {} for name in names}
        try:
            yield client, lambda: dict(get_parameters_by_name(wanted, max_age=300)), None
        finally:
            if saved is None:
                DEFAULT_PROVIDERS.pop("ssm", None)
            else:
                DEFAULT_PROVIDERS["ssm"] = saved
    elif key == "ssm_cache":
        from ssm_cache import SSMParameter

        client = _client(endpoint)
        # ssm-cache keeps its client on the class: a subclass keeps this one ours.
        param_class: Any = type("BenchSSMParameter", (SSMParameter,), {})
        param_class.set_ssm_client(client)
        params = [param_class(name, max_age=300) for name in names]
        yield client, lambda: {p.name: p.value for p in params}, None
    elif key == "ssm_cache_group":
        from ssm_cache import SSMParameter, SSMParameterGroup

        client = _client(endpoint)
        group_class: Any = type("BenchSSMParameterGroup", (SSMParameterGroup,), {})
        group_class.set_ssm_client(client)
        # A group's members are plain SSMParameter objects, which fetch through the
        # SSMParameter class's client: set it for this run (never a default client,
        # which would aim at AWS), and put back what was there.
        had_own = "_ssm_client" in SSMParameter.__dict__
        saved_client = SSMParameter.__dict__.get("_ssm_client")
        SSMParameter._ssm_client = client
        try:
            group = group_class(max_age=300)
            params = [group.parameter(name) for name in names]
            yield client, lambda: {p.name: p.value for p in params}, None
        finally:
            if had_own:
                SSMParameter._ssm_client = saved_client
            else:
                del SSMParameter._ssm_client
    else:  # pragma: no cover - APPROACHES lists every key
        raise KeyError(key)


def _run(key: str, endpoint: str, names: list[str], values: dict[str, str]) -> dict[str, Any]:
    with _approach(key, endpoint, names) as (client, read_all, startup):
        calls = CallCounter()
        calls.attach(client)
        barrier = threading.Barrier(THREADS + 1)
        outcomes: list[bool] = []
        lock = threading.Lock()

        def reader() -> None:
            barrier.wait()
            try:
                correct = read_all() == values
            except Exception:  # counted as wrong; the counts still stand
                correct = False
            with lock:
                outcomes.append(correct)

        workers = [threading.Thread(target=reader) for _ in range(THREADS)]
        for worker in workers:
            worker.start()
        start = time.perf_counter()
        if startup is not None:
            startup()
        barrier.wait()
        for worker in workers:
            worker.join()
        seconds = time.perf_counter() - start
        peak = calls.peak_per_second()
        counts = calls.take()
    return {
        "label": APPROACHES[key],
        "calls": counts,
        "total": sum(counts.values()),
        "peak_per_second": peak,
        "seconds": seconds,
        "over_quota": peak > QUOTA_PER_SECOND,
        "all_correct": len(outcomes) == THREADS and all(outcomes),
    }


def ssm_cold_start(endpoint: str) -> dict[str, Any]:
    """Calls per approach when 32 threads read 50 uncached parameters at once."""
    admin = admin_client(endpoint, "ssm")
    names = [f"/bench/ssm/param-{i:02d}" for i in range(PARAMETERS)]
    values = {}
    for name in names:
        values[name] = uuid.uuid4().hex
        admin.put_parameter(Name=name, Value=values[name], Type="String")
    return {
        "threads": THREADS,
        "parameters": PARAMETERS,
        "quota_per_second": QUOTA_PER_SECOND,
        "order": list(APPROACHES),  # the JSON file sorts its keys; the tables do not
        "approaches": {key: _run(key, endpoint, names, values) for key in APPROACHES},
    }
