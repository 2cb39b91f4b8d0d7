"""An iterator run ahead in a thread, so that its C work overlaps the consumer's.

Decompressing, decoding CSV with Arrow and Arrow's compute kernels release the GIL, so a
replay reads and validates the next block of rows while it produces the current one.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_DONE = object()


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """``items`` in order, up to ``depth`` of them computed ahead in a thread; an error
    raised by ``items`` is raised here. Closing this iterator stops the thread."""
    import os

    if os.environ.get("NOPREFETCH"):
        yield from items
        return
    ready: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        ready.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            ready.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            ready.put(exc)

    thread = threading.Thread(target=run, name="prefetch", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
