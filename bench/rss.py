"""Peak resident memory of this process, per workload.

Linux lets a process reset its own high-water mark (``/proc/self/clear_refs``, value 5), so the peak of
each timed run is measured exactly; elsewhere the process's lifetime peak is all there is, and the
figures are marked as such.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak() -> bool:
    """Start a new peak from the current RSS; ``False`` when the platform cannot."""
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def peak_mb() -> float:
    """The peak RSS since the last :func:`reset_peak` (or since the process started), in MiB."""
    value = _status_mb("VmHWM")
    if value is not None:
        return value
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


def current_mb() -> float:
    value = _status_mb("VmRSS")
    return value if value is not None else peak_mb()
