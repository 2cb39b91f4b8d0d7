"""A replay's scratch space: the unnamed temporary files in which its check keeps the rows
it validated (``app.replay.checked``) and, with ``--order-by-time``, sorts them
(``app.history.ExternalSort``). A disk that fills up under them becomes an error that
names the directory and the way out, instead of a bare ``OSError``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agents.errors import ReplayError

# No room left: the disk, the user's quota, or the process's file-size limit (ulimit -f).
_NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


@contextmanager
def scratch_writes(tmp_dir: Path) -> Iterator[None]:
    """Turns running out of room in ``tmp_dir`` into a ``ReplayError``. Meant for the
    check, which comes before anything is produced; other errors pass unchanged."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        raise ReplayError(
            f"no room to write the replay's temporary files in {tmp_dir} ({exc.strerror}); "
            "nothing was produced",
            hint="free space there, or set TMPDIR to a directory with room: the check keeps "
            "about the compressed size of the files' good rows (with --order-by-time, also "
            "their rows uncompressed), and the files vanish when the replay ends; then run "
            "the replay again",
        ) from exc
