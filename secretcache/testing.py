"""Testing code that uses secretcache, without AWS: an in-memory client and pytest fixtures.

``FakeSecretsManager`` stands in for a boto3 ``secretsmanager`` client
(``SecretCache(client=FakeSecretsManager())``). It needs botocore only, for the
service model and the exception classes, so errors reach the cache exactly as
they do in production: ``fake.fail("AccessDeniedException")`` becomes the same
``SecretAccessDeniedError`` a real denial would.

The fixtures are opt-in. Enable them in your ``conftest.py``::

    pytest_plugins = ["secretcache.testing"]

then ask for ``fake_secrets`` (a new, empty ``FakeSecretsManager``),
``secret_cache`` (a ``SecretCache`` reading from it), or override
``secret_cache_config`` to configure that cache. They are defined only when
pytest is installed; importing this module does not need pytest.

(``PYTEST_DONT_REWRITE``: there are no asserts here for pytest to rewrite, and the
marker keeps pytest from warning when a conftest imports this module before
listing it in ``pytest_plugins``.)
"""

from __future__ import annotations

from ._fake.client import ROTATION_STEPS, FakeSecretsManager, Rotation

__all__ = ["ROTATION_STEPS", "FakeSecretsManager", "Rotation"]

try:
    from ._fake.fixtures import fake_secrets, secret_cache, secret_cache_config
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if exc.name != "pytest":
        raise
else:
    __all__ += ["fake_secrets", "secret_cache", "secret_cache_config"]
