"""Wide records for the benchmark: 20 fields per event, as real order records have them.

Each event is one of app.datagen's orders (``customer_id``, ``ts``, ``amount``,
``quantity``: the fields the bench pipeline reads) with 16 more fields it does not read:
ids, names, free text with non-ASCII letters, a URL and a user agent, booleans, a nested
object, more numbers and two more times. Every time is a naive ISO-8601 time (UTC, no
offset), as exports from databases often write them. The events are written as JSON
Lines (app.datagen.write), so the live records carry typed JSON values, not CSV text.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from app.datagen import DatasetShape, generate

FIELDS = 20
_CITIES = ("Zürich", "São Paulo", "København", "Montréal", "Kraków", "Paris", "Tōkyō", "Austin")
_COUNTRIES = ("CH", "BR", "DK", "CA", "PL", "FR", "JP", "US")
_CHANNELS = ("web", "ios", "android", "store", "phone")
_STATUSES = ("paid", "shipped", "delivered", "refunded")
_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
)
_NOTES = ("", "leave at the door", "gift — please wrap", "appel avant livraison", "配達前に電話")


def _naive(moment: datetime) -> str:
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")


def generate_wide(shape: DatasetShape) -> Iterator[dict[str, Any]]:
    """``shape``'s orders, each widened to ``FIELDS`` fields, its times naive ISO."""
    rng = random.Random(shape.seed + 1)
    for i, order in enumerate(generate(shape)):
        at = datetime.fromisoformat(order["ts"])
        city = rng.randrange(len(_CITIES))
        record = {
            "order_id": f"o-{shape.seed}-{i:09d}",
            "customer_id": order["customer_id"],
            "ts": _naive(at),
            "amount": order["amount"],
            "quantity": order["quantity"],
            "currency": "EUR" if city < 5 else "USD",
            "city": _CITIES[city],
            "country": _COUNTRIES[city],
            "channel": rng.choice(_CHANNELS),
            "status": rng.choice(_STATUSES),
            "sku": f"SKU-{rng.randrange(100_000):06d}",
            "product": f"Article {rng.randrange(5_000)} — édition {rng.randrange(1, 9)}",
            "unit_price": round(rng.uniform(0.5, 900), 2),
            "discount": round(rng.random() * 0.3, 4),
            "is_member": rng.random() < 0.4,
            "created_at": _naive(at - timedelta(seconds=rng.randrange(86_400))),
            "shipped_at": _naive(at + timedelta(hours=rng.randrange(1, 96))),
            "referrer": f"https://shop.example.com/c/{rng.randrange(300)}?utm_source=mail",
            "user_agent": rng.choice(_AGENTS),
            "meta": {"notes": rng.choice(_NOTES), "score": rng.randrange(100), "tags": ["a", "b"]},
        }
        assert len(record) == FIELDS
        yield record
