"""Story 1: a cached secret read in a loop while it is rotated.

What it shows: reads are served from memory (one API call for hundreds of
reads), a rotation becomes visible once the TTL has passed and costs exactly one
more call, and the previous version stays readable as ``AWSPREVIOUS``. The TTL
is one second so the story takes about as long; in production it is an hour.

Everything runs on moto's Secrets Manager, started in this process on
127.0.0.1 with throwaway credentials. No secret value is ever printed: versions
are shown by the first characters of their ids.
"""

from __future__ import annotations

import secrets
import time
import uuid
from typing import Any, TextIO

from secretcache import CacheConfig, SecretCache

from .local_aws import local_client, local_secrets_manager

__all__ = ["run"]

TTL = 1.0
READ_EVERY = 0.005  # seconds between reads of the simulated application
ROTATE_AFTER = 0.4  # seconds after the first read
GIVE_UP_AFTER = 5.0  # the new version must show up well before this


def run(out: TextIO) -> None:
    """Tell the story on ``out``; starts and stops its own moto server."""
    with local_secrets_manager() as endpoint:
        _story(local_client(endpoint), endpoint, out)


def _short(version_id: str | None) -> str:
    return (version_id or "?")[:8]


def _story(client: Any, endpoint: str, out: TextIO) -> None:
    say = _Teller(out)
    name = f"demo/payments-api-key-{uuid.uuid4().hex[:6]}"
    say.line("Story 1 -- a cached secret while it rotates")
    say.line(f"moto's Secrets Manager is listening on {endpoint} (in this process, no AWS account)")
    created = client.create_secret(Name=name, SecretString=secrets.token_urlsafe(24))
    first_version = created["VersionId"]
    say.line(f"created secret {name!r}: version {_short(first_version)}")

    changes: list[tuple[float, str | None, str]] = []
    config = CacheConfig(
        ttl=TTL,
        jitter=0.0,
        on_change=lambda _id, _stage, old, new: changes.append((time.monotonic(), old, new)),
    )
    cache = SecretCache(client, config=config)
    say.line(f"cache: ttl {TTL:g} s, no jitter (the default is 3600 s, minus up to 10 %)")
    say.line("")

    start = time.monotonic()
    cache.get_secret_string(name)
    say.at(
        0.0,
        f"first read: {cache.stats().api_calls} GetSecretValue, version {_short(first_version)}",
    )
    reads = 1
    while time.monotonic() - start < ROTATE_AFTER:
        cache.get_secret_string(name)
        reads += 1
        time.sleep(READ_EVERY)
    say.at(
        time.monotonic() - start,
        f"{reads} reads so far, all but the first from memory "
        f"(API calls: {cache.stats().api_calls})",
    )

    new_version = _rotate(client, name, first_version)
    rotated_at = time.monotonic()
    say.at(
        rotated_at - start,
        f"rotation: PutSecretValue as AWSPENDING, then AWSCURRENT moved to {_short(new_version)}",
    )

    reads_before = reads
    seen = None
    while time.monotonic() - rotated_at < GIVE_UP_AFTER:
        value = cache.get_secret(name)
        reads += 1
        if value.version_id == new_version:
            seen = time.monotonic()
            break
        time.sleep(READ_EVERY)
    if seen is None:
        say.line(f"the new version did not show up within {GIVE_UP_AFTER:g} s (unexpected)")
        raise RuntimeError("the cache never picked up the rotated secret")
    reads_after = reads - reads_before
    say.at(
        seen - start,
        f"the TTL ran out: that read fetched version {_short(new_version)} (1 GetSecretValue)",
    )
    if changes:
        _, old, new = changes[-1]
        say.line(f"          on_change reported {_short(old)} -> {_short(new)}")

    for _ in range(100):
        cache.get_secret_string(name)
        reads += 1
    previous = cache.get_secret(name, "AWSPREVIOUS")
    reads += 1
    stats = cache.stats()
    say.line("")
    say.line("summary")
    say.line(f"  reads served: {reads}")
    say.line(
        f"  API calls:    {stats.api_calls} GetSecretValue "
        "(the first read, the refresh once the TTL ran out, the AWSPREVIOUS read)"
    )
    say.line(f"  cache hits:   {stats.hits}")
    say.line(
        f"  new version seen {seen - rotated_at:.2f} s and {reads_after} reads after the rotation;"
        f" until then the cache served {_short(first_version)}"
    )
    say.line("  (that window is what a TTL trades for fewer calls; cache.refresh() closes it)")
    say.line(
        f"  the previous version is still readable as AWSPREVIOUS: {_short(previous.version_id)}"
    )
    client.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
    say.line("")


def _rotate(client: Any, name: str, current_version: str) -> str:
    """The two label moves a rotation function makes (createSecret, finishSecret)."""
    token = str(uuid.uuid4())
    client.put_secret_value(
        SecretId=name,
        ClientRequestToken=token,
        SecretString=secrets.token_urlsafe(24),
        VersionStages=["AWSPENDING"],
    )
    client.update_secret_version_stage(
        SecretId=name,
        VersionStage="AWSCURRENT",
        MoveToVersionId=token,
        RemoveFromVersionId=current_version,
    )
    return token


class _Teller:
    def __init__(self, out: TextIO) -> None:
        self._out = out

    def line(self, text: str) -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def at(self, seconds: float, text: str) -> None:
        self.line(f"{seconds:6.2f} s  {text}")
