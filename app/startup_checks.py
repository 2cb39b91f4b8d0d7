"""What ``kappa worker`` checks before it touches the cluster.

A worker that joins its consumer group, or creates its topics, and then fails (its API
port taken, its state directory not writable) leaves them behind: ``kappa versions``
then lists a version that never ran. So everything that can fail on this machine is
checked first, then Kafka is reached once, and only then does Faust start. Each failure
is a KappaError that says what to do, which the CLI prints as ``Error: ...``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

from agents.errors import KappaError


def check_state_dir(path: Path) -> None:
    """``path`` exists (created if need be) and a file can be written in it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".kappa-write-check-"):
            pass
    except OSError as exc:
        raise KappaError(
            f"the worker's state directory {path} is not writable ({exc.strerror or exc})",
            hint="point KAPPA_HOME at a directory this user can write to (the state goes "
            "under KAPPA_HOME/state), or fix its permissions; nothing was created on Kafka",
        ) from None


def check_port_free(host: str, port: int) -> None:
    """Nothing listens on ``host:port``, where the worker's API is to be served.

    Bound the way aiohttp binds (SO_REUSEADDR), so that a port a stopped worker left
    in TIME_WAIT counts as free, as it is for the API."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise KappaError(
                f"the worker's API cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint="another process (another worker?) uses that port: give this worker its "
                "own with KAPPA_WEB_PORT (and KAPPA_WEB_HOST); nothing was created on Kafka",
            ) from None


@contextlib.contextmanager
def quiet(logger: str) -> Iterator[None]:
    """Nothing from ``logger`` while inside (logging is not configured yet: Python's
    last-resort handler would print its warnings to stderr)."""
    silenced = logging.getLogger(logger)
    level = silenced.level
    silenced.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        silenced.setLevel(level)
