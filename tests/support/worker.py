"""Run ``kappa worker`` as a real subprocess and talk to its HTTP API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class WorkerProcess:
    """``kappa worker [args]``; ``args`` can name the pipeline instead of KAPPA_PIPELINE."""

    def __init__(self, env: dict[str, str], log_path: Path, args: Sequence[str] = ()) -> None:
        self.env = env
        self.port = int(env["KAPPA_WEB_PORT"])
        self.log_path = log_path
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WorkerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.base + path, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def wait_until(
        self, check: Callable[[], bool], timeout: float, what: str, poll_s: float = 0.3
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.log_tail()}")
            try:
                if check():
                    return
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(poll_s)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.log_tail()}")

    def wait_ready(self, partitions: int, timeout: float = 90.0) -> None:
        def ready() -> bool:
            status, body = self.get("/api/status")
            return (
                status == 200
                and len(body["partitions_owned"]) == partitions
                and not body["rebalancing"]
            )

        self.wait_until(ready, timeout, f"the worker to own {partitions} partitions")

    def wait_for_log(self, text: str, timeout: float) -> None:
        """Until the worker has logged ``text``; polled every 20 ms."""

        def logged() -> bool:
            return self.log_path.exists() and text in self.log_path.read_text(errors="replace")

        self.wait_until(logged, timeout, f"{text!r} in the worker's log", poll_s=0.02)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"worker ignored {sig.name} for {timeout}s") from None

    def kill(self) -> None:
        """``kill -9``: no clean shutdown, nothing flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """A zombie: the process frozen (SIGSTOP) for the block, then resumed (SIGCONT),
        even when the block fails."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.proc.send_signal(signal.SIGCONT)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def worker_env(base: dict[str, str], **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAPPA_")}
    env.update(base)
    env.update(overrides)
    return env


def kappa_cli(
    env: Mapping[str, str], *args: str, timeout: float = 120, answer: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run ``kappa <args>`` as a user would, typing ``answer`` to its questions; whatever
    the exit code, return the outcome."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        input=answer,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def run_kappa(env: Mapping[str, str], *args: str, timeout: float = 600) -> str:
    """Run a kappa command to success; return what it printed."""
    done = kappa_cli(env, *args, timeout=timeout)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout
