"""A free local TCP port, for a worker's API started by the demo, the benchmark or tests."""

from __future__ import annotations

import socket

from app.settings import LOCAL_HOST


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; another process may take it
    before it is bound again, which the callers' start-up checks notice)."""
    with socket.socket() as sock:
        sock.bind((LOCAL_HOST, 0))
        return int(sock.getsockname()[1])
