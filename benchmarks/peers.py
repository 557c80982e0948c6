"""One small adapter per library, so every measurement drives them all the same way.

Each adapter builds the library the way its documentation shows, with the client
the library creates by itself (its own timeouts and retry policy are part of what
is measured), aimed at the benchmark's endpoint, and counts every HTTP attempt
that client sends.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from .infra import REGION, CallCounter, endpoint_env

SSM_PREFIX = "/aws/reference/secretsmanager/"


class Peer:
    """What every measured approach offers: read, a hit to time, and a forced refresh."""

    name: ClassVar[str]
    label: ClassVar[str]
    caches: ClassVar[bool] = True  # keeps values and refreshes them after a TTL
    floor: ClassVar[bool] = False  # the bare dict every hit time is compared with

    def __init__(self, endpoint: str, *, ttl: int, max_size: int = 4096) -> None:
        self.ttl = ttl
        self.calls = CallCounter()
        with endpoint_env(endpoint):
            client = self._build(max_size)
        self.calls.attach(client)

    def _build(self, max_size: int) -> Any:
        """Create the library's object(s); return the botocore client it will use."""
        raise NotImplementedError

    def read(self, secret_id: str) -> str:
        raise NotImplementedError

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        """A ``timeit`` statement (and its globals) that performs one read as users write it."""
        raise NotImplementedError

    def force_refresh(self, secret_id: str) -> str:
        """The library's way to say "fetch now", followed by a read."""
        raise NotImplementedError


class SecretCachePeer(Peer):
    name = "secretcache"
    label = "secretcache"

    def _build(self, max_size: int) -> Any:
        from secretcache import CacheConfig, SecretCache

        self.cache = SecretCache(config=CacheConfig(ttl=float(self.ttl), max_size=max_size))
        return self.cache.client  # created now, while the endpoint is set

    def read(self, secret_id: str) -> str:
        return self.cache.get_secret_string(secret_id)

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        return "read(key)", {"read": self.cache.get_secret_string, "key": secret_id}

    def force_refresh(self, secret_id: str) -> str:
        value = self.cache.refresh(secret_id).secret_string
        assert value is not None, "string secret expected"
        return value


class AwsCachingPeer(Peer):
    name = "aws_caching"
    label = "aws-secretsmanager-caching 1.2.0"

    def _build(self, max_size: int) -> Any:
        from aws_secretsmanager_caching import SecretCache, SecretCacheConfig

        config = SecretCacheConfig(secret_refresh_interval=self.ttl, max_cache_size=max_size)
        self.cache = SecretCache(config=config)
        return self.cache._client

    def read(self, secret_id: str) -> str:
        value: str = self.cache.get_secret_string(secret_id)
        return value

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        return "read(key)", {"read": self.cache.get_secret_string, "key": secret_id}

    def force_refresh(self, secret_id: str) -> str:
        self.cache.refresh_secret_now(secret_id)
        return self.read(secret_id)


class PowertoolsPeer(Peer):
    """Powertools' ``SecretsProvider``.

    Its fetches name no stage, and moto (unlike AWS) answers a stage-less read with
    the old version once ``UpdateSecretVersionStage`` has moved ``AWSCURRENT``; the
    adapter's fetches therefore pass ``VersionStage="AWSCURRENT"`` (what AWS does
    anyway). Hits are timed as users write them; both forms share one cache entry.
    """

    name = "powertools"
    label = "Powertools SecretsProvider"

    def _build(self, max_size: int) -> Any:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        self.provider = SecretsProvider()
        return self.provider.client

    def read(self, secret_id: str) -> str:
        value: str = self.provider.get(secret_id, max_age=self.ttl, VersionStage="AWSCURRENT")
        return value

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        self.read(secret_id)
        return "read(key, max_age=ttl)", {
            "read": self.provider.get,
            "key": secret_id,
            "ttl": self.ttl,
        }

    def force_refresh(self, secret_id: str) -> str:
        value: str = self.provider.get(
            secret_id, max_age=self.ttl, force_fetch=True, VersionStage="AWSCURRENT"
        )
        return value


class SsmCachePeer(Peer):
    """ssm-cache reads secrets through SSM ``GetParameters`` on the reference path.

    Its client is a class attribute; a subclass per adapter keeps each adapter's
    client (and call counter) its own. moto answers a reference read with the bare
    secret name where AWS returns the full ``/aws/reference/secretsmanager/...``
    path, and ssm-cache rejects the bare name, so an ``after-call`` hook restores
    the name AWS would send; it changes no count and no value.
    """

    name = "ssm_cache"
    label = "ssm-cache 3.0"

    def _build(self, max_size: int) -> Any:
        import boto3
        from ssm_cache import SecretsManagerParameter

        self._param_class: Any = type("BenchParameter", (SecretsManagerParameter,), {})
        client = boto3.session.Session().client("ssm", region_name=REGION)
        client.meta.events.register("after-call.ssm.GetParameters", _aws_reference_names)
        self._param_class.set_ssm_client(client)
        self._params: dict[str, Any] = {}
        self._lock = threading.Lock()
        return client

    def param(self, secret_id: str) -> Any:
        """The parameter object an application would keep at module level."""
        param = self._params.get(secret_id)
        if param is None:
            with self._lock:
                param = self._params.get(secret_id)
                if param is None:
                    param = self._param_class(secret_id, max_age=self.ttl)
                    self._params[secret_id] = param
        return param

    def read(self, secret_id: str) -> str:
        value: str = self.param(secret_id).value
        return value

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        return "param.value", {"param": self.param(secret_id)}

    def force_refresh(self, secret_id: str) -> str:
        param = self.param(secret_id)
        param.refresh()
        value: str = param.value
        return value


def _aws_reference_names(parsed: dict[str, Any] | None = None, **_: Any) -> None:
    for item in (parsed or {}).get("Parameters", ()):
        if "SourceResult" in item and not item["Name"].startswith(SSM_PREFIX):
            item["Name"] = SSM_PREFIX + item["Name"]


class Boto3Peer(Peer):
    """No cache at all: every read is a ``GetSecretValue``."""

    name = "boto3"
    label = "boto3, no cache"
    caches = False

    def _build(self, max_size: int) -> Any:
        import boto3

        self.client = boto3.session.Session().client("secretsmanager")
        return self.client

    def read(self, secret_id: str) -> str:
        response = self.client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
        value: str = response["SecretString"]
        return value

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        return "read(key)", {"read": self.read, "key": secret_id}

    def force_refresh(self, secret_id: str) -> str:
        return self.read(secret_id)


class DictPeer(Peer):
    """The floor: a hand-filled dict, never refreshed. A hit is ``dict.__getitem__``."""

    name = "dict"
    label = "dict (floor)"
    caches = False
    floor = True

    def _build(self, max_size: int) -> Any:
        import boto3

        self.client = boto3.session.Session().client("secretsmanager")
        self.store: dict[str, str] = {}
        return self.client

    def read(self, secret_id: str) -> str:
        try:
            return self.store[secret_id]
        except KeyError:
            response = self.client.get_secret_value(SecretId=secret_id, VersionStage="AWSCURRENT")
            value: str = response["SecretString"]
            self.store[secret_id] = value
            return value

    def hit(self, secret_id: str) -> tuple[str, dict[str, Any]]:
        self.read(secret_id)
        return "read(key)", {"read": self.store.__getitem__, "key": secret_id}

    def force_refresh(self, secret_id: str) -> str:
        self.store.pop(secret_id, None)
        return self.read(secret_id)


CACHING_PEERS: tuple[type[Peer], ...] = (
    SecretCachePeer,
    AwsCachingPeer,
    PowertoolsPeer,
    SsmCachePeer,
)
API_PEERS: tuple[type[Peer], ...] = (*CACHING_PEERS, Boto3Peer)
"""The approaches whose API calls are counted (the dict floor makes none worth counting)."""
ALL_PEERS: tuple[type[Peer], ...] = (*API_PEERS, DictPeer)
