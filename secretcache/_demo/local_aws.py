"""Secrets Manager for the demo stories: moto's server on 127.0.0.1, and clients for it.

Nothing here can reach real AWS: the clients carry throwaway keys, ignore the
user's profile and proxies, and point at the loopback endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["local_client", "local_secrets_manager"]


@contextmanager
def local_secrets_manager() -> Iterator[str]:
    """Run moto's server in this process on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # The HTTP server logs every request; the stories tell their own account instead.
    request_log = logging.getLogger("werkzeug")
    level = request_log.level
    request_log.setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
        request_log.setLevel(level)


def local_client(endpoint: str) -> Any:
    """A client for the local server only: fake keys, no profile, no proxy, no retries."""
    import boto3
    import botocore.session
    from botocore.config import Config

    core = botocore.session.Session(session_vars={"profile": (None, None, None, None)})
    session = boto3.session.Session(
        botocore_session=core,
        aws_access_key_id="demo",
        aws_secret_access_key="demo",
        region_name="us-east-1",
    )
    return session.client(
        "secretsmanager",
        endpoint_url=endpoint,
        config=Config(proxies={}, retries={"total_max_attempts": 1}),
    )
