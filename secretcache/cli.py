"""The ``secretcache`` command: read one secret as a deployment would, start a
program with secrets in its environment, or run the demo.

``get`` exists to answer "can this machine, with these credentials, read that
secret?" -- so it uses boto3's normal resolution (profile, role, region,
``AWS_ENDPOINT_URL``) exactly as the library does, and its failures are one line
naming the secret and the reason, with no traceback and never any value.

``exec`` serves programs that cannot import a Python library (a JVM service, a
shell entrypoint): it resolves every secret first, so a deployment mistake stops
the container before the program starts, then *replaces* itself with the
program, so the exit status and the signals a supervisor sends are the
program's own and no wrapper process sits in between.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TextIO

if TYPE_CHECKING:
    from .cache import SecretCache
    from .errors import SecretCacheError
    from .parameters import ParameterCache

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
EXIT_CANNOT_RUN = 126  # exec: the command exists but cannot be run (a shell's convention)
EXIT_COMMAND_NOT_FOUND = 127  # exec: no such command (a shell's convention)

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
  secretcache exec --env DB_PASSWORD=prod/db#password -- java -jar app.jar
                                                   start a program with a secret in its environment
  secretcache demo                                 watch the cache follow a rotation

"""

_EXEC_DESCRIPTION = """\
Read secrets from AWS Secrets Manager (and parameters from Parameter Store) into
environment variables, then replace this process with COMMAND: its exit status and
the signals sent to it are its own, and no wrapper process stays behind.
Everything is read before COMMAND starts (BatchGetSecretValue, 20 secrets per call;
GetParameters, 10 parameters per call). If anything cannot be read, COMMAND does
not start and each failure is named on stderr. Values are never printed.

Environment variables do not rotate: COMMAND keeps the values it started with
until it is restarted. A long-running program that must keep working across a
rotation without a restart should read through the library instead (the database
adapters, the decorators), or be restarted when the secret rotates.

A JSON key's value is set as it is when it is a string, otherwise as compact JSON
text (42, true, {"a":1}). A binary secret is refused, and so is a value holding a
NUL character, which no environment variable can carry.
"""

_EXEC_EPILOG = """\
examples:
  secretcache exec --env DB_PASSWORD=prod/db#password -- java -jar app.jar
  secretcache exec --env API_KEY=prod/api-key --env DB_HOST=ssm:/app/db/host -- ./server
  secretcache exec --stage AWSPENDING --env DB_PASSWORD=prod/db#password -- ./check-login

IAM: secretsmanager:GetSecretValue on each secret and secretsmanager:BatchGetSecretValue
(Resource "*"; without it, one GetSecretValue per secret); ssm:GetParameters and
ssm:GetParameter for ssm: entries; kms:Decrypt for a customer-managed key.

exit status: COMMAND's own once it has started. Before that: 1 a value cannot be
put into the environment (a NUL character) or another error, 2 bad usage (no --,
an invalid or repeated NAME), 3 not found (secret, stage, parameter),
4 access denied, 5 a binary secret, not a JSON object or no such key,
6 service unavailable, 7 configuration (no region, unknown profile, no credentials,
bad endpoint URL), 126 COMMAND cannot be run, 127 COMMAND not found.
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

    run = commands.add_parser(
        "exec",
        help="run a command with secrets in its environment",
        usage=f"{PROG} exec --env NAME=SECRET_ID[#JSON_KEY] [--env ...] [options] "
        "-- COMMAND [ARGS...]",
        description=_EXEC_DESCRIPTION,
        epilog=_EXEC_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=SECRET_ID[#JSON_KEY]",
        help="set NAME to a secret, or to one key of a JSON secret; NAME=ssm:/path/param "
        "reads a Parameter Store parameter (ssm:/path/param:3 a version, "
        "ssm:/path/param:label a label); repeat for each variable",
    )
    run.add_argument(
        "--stage",
        metavar="S",
        default=None,
        help="staging label of every Secrets Manager secret (default AWSCURRENT); "
        "parameters are not affected",
    )
    run.add_argument("--region", metavar="R", help="AWS region (default: boto3's resolution)")
    run.add_argument("--profile", metavar="P", help="named profile of the AWS config files")
    run.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="endpoint for both Secrets Manager and Parameter Store (a local emulator); "
        "per service: AWS_ENDPOINT_URL_SECRETS_MANAGER, AWS_ENDPOINT_URL_SSM",
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
    arguments = list(sys.argv[1:] if argv is None else argv)
    options, command = _split_command(arguments)
    if command is None and _subcommand(arguments) == "exec":
        # No ``--``: parse what is ours and say where the command goes, rather
        # than reporting the command's words as unknown options.
        args, _ = parser.parse_known_args(options)
    else:
        args = parser.parse_args(options)
    if args.command == "get":
        where = _Where(args.region, args.profile, args.endpoint_url)
        return _get(args.secret_id, args.stage, args.version_id, args.json_key, where, sys.stdout)
    if args.command == "exec":
        where = _Where(args.region, args.profile, args.endpoint_url)
        return _exec(args.env, args.stage, where, command)
    if args.command == "demo":
        return _demo()
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _split_command(arguments: list[str]) -> tuple[list[str], list[str] | None]:
    """``exec``'s own options, and the command after its ``--`` (None: no ``--``).

    Split before argparse sees it, so the command's arguments (``-jar``, ``--port``)
    are never taken for ours, and a forgotten ``--`` is an error rather than a guess.
    """
    if _subcommand(arguments) != "exec":
        return arguments, None
    try:
        separator = arguments.index("--")
    except ValueError:
        return arguments, None
    return arguments[:separator], arguments[separator + 1 :]


def _subcommand(arguments: list[str]) -> str | None:
    """The first word that is not an option (the top-level options take no value)."""
    return next((word for word in arguments if not word.startswith("-")), None)


class _Where:
    """Which account, region and endpoint to read from (``None``: boto3 decides)."""

    def __init__(self, region: str | None, profile: str | None, endpoint_url: str | None) -> None:
        self.region = region
        self.profile = profile
        self.endpoint_url = endpoint_url


class _ConfigurationError(Exception):
    """The client cannot be set up; the message says what to configure."""


def _client(where: _Where, service: Literal["secretsmanager", "ssm"] = "secretsmanager") -> Any:
    """A Secrets Manager (or ``ssm``) client as boto3 resolves it, or a ``_ConfigurationError``.

    Made here rather than lazily by the cache, so that a configuration mistake is
    told apart from an outage (exit 7, not 6) before any request.
    """
    import boto3
    from botocore import exceptions as bce

    try:
        session = boto3.session.Session(profile_name=where.profile, region_name=where.region)
        client = session.client(service, endpoint_url=where.endpoint_url)
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
    from .errors import SecretCacheError

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
        return _fail(*_failure_of(exc))
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


def _failure_of(exc: SecretCacheError) -> tuple[int, str]:
    """The exit status and message of a failed read; ``get`` and ``exec`` share them."""
    from .errors import (
        SecretAccessDeniedError,
        SecretConfigurationError,
        SecretDecodeError,
        SecretNotFoundError,
    )

    message = str(exc)
    if isinstance(exc, SecretConfigurationError) or _configuration_cause(exc):
        note = "(a configuration problem, not an outage)"
        return EXIT_CONFIG, message if note in message else f"{message} {note}"
    if isinstance(exc, SecretNotFoundError):
        return EXIT_NOT_FOUND, message
    if isinstance(exc, SecretAccessDeniedError):
        return EXIT_DENIED, message
    if isinstance(exc, SecretDecodeError):
        return EXIT_DECODE, message
    return EXIT_UNAVAILABLE, message


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


# ------------------------------------------------------------------------ exec

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
"""A name every shell and runtime accepts (POSIX's portable environment names)."""

_SSM_PREFIX = "ssm:"


@dataclass(frozen=True)
class _Binding:
    """One ``--env NAME=REFERENCE``: the variable, where its value lives, which key.

    Secret names, ARNs and parameter names cannot contain ``#``, so the first one
    starts the JSON key (which may itself contain ``#``).
    """

    variable: str
    parameter: bool  # Parameter Store (``ssm:``) rather than Secrets Manager
    name: str  # secret id, or parameter name with its ``:version`` / ``:label``
    json_key: str | None

    def target(self, stage: str | None) -> str:
        if self.parameter:
            return f"parameter {self.name!r}"
        return f"secret {self.name!r} (stage {stage or 'AWSCURRENT'})"


def _binding(spec: str) -> _Binding | str:
    """Parse one ``--env``; a str is what is wrong with it (ids and names only)."""
    variable, equals, reference = spec.partition("=")
    if not equals:
        return f"--env {spec!r}: expected NAME=SECRET_ID[#JSON_KEY]"
    if not _ENV_NAME.fullmatch(variable):
        return (
            f"--env {spec!r}: {variable!r} is not a valid environment variable name "
            "(letters, digits and _, not starting with a digit)"
        )
    parameter = reference.startswith(_SSM_PREFIX)
    if parameter:
        reference = reference[len(_SSM_PREFIX) :]
    name, hash_sign, json_key = reference.partition("#")
    if not name.strip():
        what = "parameter name" if parameter else "secret id"
        return f"--env {spec!r}: no {what} after {variable}="
    if hash_sign and not json_key:
        return f"--env {spec!r}: no JSON key after #"
    return _Binding(variable, parameter, name, json_key if hash_sign else None)


def _exec(specs: list[str], stage: str | None, where: _Where, command: list[str] | None) -> int:
    if command is None:
        return _fail(
            EXIT_USAGE,
            "exec: put the command after --, as in: "
            f"{PROG} exec --env NAME=SECRET_ID -- COMMAND [ARGS...]",
        )
    if not command or not command[0]:
        return _fail(EXIT_USAGE, "exec: no command after --")
    if not specs:
        return _fail(EXIT_USAGE, "exec: nothing to set: give at least one --env NAME=SECRET_ID")
    bindings: list[_Binding] = []
    for spec in specs:
        parsed = _binding(spec)
        if isinstance(parsed, str):
            return _fail(EXIT_USAGE, f"exec: {parsed}")
        if any(known.variable == parsed.variable for known in bindings):
            return _fail(EXIT_USAGE, f"exec: {parsed.variable} is given twice (--env)")
        bindings.append(parsed)
    try:
        values = _resolve_all(bindings, stage, where)
    except KeyboardInterrupt:
        return _fail(130, "exec: interrupted before the command started")
    except Exception as exc:
        # Unexpected: its kind only, never its text (it could quote a value).
        return _fail(EXIT_ERROR, f"exec: reading the secrets failed: {type(exc).__name__}")
    if isinstance(values, int):
        return values
    return _replace_process(command, values)


def _resolve_all(
    bindings: list[_Binding], stage: str | None, where: _Where
) -> dict[str, str] | int:
    """Every variable's value, or the exit status once each failure has been reported."""
    from .cache import SecretCache
    from .config import CacheConfig
    from .errors import SecretCacheError
    from .parameters import ParameterCache

    secret_ids = list(dict.fromkeys(b.name for b in bindings if not b.parameter))
    parameter_names = list(dict.fromkeys(b.name for b in bindings if b.parameter))
    try:
        # Another default stage makes prefetch read one by one: the batch call
        # serves AWSCURRENT only.
        config = None if stage is None else CacheConfig(default_version_stage=stage)
    except (TypeError, ValueError):
        return _fail(EXIT_USAGE, "exec: --stage must be a non-empty staging label")
    try:
        secrets = SecretCache(_client(where), config=config) if secret_ids else None
        parameters = ParameterCache(_client(where, "ssm")) if parameter_names else None
    except _ConfigurationError as exc:
        first = bindings[0]
        more = f" and {len(bindings) - 1} more" if len(bindings) > 1 else ""
        return _fail(
            EXIT_CONFIG,
            f"exec: cannot read {first.target(stage)} for {first.variable}{more}: {exc}",
        )
    # Batched warm-up. A failure here is remembered by the cache (no second call
    # within its back-off) and reported below, per variable, with the others.
    try:
        if secrets is not None:
            secrets.prefetch(*secret_ids)
    except (SecretCacheError, TypeError, ValueError):
        pass
    try:
        if parameters is not None:
            parameters.prefetch(*parameter_names)
    except (SecretCacheError, TypeError, ValueError):
        pass
    values: dict[str, str] = {}
    failures: list[tuple[int, str]] = []
    for binding in bindings:
        outcome = _lookup(binding, stage, secrets, parameters)
        if isinstance(outcome, tuple):
            failures.append(outcome)
        else:
            values[binding.variable] = outcome
        del outcome
    if failures:
        for code, message in failures:
            _fail(code, message)
        return failures[0][0]
    return values


def _lookup(
    binding: _Binding,
    stage: str | None,
    secrets: SecretCache | None,
    parameters: ParameterCache | None,
) -> str | tuple[int, str]:
    """One variable's value, or (exit status, message naming the variable and the id)."""
    from .errors import SecretCacheError

    prefix = f"exec: {binding.variable}:"
    try:
        text = _read_text(binding, stage, secrets, parameters)
    except SecretCacheError as exc:
        code, message = _failure_of(exc)
        return code, f"{prefix} {message}"
    except (TypeError, ValueError) as exc:  # a bad id or name, rejected before any call
        return EXIT_USAGE, f"{prefix} cannot read {binding.target(stage)}: {_safe_reason(exc)}"
    if isinstance(text, tuple):
        return text[0], f"{prefix} {text[1]}"
    problem = _environment_problem(text)
    if problem is not None:
        del text
        where = "" if binding.json_key is None else f", JSON key {binding.json_key!r},"
        return EXIT_ERROR, f"{prefix} {binding.target(stage)}{where} {problem}"
    return text


def _read_text(
    binding: _Binding,
    stage: str | None,
    secrets: SecretCache | None,
    parameters: ParameterCache | None,
) -> str | tuple[int, str]:
    """The text to set (from the warmed caches), or why there is none; never raises after
    the value is in hand, so no traceback frame holds it."""
    document: Mapping[str, Any]
    if parameters is not None and binding.parameter:
        if binding.json_key is None:
            return parameters.get(binding.name)
        document = parameters.get_json(binding.name)
    elif secrets is not None and not binding.parameter:
        if binding.json_key is None:
            value = secrets.get_secret(binding.name)
            if value.secret_binary is not None:
                return EXIT_DECODE, (
                    f"{binding.target(stage)} is binary: an environment variable holds text "
                    "(store it base64-encoded as a string, or read it with the library)"
                )
            return value.secret_string or ""
        document = secrets.get_secret_json(binding.name)
    else:  # pragma: no cover - _resolve_all makes the cache each binding needs
        raise AssertionError("no cache for this binding")
    key = binding.json_key
    if key not in document:
        return EXIT_DECODE, f"{binding.target(stage)} has no JSON key {key!r}"
    field = document[key]
    if isinstance(field, str):
        return field
    text = _compact_json(field)
    if text is None:
        return EXIT_DECODE, (
            f"{binding.target(stage)}: JSON key {key!r} cannot be written back as JSON text"
        )
    return text


def _compact_json(field: Any) -> str | None:
    """``42``, ``true``, ``{"a":1}``: the key's value as compact JSON text, or None.

    The parsed document is read-only all the way down: arrays are tuples (which
    ``json`` writes as arrays) and objects are read-only mappings, which ``default``
    turns back into dicts one level at a time as the encoder reaches them.
    """
    try:
        return json.dumps(field, separators=(",", ":"), ensure_ascii=False, default=_thaw)
    except (TypeError, ValueError, RecursionError):
        return None  # the error (whose frames saw the value) dies here


def _thaw(node: object) -> dict[str, Any]:
    if isinstance(node, Mapping):
        return dict(node)
    raise TypeError(f"{type(node).__name__} is not JSON")


def _environment_problem(text: str) -> str | None:
    """Why ``text`` cannot be an environment variable's value, or None.

    Checked before the exec: ``execve`` would refuse a NUL (``ValueError``), and
    an unpaired surrogate fails to encode with a ``UnicodeEncodeError`` that quotes
    the whole value in its ``object``.
    """
    if "\x00" in text:
        return "holds a NUL character, which no environment variable can carry"
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return "holds characters the environment cannot encode (an unpaired surrogate)"
    return None


def _replace_process(command: list[str], values: dict[str, str]) -> int:
    """Become ``command`` with ``values`` added to this environment; returns only on failure."""
    environment = dict(os.environ)
    environment.update(values)
    del values
    _restore_default_signals()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # exec discards whatever is still buffered
    program = command[0]
    if os.name == "nt":  # pragma: no cover - no exec that keeps the exit status on Windows
        import subprocess

        return subprocess.call(command, env=environment)
    try:
        os.execvpe(program, command, environment)
    except (FileNotFoundError, NotADirectoryError):
        return _fail(EXIT_COMMAND_NOT_FOUND, f"exec: {program!r}: command not found")
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        return _fail(EXIT_CANNOT_RUN, f"exec: cannot run {program!r}: {reason}")


def _restore_default_signals() -> None:
    """Give the command the signal dispositions it would get from a shell.

    Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across
    ``execve``: the command would then get write errors instead of ending quietly
    when the reader of its output goes away (``subprocess`` undoes the same).
    """
    for name in ("SIGPIPE", "SIGXFZ", "SIGXFSZ"):
        number = getattr(signal, name, None)
        if number is not None and signal.getsignal(number) == signal.SIG_IGN:
            signal.signal(number, signal.SIG_DFL)


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
