"""Peak resident memory of this process, per workload.

Linux lets a process reset its own high-water mark (``/proc/self/clear_refs``, value 5), so the peak of
each timed run is measured exactly; elsewhere the process's lifetime peak is all there is, and the
figures are marked as such.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def in_fresh_process(module: str, args: Sequence[str], what: str) -> dict[str, Any]:
    """Run ``python -m module *args`` in a fresh interpreter (so one measurement's garbage and caches do not
    count against another) and return the JSON object its last line of output prints."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", module, *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=root, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def target_args(work_dir: Path, prefix: str, url: str | None) -> list[str]:
    """The options that make a child process open the same benchmark databases."""
    return ["--work-dir", str(work_dir), "--prefix", prefix, *(["--url", url] if url is not None else [])]
