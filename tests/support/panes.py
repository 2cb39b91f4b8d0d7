"""A check shared by the epoch and zoned window tests: the pane an event updates."""

from __future__ import annotations

from tables.windows import PanedKind


def check_pane_of(w: PanedKind, ts: int) -> None:
    """``ts``'s pane starts at or before it, is in exactly the windows ``ts`` is in, and
    is one of each such window's panes, which all lie within the window."""
    pane = w.pane(ts)
    assert pane is not None
    assert pane <= ts
    assert w.starts(pane) == w.starts(ts)
    for s in w.starts(ts):
        assert pane in w.panes(s)
        assert all(s <= p < w.end(s) for p in w.panes(s))
