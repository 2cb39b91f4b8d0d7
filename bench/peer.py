"""The peer's environment: Quix Streams lives in its own venv, never in kappa's.

The venv is made on first use from the pinned bench/requirements-peer.txt (or by
``make bench-peer``), and made again when that file changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.workers import ROOT

VENV = ROOT / "var" / "bench-venv"
REQUIREMENTS = ROOT / "bench" / "requirements-peer.txt"
STAMP = VENV / ".installed-stamp"  # the Makefile's bench-peer target uses the same stamp


def python() -> Path:
    """The peer venv's interpreter, installing the venv if it is missing or stale."""
    if not STAMP.exists() or STAMP.stat().st_mtime < REQUIREMENTS.stat().st_mtime:
        # Without PYTHONPATH: pointed at the checkout, it shows pip kappa's own metadata,
        # and pip then warns that kappa's dependencies are missing from the peer's venv.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, env=env)
        pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, env=env)
        STAMP.touch()
    return VENV / "bin" / "python"


def quix_version() -> str:
    done = subprocess.run(
        [
            str(python()),
            "-c",
            "from importlib import metadata; print(metadata.version('quixstreams'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()
