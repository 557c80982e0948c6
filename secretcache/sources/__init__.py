"""Where values come from: one small protocol, several implementations.

The engine (:mod:`secretcache.cache`) drives a *source*: anything with

- ``get(key_id, stage, version_id) -> SecretValue`` -- one fetch, typed errors only;
- ``batch_get(ids) -> dict[id, SecretValue]`` -- warm several at once (what it
  cannot serve is simply absent and is then fetched singly);
- ``batch_limit`` / ``batch_stage`` -- how many ids a batch takes, and the one
  stage it can serve;
- ``client`` and ``after_fork()``.

:class:`~.secretsmanager.SecretsManagerSource` and
:class:`~.parameterstore.ParameterStoreSource` talk to AWS through a shared
:class:`~.calls.Caller` (retries, counting, error mapping);
:class:`~.failover.FailoverSource` is a source made of sources.
"""

from __future__ import annotations

from typing import Any, Protocol

from ..value import SecretValue

__all__ = ["Source"]


class Source(Protocol):
    batch_limit: int
    batch_stage: str

    def get(self, key_id: str, stage: str | None, version_id: str | None) -> SecretValue: ...

    def batch_get(self, ids: Any) -> dict[str, SecretValue]: ...

    @property
    def client(self) -> Any: ...

    def after_fork(self) -> None: ...
