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
from typing import TextIO

__all__ = ["main"]

PROG = "secretcache"

EXIT_OK = 0
EXIT_ERROR = 1  # anything else that went wrong (demo failure, unexpected error)
EXIT_USAGE = 2  # argparse's own convention
EXIT_NOT_FOUND = 3
EXIT_DENIED = 4
EXIT_DECODE = 5
EXIT_UNAVAILABLE = 6

_DESCRIPTION = "Cache AWS Secrets Manager secrets in-process, rotation included."

_EXIT_CODES = """\
exit status of get: 0 printed, 3 not found (secret, stage or version), 4 access denied,
5 not a JSON object / no such key, 6 service unavailable, 2 bad usage.
"""

_EXAMPLES = """\
examples:
  secretcache get prod/api-key                     can this machine read it?
  secretcache get prod/db --json-key username      one field of a JSON secret
  secretcache get prod/db --stage AWSPENDING       the version a rotation is testing
  AWS_ENDPOINT_URL=http://127.0.0.1:5000 secretcache get test/key   a local endpoint
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

    commands.add_parser(
        "demo",
        help="run the rotation demonstration on a local moto server",
        description=(
            "Start moto's Secrets Manager on 127.0.0.1, rotate secrets under a running "
            "cache and tell what happened. Needs the dev extra (moto[server])."
        ),
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m secretcache`` and the ``secretcache`` script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "get":
        return _get(args.secret_id, args.stage, args.version_id, args.json_key, sys.stdout)
    if args.command == "demo":
        return _demo()
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _get(
    secret_id: str,
    stage: str | None,
    version_id: str | None,
    json_key: str | None,
    out: TextIO,
) -> int:
    from .cache import SecretCache
    from .errors import (
        SecretAccessDeniedError,
        SecretCacheError,
        SecretDecodeError,
        SecretNotFoundError,
    )

    target = f"{secret_id!r}" + (
        f" (version {version_id})" if version_id else f" (stage {stage or 'AWSCURRENT'})"
    )
    try:
        cache = SecretCache()
        value = cache.get_secret(secret_id, stage, version_id=version_id)
        if json_key is None:
            if value.secret_binary is not None:
                text = base64.b64encode(value.secret_binary).decode("ascii")
            else:
                text = value.secret_string or ""
        else:
            document = cache.get_secret_json(secret_id, stage, version_id=version_id)
            if json_key not in document:
                return _fail(EXIT_DECODE, f"secret {target} has no JSON key {json_key!r}")
            field = document[json_key]
            text = field if isinstance(field, str) else json.dumps(field)
    except SecretNotFoundError as exc:
        return _fail(EXIT_NOT_FOUND, str(exc))
    except SecretAccessDeniedError as exc:
        return _fail(EXIT_DENIED, str(exc))
    except SecretDecodeError as exc:
        return _fail(EXIT_DECODE, str(exc))
    except SecretCacheError as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc))
    except (TypeError, ValueError) as exc:  # bad id or label, rejected before any call
        return _fail(EXIT_USAGE, f"cannot read secret {target}: {_safe_reason(exc)}")
    except Exception as exc:
        # Unexpected: say what kind of failure it was, never its text (it could
        # quote something it should not).
        return _fail(EXIT_ERROR, f"reading secret {target} failed: {type(exc).__name__}")
    out.write(text)
    out.write("\n")
    out.flush()
    return EXIT_OK


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
            f"the demo needs {exc.name!r}: pip install 'secretcache[dev]' (moto[server])",
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
