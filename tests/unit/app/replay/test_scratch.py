"""A replay's temporary files on a full disk: an error that names the directory and the
way out; every other error passes as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.errors import ReplayError
from app.replay.scratch import scratch_writes


def test_a_full_disk_names_the_directory_and_the_way_out(tmp_path: Path) -> None:
    # /dev/full fails every write with ENOSPC, as a full disk does.
    with (
        pytest.raises(ReplayError) as raised,
        scratch_writes(tmp_path),
        open("/dev/full", "wb", buffering=0) as full,
    ):
        full.write(b"rows")
    message = str(raised.value)
    assert f"no room to write the replay's temporary files in {tmp_path}" in message
    assert "No space left on device" in message
    assert "nothing was produced" in message
    assert "set TMPDIR" in message
    assert isinstance(raised.value.__cause__, OSError)


def test_other_errors_pass_unchanged(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), scratch_writes(tmp_path):
        (tmp_path / "missing" / "file").write_bytes(b"x")
