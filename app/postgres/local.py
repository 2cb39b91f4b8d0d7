"""A real PostgreSQL, run locally for the sink's development, tests and the demo.

It runs Debian's ``postgresql`` server binaries (``make test`` installs them with apt-get,
as it does Chromium), from a data directory under ``KAPPA_HOME/postgres``, on
``127.0.0.1:KAPPA_POSTGRES_PORT``, with trust authentication for the local user
``kappa`` and a database ``kappa``. ``initdb`` refuses to run as root, so as root every
server command runs as Debian's ``postgres`` system user, which owns the data directory.
That user must enter every directory above it; when root's checkout sits in a private
directory (root's home, ``mktemp -d``), the cluster lives under the system's temporary
directory instead and ``KAPPA_HOME/postgres`` links to it. Nothing here runs when
``KAPPA_POSTGRES_URL`` points at an existing server.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from agents.errors import KappaError
from app.settings import LOCAL_HOST, KappaSettings

SERVER_USER = "postgres"  # Debian's system user for the server, used when run as root
INSTALL_HINT = (
    "install Debian's PostgreSQL server (`apt-get install postgresql`, as root; `make test` "
    "does it), or point KAPPA_POSTGRES_URL at an existing server"
)


class PostgresError(KappaError):
    """The local PostgreSQL cannot be found, started or stopped."""


@dataclass(frozen=True)
class PostgresStatus:
    port: int
    pid: int | None
    data_dir: Path
    log_file: Path

    @property
    def running(self) -> bool:
        return self.pid is not None


def server_bindir() -> Path:
    """The directory of ``initdb`` and ``pg_ctl``: on PATH, or Debian's newest version."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    if debian:
        return debian[-1].parent
    raise PostgresError(
        "the PostgreSQL server (initdb, pg_ctl) is not installed", hint=INSTALL_HINT
    )


class LocalPostgres:
    """Start, stop and inspect the project's local PostgreSQL server."""

    def __init__(self, settings: KappaSettings) -> None:
        if settings.postgres_url is not None:
            raise PostgresError(
                "KAPPA_POSTGRES_URL names an existing server, so kappa manages no local one",
                hint="unset KAPPA_POSTGRES_URL to use a local PostgreSQL",
            )
        self.settings = settings
        self._place(settings.home / "postgres")

    def _place(self, root: Path) -> None:
        self.root = root.resolve()  # through the link a private checkout leaves
        self.data_dir = self.root / "data"
        self.log_file = self.root / "postgres.log"

    def status(self) -> PostgresStatus:
        return PostgresStatus(
            self.settings.postgres_port, self._pid(), self.data_dir, self.log_file
        )

    def _pid(self) -> int | None:
        """The postmaster's pid from its pid file, if that process is still a postgres."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
            alive = psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
            name = psutil.Process(pid).name()
        except (FileNotFoundError, PermissionError, ValueError, psutil.Error):
            return None
        return pid if alive and "postgres" in name else None

    def start(self) -> PostgresStatus:
        """Create the cluster on first use, then start it and wait until it accepts
        connections; nothing to do when it runs already."""
        if self._pid() is not None:
            return self.status()
        bindir = server_bindir()
        if not (self.data_dir / "PG_VERSION").exists():
            self._create_root()
            self._run(
                bindir / "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                "kappa",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            )
        options = (
            f"-p {self.settings.postgres_port} -c listen_addresses={LOCAL_HOST} "
            f"-k {self.root} -c fsync=on"
        )
        self._run(
            bindir / "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-w",
            "-t", "60", "-o", options, "start",
        )  # fmt: skip
        self._create_database()
        return self.status()

    def stop(self) -> bool:
        """Stop the server (fast shutdown); True when one was running."""
        if self._pid() is None:
            return False
        self._run(server_bindir() / "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        return True

    def kill(self) -> None:
        """``kill -9`` the postmaster, for crash tests: its children exit on their own."""
        pid = self._pid()
        if pid is not None:
            process = psutil.Process(pid)
            os.kill(pid, signal.SIGKILL)
            process.wait(timeout=30)

    def _create_database(self) -> None:
        psql = shutil.which("psql") or str(server_bindir() / "psql")
        base = [psql, "-h", LOCAL_HOST, "-p", str(self.settings.postgres_port), "-U", "kappa"]
        exists = subprocess.run(
            [*base, "-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname='kappa'"],
            capture_output=True,
            text=True,
            check=False,
        )
        if exists.stdout.strip() != "1":
            self._run(Path(psql), *base[1:], "-d", "postgres", "-qc", "CREATE DATABASE kappa")

    def _as_server_user(self) -> list[str]:
        return ["runuser", "-u", SERVER_USER, "--"] if os.geteuid() == 0 else []

    def _create_root(self) -> None:
        """The cluster's directory, owned by the server user when run as root."""
        self.root.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        if not self._server_user_enters(self.root):
            # A private parent (root's home, `mktemp -d`) shuts the server user out, and
            # opening it up is not ours to do: the cluster moves to a directory of its own
            # under the system's temporary directory, and KAPPA_HOME/postgres links to it.
            link = self.settings.home / "postgres"
            shutil.rmtree(self.root)  # no cluster in it: PG_VERSION is missing
            outside = Path(tempfile.mkdtemp(prefix="kappa-postgres-", dir="/var/tmp"))
            outside.chmod(0o755)
            link.symlink_to(outside, target_is_directory=True)
            self._place(link)
        shutil.chown(self.root, SERVER_USER, SERVER_USER)

    def _server_user_enters(self, path: Path) -> bool:
        entered = subprocess.run(
            [*self._as_server_user(), "test", "-x", str(path)], capture_output=True, check=False
        )
        return entered.returncode == 0

    def _run(self, program: Path, *args: str) -> None:
        done = subprocess.run(
            [*self._as_server_user(), str(program), *args],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise PostgresError(
                f"{program.name} {' '.join(args[-1:])} failed: {done.stdout}{done.stderr}".strip()
                + self._log_tail(),
                hint=f"read the log at {self.log_file}; a port in use needs another "
                "KAPPA_POSTGRES_PORT; removing KAPPA_HOME/postgres starts from an empty server",
            )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-15:]
        except (FileNotFoundError, PermissionError):
            return ""
        return "\nLog tail:\n" + "\n".join(lines)
