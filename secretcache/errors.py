"""Typed errors raised by secretcache.

Every error names the secret and the stage (or version id) that was asked for,
keeps the underlying botocore/JSON error as ``__cause__``, and never carries any
part of a secret value: messages are built only from ids, labels and AWS error
codes.
"""

from __future__ import annotations

__all__ = [
    "SecretAccessDeniedError",
    "SecretCacheError",
    "SecretConfigurationError",
    "SecretDecodeError",
    "SecretNotFoundError",
    "SecretUnavailableError",
    "describe_target",
]


_KEY_KINDS = {"$LATEST": "", "$PATH": " (path)", "$PATH_RECURSIVE": " (path, recursive)"}
"""How the Parameter Store sentinels of the stage slot read in a message."""


def describe_target(secret_id: str, version_stage: str | None, version_id: str | None) -> str:
    """Human-readable name of one cache entry, e.g. ``'prod/db' (stage AWSCURRENT)``."""
    if version_id is not None:
        return f"{secret_id!r} (version {version_id})"
    kind = _KEY_KINDS.get(version_stage or "")
    if kind is not None:
        return f"{secret_id!r}{kind}"
    return f"{secret_id!r} (stage {version_stage})"


class SecretCacheError(Exception):
    """Base class of every error secretcache raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        secret_id: str | None = None,
        version_stage: str | None = None,
        version_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.secret_id = secret_id
        self.version_stage = version_stage
        self.version_id = version_id

    def __str__(self) -> str:
        # KeyError (a base of SecretNotFoundError) would otherwise repr() the message.
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild,
            (type(self), self.message, self.secret_id, self.version_stage, self.version_id),
        )

    def copy(self) -> SecretCacheError:
        """A fresh instance with the same message, target and cause, for a remembered failure.

        Each caller gets its own exception object (raising one object from many
        threads would interleave their tracebacks), with the original cause.
        """
        clone = type(self)(
            self.message,
            secret_id=self.secret_id,
            version_stage=self.version_stage,
            version_id=self.version_id,
        )
        clone.__cause__ = self.__cause__
        clone.__suppress_context__ = True
        return clone


def _rebuild(
    cls: type[SecretCacheError],
    message: str,
    secret_id: str | None,
    version_stage: str | None,
    version_id: str | None,
) -> SecretCacheError:
    return cls(message, secret_id=secret_id, version_stage=version_stage, version_id=version_id)


class SecretNotFoundError(SecretCacheError, KeyError):
    """The secret, the stage label or the version id does not exist (or is being deleted)."""


class SecretAccessDeniedError(SecretCacheError):
    """IAM or KMS refused the read (``AccessDeniedException``, ``DecryptionFailure``)."""


class SecretDecodeError(SecretCacheError, ValueError):
    """The value is not what was asked for: not a JSON object, or string vs binary."""


class SecretUnavailableError(SecretCacheError):
    """The service could not be reached or kept failing, and no usable cached value exists."""


class SecretConfigurationError(SecretUnavailableError):
    """The client could not even be set up: no region, an unknown profile.

    A subclass of ``SecretUnavailableError`` (no value can be read either way), so
    existing handlers keep working, but told apart so a configuration mistake
    does not read like an outage.
    """
