"""The local PostgreSQL's start, as root, from a checkout its server user cannot reach
(root's home, ``mktemp -d``): the cluster lives outside it, behind a link, and runs."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from app.postgres.local import SERVER_USER, LocalPostgres
from app.settings import KappaSettings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the server run as another user")
def test_a_private_checkout_keeps_its_cluster_outside_behind_a_link() -> None:
    home = KappaSettings().home
    home.mkdir(parents=True, exist_ok=True)
    # What `mktemp -d` makes: a directory only its owner may enter.
    private = Path(tempfile.mkdtemp(dir=home, prefix="private-"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    settings = KappaSettings(home=private / "home", postgres_port=_free_port())
    server = LocalPostgres(settings)
    try:
        status = server.start()
        link = private / "home" / "postgres"
        assert link.is_symlink()
        outside = link.resolve()
        assert outside.parent == Path("/var/tmp")
        assert outside.name.startswith("kappa-postgres-")
        assert outside.owner() == SERVER_USER
        assert status.running
        assert status.data_dir == outside / "data"
        with psycopg.connect(
            host="127.0.0.1", port=settings.postgres_port, user="kappa", dbname="kappa"
        ) as connection:
            assert connection.execute("SELECT 41 + 1").fetchone() == (42,)
        # A second handle finds the same cluster through the link.
        assert LocalPostgres(settings).status().pid == status.pid
        assert server.stop()
    finally:
        server.stop()
        shutil.rmtree(private)
        if "outside" in locals():
            shutil.rmtree(outside)
