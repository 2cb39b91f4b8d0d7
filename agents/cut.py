"""A version's cut: the event time where its history files end and the live input begins.

A spec with ``[history] cut = "2024-03-01T00:00:00Z"`` takes the events before the cut
from its own history topic (filled by ``kappa replay``) and the events at or after it
from the live input topic. The cut is an ISO-8601 time (a TOML date-time works too); a
time without an offset is UTC, as everywhere in kappa. Numbers are refused: an epoch
value could be seconds or milliseconds.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from tables.times import datetime_to_ms, ms_to_iso

EXAMPLE = '"2024-03-01T00:00:00Z"'


def parse_cut(value: Any) -> int:
    """The cut ``value`` (ISO-8601 text, or a TOML date-time or date) in epoch ms."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO-8601 time; write the cut as {EXAMPLE}"
            ) from None
    else:
        raise ValueError(
            f"the cut is a time, got {value!r}; write it as an ISO-8601 string such as "
            f"{EXAMPLE} (numbers are refused: seconds or milliseconds?)"
        )
    return datetime_to_ms(moment)


def _dump_cut(ms: int) -> str | None:
    return ms_to_iso(ms)


CutMs = Annotated[int, BeforeValidator(parse_cut), PlainSerializer(_dump_cut)]


class HistoryCut(BaseModel):
    """The spec's ``[history]`` table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cut_ms: CutMs = Field(alias="cut")

    @property
    def cut_iso(self) -> str | None:
        return _dump_cut(self.cut_ms)
