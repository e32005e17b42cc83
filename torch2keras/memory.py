"""The process's resident memory (RSS): now, and its peak over a span of work.

``PeakRSS`` measures the highest RSS reached while it is open. On Linux it resets the kernel's
high-water mark (``VmHWM`` in ``/proc/self/status``, reset by writing ``5`` to
``/proc/self/clear_refs``) when the span starts and reads it when the span ends: exact, and
free. Where that is not possible it samples ``VmRSS`` (or ``ru_maxrss`` elsewhere) from a
thread every few milliseconds. Spans may nest: resetting the high-water mark for an inner
span first hands the peak so far to the spans around it.

Everything here reads the operating system only (no psutil); where nothing can be read the
numbers are 0.
"""

from __future__ import annotations

import resource
import sys
import threading
from typing import Optional

__all__ = ["PeakRSS", "current_rss", "peak_rss"]

_STATUS = "/proc/self/status"
_CLEAR_REFS = "/proc/self/clear_refs"
_SAMPLE_SECONDS = 0.005


def _status_bytes(field: str) -> Optional[int]:
    """``field`` (``"VmRSS"``, ``"VmHWM"``) of /proc/self/status in bytes; None off Linux."""
    try:
        with open(_STATUS, "rb") as f:
            for line in f:
                if line.startswith(field.encode() + b":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def current_rss() -> int:
    """The process's resident memory now, in bytes (its peak so far where 'now' is not known)."""
    rss = _status_bytes("VmRSS")
    return rss if rss is not None else peak_rss()


def peak_rss() -> int:
    """The highest resident memory of the process since it started or the last reset, in bytes."""
    hwm = _status_bytes("VmHWM")
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(maxrss if sys.platform == "darwin" else maxrss * 1024)  # (bytes on macOS, KiB elsewhere)


def _reset_peak() -> bool:
    """Set the kernel's high-water mark to the current RSS; False where that is not possible."""
    if _status_bytes("VmHWM") is None:
        return False
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_open: list["PeakRSS"] = []  # the spans now measuring, outermost first
_lock = threading.Lock()


class PeakRSS:
    """``with PeakRSS() as span: ...`` then ``span.peak`` (the highest RSS during the block, in
    bytes) and ``span.start`` (the RSS when it began). ``span.now()`` is the peak so far, while
    the block runs."""

    def __init__(self) -> None:
        self.start = 0
        self.peak = 0
        self._sampler: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._exact = False

    def __enter__(self) -> "PeakRSS":
        with _lock:
            for span in _open:  # their peak so far, before the high-water mark is reset
                span.peak = max(span.peak, span.now())
            self.start = current_rss()
            self.peak = self.start
            _open.append(self)
            exact = _reset_peak()
        self._exact = exact
        if not exact:
            self._sampler = threading.Thread(target=self._sample, name="torch2keras-rss", daemon=True)
            self._sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
        with _lock:
            self.peak = max(self.peak, peak_rss() if self._exact else current_rss())
            _open.remove(self)
            for span in _open:
                span.peak = max(span.peak, self.peak)

    def now(self) -> int:
        """The peak so far (while the block runs)."""
        return max(self.peak, peak_rss() if self._exact else current_rss())

    def _sample(self) -> None:
        while not self._stop.wait(_SAMPLE_SECONDS):
            self.peak = max(self.peak, current_rss())
