"""Start-up objects kept out of the garbage collector's way.

When the gateway is ready, the process holds about 110,000 objects that live as long as it does
(mitmproxy, Flask, the model catalogue, compiled patterns...). CPython's full collection walks
every one of them: in a burst of 500 streams it ran twice and paused the event loop for up to
130 ms each time (timed with ``gc.callbacks``). ``gc.freeze()`` moves them into a generation the
collector never walks, after collecting what among them is already garbage. Once per process: a
later freeze would also pin objects of calls in flight.
"""

from __future__ import annotations

import gc

_frozen = False


def freeze_startup_heap() -> None:
    global _frozen
    if _frozen:
        return
    _frozen = True
    gc.collect()
    gc.freeze()
