"""A bandwidth cap shared by every stream of a process (a token bucket).

Each chunk asks for its size before it is written; when the bucket is empty the caller
waits until the rate allows it. The wait is interruptible, so cancelling a job does not
hang on a slow cap.
"""

from __future__ import annotations

import threading
import time


class BandwidthLimiter:
    """Limit throughput to *rate* bytes per second, with bursts of up to one second's worth."""

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self._lock = threading.Lock()
        self._tokens = float(rate or 0)
        self._stamp = time.monotonic()

    def acquire(self, nbytes: int, cancelled: threading.Event | None = None) -> None:
        """Block until *nbytes* may pass; return early if *cancelled* is set."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.rate), self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            # Going into debt lets a chunk larger than the burst pass; the next callers
            # wait for the debt to be paid back, so the average rate holds.
            self._tokens -= nbytes
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            (cancelled or threading.Event()).wait(wait)
