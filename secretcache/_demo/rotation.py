"""A rotation driver that follows Secrets Manager's four steps, for the demo and the tests.

A real rotation is a Lambda function called four times with one
``ClientRequestToken``; this class performs the same four steps in-process,
against any endpoint (moto's server here), with the database change supplied
as a callable:

1. ``create_secret`` -- ``PutSecretValue`` of the new credential, labelled ``AWSPENDING``;
2. ``set_secret`` -- the database starts accepting it (``set_password``);
3. ``test_secret`` -- a login with it (``test_login``);
4. ``finish_secret`` -- ``UpdateSecretVersionStage`` moves ``AWSCURRENT`` to it (the
   service relabels the old version ``AWSPREVIOUS``); the ``AWSPENDING`` label is then
   removed, as the service does once a rotation succeeds.

``pause`` holds the rotation between steps 2 and 4 -- the window in which the
old password is already rejected (single user) while ``AWSCURRENT`` still
names it, and in which naive clients fail.
"""

from __future__ import annotations

import enum
import json
import secrets
import string
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["PASSWORD_SPECIALS", "RotationRecord", "Rotator", "Strategy", "new_password"]

PASSWORD_SPECIALS = "%:?#&+;@/"
"""Characters every generated password contains: each one breaks naive URL/DSN building."""

CLONE_SUFFIX = "_clone"


class Strategy(enum.Enum):
    """The two rotation strategies AWS documents for database secrets."""

    SINGLE_USER = "single-user"
    """One user; its password changes. The old password stops working at setSecret."""

    ALTERNATING_USERS = "alternating-users"
    """Two users; each rotation changes the *other* one, so the current login keeps working."""


def new_password(length: int = 32) -> str:
    """A random password that contains every character of ``PASSWORD_SPECIALS``."""
    if length < len(PASSWORD_SPECIALS) + 4:
        raise ValueError(f"length must be at least {len(PASSWORD_SPECIALS) + 4}")
    alphabet = string.ascii_letters + string.digits
    chars = list(PASSWORD_SPECIALS)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def other_user(username: str) -> str:
    """The alternating partner of a user: ``app`` <-> ``app_clone``."""
    if username.endswith(CLONE_SUFFIX):
        return username[: -len(CLONE_SUFFIX)]
    return username + CLONE_SUFFIX


@dataclass
class RotationRecord:
    """What one rotation did, with monotonic timestamps of each step (no secret values)."""

    token: str
    old_version_id: str
    username: str
    started: float
    steps: dict[str, float] = field(default_factory=dict)

    @property
    def new_version_id(self) -> str:
        return self.token  # PutSecretValue uses the request token as the version id


class Rotator:
    """Rotates one database secret, step by step or all at once.

    ``set_password(username, password)`` changes the database (setSecret);
    ``test_login(secret_dict)`` logs in with the pending credential (testSecret).
    The client is the rotation's own: its calls are not the application's.
    """

    def __init__(
        self,
        client: Any,
        secret_id: str,
        *,
        strategy: Strategy,
        set_password: Callable[[str, str], None],
        test_login: Callable[[Mapping[str, Any]], None] | None = None,
        pause: float = 0.0,
        remove_pending: bool = True,
    ) -> None:
        self.client = client
        self.secret_id = secret_id
        self.strategy = strategy
        self.set_password = set_password
        self.test_login = test_login
        self.pause = pause
        self.remove_pending = remove_pending
        self.history: list[RotationRecord] = []
        self._pending: dict[str, Any] | None = None
        self._record: RotationRecord | None = None

    def __repr__(self) -> str:
        return f"<Rotator {self.secret_id!r} {self.strategy.value} rotations={len(self.history)}>"

    # ------------------------------------------------------------ the 4 steps

    def create_secret(self) -> RotationRecord:
        """Step 1: store the next credential as ``AWSPENDING``."""
        current = self.client.get_secret_value(SecretId=self.secret_id, VersionStage="AWSCURRENT")
        old: dict[str, Any] = json.loads(current["SecretString"])
        pending = dict(old)
        pending["password"] = new_password()
        if self.strategy is Strategy.ALTERNATING_USERS:
            pending["username"] = other_user(str(old["username"]))
        token = str(uuid.uuid4())  # 36 characters; the service wants at least 32
        self.client.put_secret_value(
            SecretId=self.secret_id,
            ClientRequestToken=token,
            SecretString=json.dumps(pending),
            VersionStages=["AWSPENDING"],
        )
        record = RotationRecord(
            token=token,
            old_version_id=current["VersionId"],
            username=str(pending["username"]),
            started=time.monotonic(),
        )
        record.steps["createSecret"] = time.monotonic()
        self._pending, self._record = pending, record
        return record

    def set_secret(self) -> None:
        """Step 2: the database accepts the pending credential from now on."""
        pending, record = self._require()
        self.set_password(str(pending["username"]), str(pending["password"]))
        record.steps["setSecret"] = time.monotonic()

    def test_secret(self) -> None:
        """Step 3: prove the pending credential logs in."""
        pending, record = self._require()
        if self.test_login is not None:
            self.test_login(pending)
        record.steps["testSecret"] = time.monotonic()

    def finish_secret(self) -> RotationRecord:
        """Step 4: ``AWSCURRENT`` moves to the new version; ``AWSPENDING`` is removed."""
        _, record = self._require()
        self.client.update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage="AWSCURRENT",
            MoveToVersionId=record.token,
            RemoveFromVersionId=record.old_version_id,
        )
        if self.remove_pending:
            self.client.update_secret_version_stage(
                SecretId=self.secret_id,
                VersionStage="AWSPENDING",
                RemoveFromVersionId=record.token,
            )
        record.steps["finishSecret"] = time.monotonic()
        self.history.append(record)
        self._pending = self._record = None
        return record

    def rotate(self) -> RotationRecord:
        """All four steps, holding ``pause`` seconds between setSecret and finishSecret."""
        self.create_secret()
        self.set_secret()
        self.test_secret()
        if self.pause > 0:
            time.sleep(self.pause)
        return self.finish_secret()

    def rotate_repeatedly(
        self, count: int, *, every: float = 0.0, stop: threading.Event | None = None
    ) -> list[RotationRecord]:
        """``count`` rotations, ``every`` seconds apart (measured between rotations)."""
        done: list[RotationRecord] = []
        for index in range(count):
            if stop is not None and stop.is_set():
                break
            if index and every > 0:
                if stop is not None:
                    if stop.wait(every):
                        break
                else:
                    time.sleep(every)
            done.append(self.rotate())
        return done

    def _require(self) -> tuple[dict[str, Any], RotationRecord]:
        if self._pending is None or self._record is None:
            raise RuntimeError("create_secret() must run first")
        return self._pending, self._record
