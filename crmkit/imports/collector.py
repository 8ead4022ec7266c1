"""The cyclic garbage collector paused while an import works on one chunk.

A chunk of 5,000 lines keeps tens of thousands of objects alive until it is written (parsed values, the
validated customers, their rows and records); none is garbage before the chunk ends. The collector does
not know that: every few hundred allocations it walks the young objects, and as the chunk's objects pile
up into the oldest generation it walks the whole heap (the CRM's schema, SQLAlchemy's and phonenumbers'
metadata) to find nothing. Measured on the customer import, those full passes were a fifth of its time.

So the collector is off while a chunk is read and applied, and back on between two chunks, when the
garbage the chunk left (a few reference cycles) is collected: memory stays bounded by one chunk. Objects
freed by their reference count (nearly all of them) go as they always do. Only the collector's timing
changes, never what the import does.

The switch is process-wide: imports running in several threads share one count, so the collector comes
back when the last of them leaves its chunk, and it is left alone when the application had turned it off.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_inside = 0  # chunks being worked on now, across threads
_switched_off = False  # whether the collector was turned off here (and so is turned back on here)


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block (if it was on), on again when the last such block in the process
    ends, even when it raises."""
    global _inside, _switched_off
    with _lock:
        if _inside == 0 and gc.isenabled():
            gc.disable()
            _switched_off = True
        _inside += 1
    try:
        yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _switched_off:
                _switched_off = False
                gc.enable()
                # The collector counts allocations net of frees, so after a chunk whose objects are freed
                # it would not run soon: the cycles the chunk left (SQLAlchemy statements holding a page
                # of key values) would pile up over chunks. Collected now, they cost one pass over the
                # youngest objects, few once the chunk is gone.
                gc.collect(0)
