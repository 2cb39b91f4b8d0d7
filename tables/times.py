"""Event times: epoch milliseconds (UTC) to and from ISO-8601, as kappa stores and shows them."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def datetime_to_ms(moment: datetime) -> int:
    """Epoch milliseconds of ``moment``, floored; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    # Exact, unlike timestamp(); a timedelta keeps seconds and microseconds non-negative,
    # so this floors before the epoch too.
    since = moment - _EPOCH
    return (since.days * 86_400 + since.seconds) * 1000 + since.microseconds // 1000


# Window starts and ends repeat across keys: a closed window's result formats them again.
@functools.lru_cache(maxsize=8192)
def ms_to_iso(ms: int) -> str | None:
    """``ms`` as ISO-8601 UTC: ``2024-03-10T05:00:00Z``, or ``...00.250Z`` when it has
    milliseconds. None outside the years 1 to 9999, which a window can reach at the edges."""
    try:
        moment = datetime(1970, 1, 1) + timedelta(milliseconds=ms)
    except OverflowError:
        return None
    return moment.isoformat(timespec="milliseconds" if ms % 1000 else "seconds") + "Z"
