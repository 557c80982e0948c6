"""secretcache: AWS Secrets Manager secrets cached in-process, rotation included.

Importing this package does not import boto3; the client is created on the
first fetch.
"""

from __future__ import annotations

from .aio import AsyncSecretCache
from .cache import SecretCache, configure_default, default_cache
from .config import CacheConfig
from .decorators import inject_secret_json, inject_secret_string, refresh_on_error
from .errors import (
    SecretAccessDeniedError,
    SecretCacheError,
    SecretConfigurationError,
    SecretDecodeError,
    SecretNotFoundError,
    SecretUnavailableError,
)
from .parameters import ParameterCache
from .stats import CacheStats
from .value import SecretValue

__all__ = [
    "AsyncSecretCache",
    "CacheConfig",
    "CacheStats",
    "ParameterCache",
    "SecretAccessDeniedError",
    "SecretCache",
    "SecretCacheError",
    "SecretConfigurationError",
    "SecretDecodeError",
    "SecretNotFoundError",
    "SecretUnavailableError",
    "SecretValue",
    "configure_default",
    "default_cache",
    "inject_secret_json",
    "inject_secret_string",
    "refresh_on_error",
]

__version__ = "0.1.0"
