"""The ``secretcache`` command: read one secret as a deployment would, or run the demo.

``get`` exists to answer "can this machine, with these credentials, read that
secret?" -- so it uses boto3's normal resolution (profile, role, region,
``AWS_ENDPOINT_URL``) exactly as the library does, and its failures are one line
naming the secret and the reason, with no traceback and never any value.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

__all__ = ["main"]

PROG = "secretcache"

EXIT_OK = 0
EXIT_ERROR = 1  # anything else that went wrong (demo failure, value unprintable, unexpected)
EXIT_USAGE = 2  # argparse's own convention
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_DECODE = 5
EXIT_UNAVAILABLE = 6
EXIT_CONFIG = 7  # no region, unknown profile, no credentials, bad endpoint URL

_DESCRIPTION = "Cache AWS Secrets Manager secrets in-process, rotation included."

_EXIT_CODES = """\
exit status of get: 0 printed, 1 cannot print the value on this output (or another error),
2 bad usage, 3 not found (secret, stage or version), 4 access denied,
5 not a JSON object / no such key, 6 service unavailable,
7 configuration (no region, unknown profile, no credentials, bad endpoint URL).
"""

_EXAMPLES = """\
examples:
  secretcache get prod/api-key                     can this machine read it?
  secretcache get prod/db --json-key username      one field of a JSON secret
  secretcache get prod/db --stage AWSPENDING       the version a rotation is testing
  secretcache get prod/db --region eu-west-1 --profile ops   another region and profile
  secretcache get test/key --endpoint-url http://127.0.0.1:5000   a local endpoint
  secretcache demo                                 watch the cache follow a rotation

"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EXAMPLES + _EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")

    get = commands.add_parser(
        "get",
        help="print one secret",
        description=(
            "Print one secret from AWS Secrets Manager using boto3's normal configuration "
            "(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL, instance or task role...). "
            "String secrets are printed as they are, binary secrets base64-encoded. "
            "It makes one GetSecretValue call, so it needs only secretsmanager:GetSecretValue "
            "(and kms:Decrypt for a customer-managed key)."
        ),
        epilog=_EXIT_CODES,
    )
    get.add_argument("secret_id", metavar="SECRET_ID", help="secret name or ARN")
    which = get.add_mutually_exclusive_group()
    which.add_argument(
        "--stage", metavar="S", help="staging label to read (default AWSCURRENT)", default=None
    )
    which.add_argument("--version-id", metavar="V", help="one immutable version to read")
    get.add_argument(
        "--json-key",
        metavar="K",
        help="the secret is a JSON object: print only this key's value",
    )
    get.add_argument("--region", metavar="R", help="AWS region (default: boto3's resolution)")
    get.add_argument("--profile", metavar="P", help="named profile of the AWS config files")
    get.add_argument(
        "--endpoint-url", metavar="URL", help="Secrets Manager endpoint (a VPC or local one)"
    )

    commands.add_parser(
        "demo",
        help="run the rotation demonstration on a local moto server",
        description=(
            "Start moto's Secrets Manager on 127.0.0.1, rotate secrets under a running "
            "cache and tell what happened. Needs moto's server: pip install 'secretcache[demo]'."
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m secretcache`` and the ``secretcache`` script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "get":
        where = _Where(args.region, args.profile, args.endpoint_url)
        return _get(args.secret_id, args.stage, args.version_id, args.json_key, where, sys.stdout)
    if args.command == "demo":
        return _demo()
    parser.print_help(sys.stderr)
    return EXIT_USAGE


class _Where:
    """Which account, region and endpoint to read from (``None``: boto3 decides)."""

    def __init__(self, region: str | None, profile: str | None, endpoint_url: str | None) -> None:
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url


class _ConfigurationError(Exception):
    """The client cannot be set up; the message says what to configure."""


def _client(where: _Where) -> Any:
    """A Secrets Manager client as boto3 resolves it, or a ``_ConfigurationError``.

    Made here rather than lazily by the cache, so that a configuration mistake is
    told apart from an outage (exit 7, not 6) before any request.
    """
    import boto3
    from botocore import exceptions as bce

    try:
        session = boto3.session.Session(profile_name=where.profile, region_name=where.region)
        client = session.client("secretsmanager", endpoint_url=where.endpoint_url)
        credentials = session.get_credentials()
    except bce.ProfileNotFound as exc:
        raise _ConfigurationError(f"{exc} (check --profile / AWS_PROFILE)") from None
    except bce.NoRegionError:
        raise _ConfigurationError(
            "no AWS region is configured: pass --region, set AWS_REGION, "
            "or give the profile a region"
        ) from None
    except ValueError as exc:  # botocore's "Invalid endpoint: ..."
        raise _ConfigurationError(f"{_safe_reason(exc)} (check --endpoint-url)") from None
    except (bce.BotoCoreError, OSError) as exc:  # credential providers, config files
        raise _ConfigurationError(f"the AWS configuration cannot be used: {exc}") from None
    if credentials is None:
        raise _ConfigurationError(
            "no AWS credentials were found (environment, --profile / AWS_PROFILE, "
            "SSO login, or an instance or task role)"
        )
    return client


def _get(
    secret_id: str,
    stage: str | None,
    version_id: str | None,
    json_key: str | None,
    where: _Where,
    out: TextIO,
) -> int:
    from .cache import SecretCache
    from .errors import (
        SecretAccessDeniedError,
        SecretCacheError,
        SecretConfigurationError,
        SecretDecodeError,
        SecretNotFoundError,
    )

    target = f"{secret_id!r}" + (
        f" (version {version_id})" if version_id else f" (stage {stage or 'AWSCURRENT'})"
    )
    try:
        client = _client(where)
        cache = SecretCache(client)
        output = _output(cache, secret_id, stage, version_id, json_key, out)
    except _ConfigurationError as exc:
        return _fail(EXIT_CONFIG, f"cannot read secret {target}: {exc}")
    except SecretCacheError as exc:
        if isinstance(exc, SecretConfigurationError) or _configuration_cause(exc):
            return _fail(EXIT_CONFIG, f"{exc} (a configuration problem, not an outage)")
        if isinstance(exc, SecretNotFoundError):
            return _fail(EXIT_NOT_FOUND, str(exc))
        if isinstance(exc, SecretAccessDeniedError):
            return _fail(EXIT_DENIED, str(exc))
        if isinstance(exc, SecretDecodeError):
            return _fail(EXIT_DECODE, str(exc))
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except (TypeError, ValueError) as exc:  # bad id or label, rejected before any call
        return _fail(EXIT_USAGE, f"cannot read secret {target}: {_safe_reason(exc)}")
    except Exception as exc:
        # Unexpected: say what kind of failure it was, never its text (it could
        # quote something it should not).
        return _fail(EXIT_ERROR, f"reading secret {target} failed: {type(exc).__name__}")
    if isinstance(output, str):  # a JSON key the document does not have
        return _fail(EXIT_DECODE, f"secret {target} has no JSON key {output!r}")
    if output is None:
        encoding = getattr(out, "encoding", None) or "utf-8"
        return _fail(
            EXIT_ERROR,
            f"cannot print secret {target}: its value has characters the output's "
            f"encoding ({encoding}) cannot represent; set PYTHONIOENCODING=utf-8",
        )
    return _write(output, out, target)


def _output(
    cache: Any,
    secret_id: str,
    stage: str | None,
    version_id: str | None,
    json_key: str | None,
    out: TextIO,
) -> bytes | str | None:
    """What to print, encoded for ``out``; a str names a missing JSON key; None: unprintable.

    Never raises once the value is in hand: an encoding error would carry the
    value (``UnicodeEncodeError.object``) and this frame holds it.
    """
    value = cache.get_secret(secret_id, stage, version_id=version_id)
    if json_key is None:
        if value.secret_binary is not None:
            return base64.b64encode(value.secret_binary) + b"\n"
        return _encode(value.secret_string or "", out)
    document = cache.get_secret_json(secret_id, stage, version_id=version_id)
    if json_key not in document:
        return json_key
    field = document[json_key]
    return _encode(field if isinstance(field, str) else json.dumps(field, default=dict), out)


def _encode(text: str, out: TextIO) -> bytes | None:
    """``text`` and a newline in ``out``'s encoding, or None if it cannot be represented."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    errors = getattr(out, "errors", None) or "strict"
    try:
        return (text + "\n").encode(encoding, errors)
    except (UnicodeError, LookupError):
        return None  # the error (and the value it quotes) dies here


def _write(data: bytes, out: TextIO, target: str) -> int:
    try:
        buffer = getattr(out, "buffer", None)
        if buffer is not None:
            out.flush()
            buffer.write(data)
            buffer.flush()
        else:  # a text-only stream (tests): it takes str
            out.write(data.decode(getattr(out, "encoding", None) or "utf-8"))
            out.flush()
    except OSError as exc:  # a closed pipe, a full disk: no value in the reason
        return _fail(EXIT_ERROR, f"cannot print secret {target}: {type(exc).__name__}")
    return EXIT_OK


def _configuration_cause(exc: BaseException) -> bool:
    """Whether a failed read was caused by the client's setup, not by the service."""
    from botocore import exceptions as bce

    kinds = (
        bce.NoCredentialsError,
        bce.PartialCredentialsError,
        bce.NoRegionError,
        bce.ProfileNotFound,
        bce.CredentialRetrievalError,
        bce.TokenRetrievalError,
        bce.SSOError,
        bce.UnauthorizedSSOTokenError,
    )
    return isinstance(exc.__cause__, kinds)


def _safe_reason(exc: BaseException) -> str:
    """Argument errors raised before any fetch describe ids and labels only."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _demo() -> int:
    try:
        from . import _demo as demo
    except ImportError as exc:  # pragma: no cover - the package ships with the demo
        return _fail(EXIT_ERROR, f"the demo is not available: {exc}")
    try:
        return demo.run()
    except ModuleNotFoundError as exc:
        return _fail(
            EXIT_ERROR,
            f"the demo needs {exc.name!r}: pip install 'secretcache[demo]'",
        )
    except KeyboardInterrupt:
        return _fail(EXIT_ERROR, "demo interrupted")
    except Exception as exc:
        return _fail(EXIT_ERROR, f"demo failed: {type(exc).__name__}: {exc}")


def _fail(code: int, message: str) -> int:
    one_line = " ".join(message.split())
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return code


def _version() -> str:
    from . import __version__

    return __version__
