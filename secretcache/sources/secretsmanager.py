"""Secrets Manager as a source: ``GetSecretValue`` per fetch, ``BatchGetSecretValue`` to warm.

Each fetch is exactly one ``GetSecretValue`` that names its stage or version
explicitly (never relying on the service default, never ``DescribeSecret``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from ..value import SecretValue
from .calls import (
    Caller,
    CallerSource,
    UnreadableResponseError,
    error_code,
    is_answer,
    translate,
    unreadable,
)

__all__ = ["BATCH_LIMIT", "SecretsManagerSource"]

log = logging.getLogger("secretcache")

BATCH_LIMIT = 20
"""``BatchGetSecretValue`` accepts at most this many ids per call."""


class SecretsManagerSource(CallerSource):
    """Fetches secrets through one ``secretsmanager`` client."""

    batch_limit = BATCH_LIMIT
    batch_stage = "AWSCURRENT"  # the only stage BatchGetSecretValue returns

    def __init__(
        self,
        client: Any | None,
        *,
        retry_attempts: int,
        count_call: Callable[[], None],
        region: str | None = None,
    ) -> None:
        self.caller = Caller(
            client, retry_attempts=retry_attempts, count_call=count_call, region=region
        )

    def get(self, secret_id: str, version_stage: str | None, version_id: str | None) -> SecretValue:
        """One ``GetSecretValue`` for one stage or version; typed errors only.

        A reply that cannot be read (a 200 whose body is malformed) becomes
        ``SecretUnavailableError`` whose cause is a clean stand-in: the parser's
        own error and its traceback's frames hold the raw body, i.e. the secret.
        """
        params: dict[str, Any] = {"SecretId": secret_id}
        if version_id is not None:
            params["VersionId"] = version_id
        else:
            params["VersionStage"] = version_stage
        tally = [0]
        try:
            return self._read_value(secret_id, tally, params)
        except Exception as exc:
            if not is_answer(exc):
                raise  # already a clean typed error (see _read_value)
            raise translate(exc, secret_id, version_stage, version_id, attempts=tally[0]) from exc

    def _read_value(self, secret_id: str, tally: list[int], params: dict[str, Any]) -> SecretValue:
        """The call and the parsing of its reply; an unreadable reply leaves no trace here."""
        failure: Exception | None = None
        response: dict[str, Any] | None = None
        try:
            response = self.caller.call("get_secret_value", tally, **params)
            if "SecretString" not in response and "SecretBinary" not in response:
                raise UnreadableResponseError(
                    "the reply holds neither SecretString nor SecretBinary"
                )
            return SecretValue.from_response(response, requested_id=secret_id)
        except Exception as exc:
            if is_answer(exc):
                raise
            failure = unreadable(
                exc, secret_id, params.get("VersionStage"), params.get("VersionId")
            )
            del exc
        response = None  # the reply, i.e. the secret: not kept in this frame's locals
        raise failure

    def batch_get(self, secret_ids: Sequence[str]) -> dict[str, SecretValue]:
        """``BatchGetSecretValue`` for up to 20 ids; returns what it could match.

        Ids missing from the answer (errors, partial ARNs, a version that no longer
        carries ``AWSCURRENT``) are simply absent: the caller fetches them one by
        one, which also yields properly typed errors. An empty result means the
        batch call is unavailable or denied and everything should be fetched singly.
        """
        if not secret_ids:
            return {}
        found: dict[str, SecretValue] = {}
        wanted = list(secret_ids)
        params: dict[str, Any] = {"SecretIdList": wanted}
        while True:
            try:
                response = self.caller.call("batch_get_secret_value", [0], retry=False, **params)
            except Exception as exc:
                # Throttled, denied, unavailable or unreadable: BatchGetSecretValue has a
                # quota of its own (100/s per account), so the batch is not retried; the
                # caller reads these ids one by one with GetSecretValue instead.
                log.debug(
                    "BatchGetSecretValue unavailable (%s); fetching one by one",
                    error_code(exc) or type(exc).__name__,
                )
                return found
            for item in response.get("SecretValues") or ():
                if "AWSCURRENT" not in (item.get("VersionStages") or ()):
                    continue
                try:
                    value = SecretValue.from_response(item)
                except Exception:  # unreadable item: fetched singly, with a typed error
                    continue
                for requested in wanted:
                    if requested in found:
                        continue
                    if requested in (value.name, value.arn):
                        found[requested] = value
            token = response.get("NextToken")
            if not token:
                return found
            params["NextToken"] = token
