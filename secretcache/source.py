"""Moved to :mod:`secretcache.sources`; kept so older imports keep working."""

from __future__ import annotations

from .sources.calls import CONNECT_TIMEOUT, READ_TIMEOUT, error_code, is_transient, translate
from .sources.secretsmanager import BATCH_LIMIT, SecretsManagerSource

__all__ = [
    "BATCH_LIMIT",
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "SecretsManagerSource",
    "error_code",
    "is_transient",
    "translate",
]
