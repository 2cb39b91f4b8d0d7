"""The local PostgreSQL's start, as root, in a directory its server user cannot reach:
a clear error naming the directory and the fix, before initdb runs."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from app.postgres.local import LocalPostgres, PostgresError
from app.settings import KappaSettings


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the server run as another user")
def test_a_private_parent_directory_is_named_with_its_fix() -> None:
    home = KappaSettings().home
    home.mkdir(parents=True, exist_ok=True)
    # What `mktemp -d` makes: a directory only its owner may enter.
    private = Path(tempfile.mkdtemp(dir=home, prefix="private-"))
    try:
        settings = KappaSettings(home=private / "home", postgres_port=1)
        with pytest.raises(PostgresError) as raised:
            LocalPostgres(settings).start()
        assert f"cannot enter {private.resolve()} " in str(raised.value)
        assert raised.value.hint is not None
        assert f"chmod o+x {private.resolve()}" in raised.value.hint
        assert not (private / "home" / "postgres" / "data").exists()  # initdb never ran
    finally:
        shutil.rmtree(private)
