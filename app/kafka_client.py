"""Connection options shared by every aiokafka client kappa creates."""

from __future__ import annotations

from typing import Any

from app.settings import KappaSettings


def client_options(settings: KappaSettings) -> dict[str, Any]:
    return {"bootstrap_servers": settings.bootstrap, "request_timeout_ms": 30_000}
