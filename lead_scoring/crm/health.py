"""What a CRM worker's heartbeat says, in the words an operator paged at night acts on.

`stack status`, `stack up` and the `workers_flowing` Dagster check all read a worker's state here, so they
say the same thing: `stuck at input_raw[0]@41234 for 3 min: <error>` for a worker that cannot get past one
record, `last heartbeat 29 s ago (last state: ...)` for one that stopped reporting, the liveness problems of
`workers.worker_health` otherwise.

The heartbeat (written by `workers.MicroBatchWorker`) carries `stuck` ({topic, partition, offset, since
(epoch seconds), error} or null) and `quarantined` (records set aside with their reason) besides its state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lead_scoring.crm.heartbeat import HEARTBEAT_MAX_AGE_S, WORKER_NAMES, read_heartbeat, worker_health

ERROR_CHARS = 200  # an error message is shown up to this long (a stuck record's text can be huge)


def format_age(seconds: float) -> str:
    """`42 s`, `3 min`, `2 h 5 min`: how long, at the precision an operator needs."""
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = int(seconds // 60)
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min"


def stuck_text(stuck: dict[str, Any], now: float) -> str:
    """`stuck at input_raw[0]@41234 for 3 min: <error>`."""
    since = stuck.get("since")
    age = f" for {format_age(now - float(since))}" if isinstance(since, (int, float)) else ""
    error = str(stuck.get("error") or "no error recorded")
    if len(error) > ERROR_CHARS:
        error = error[:ERROR_CHARS] + "..."
    return f"stuck at {stuck.get('topic')}[{stuck.get('partition')}]@{stuck.get('offset')}{age}: {error}"


@dataclass(frozen=True)
class WorkerReport:
    """One worker as its heartbeat describes it; `problem` is None when it is healthy."""

    name: str
    problem: Optional[str]
    consumed: Optional[int] = None
    quarantined: Optional[int] = None
    heartbeat_age_s: Optional[float] = None
    stuck: Optional[dict[str, Any]] = None

    @property
    def healthy(self) -> bool:
        return self.problem is None


def _int(value: Any) -> Optional[int]:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def worker_report(name: str, state_root: Optional[Path] = None, now: Optional[float] = None) -> WorkerReport:
    """The named worker's health and counts, from its heartbeat under `state_root` (the profile's state folder)."""
    now = time.time() if now is None else now
    beat = read_heartbeat(name, state_root)
    if beat is None:
        return WorkerReport(name, worker_health(name, state_root) or "no heartbeat yet")
    age = now - float(beat.get("ts", 0) or 0)
    stuck = beat.get("stuck") if isinstance(beat.get("stuck"), dict) else None
    counts = {
        "consumed": _int(beat.get("consumed")),
        "quarantined": _int(beat.get("quarantined")),
        "heartbeat_age_s": round(age, 1),
        "stuck": stuck,
    }
    stale = f"last heartbeat {format_age(age)} ago" if age > HEARTBEAT_MAX_AGE_S else None
    if stuck is not None:
        problem = stuck_text(stuck, now) + (f" ({stale})" if stale else "")
        return WorkerReport(name, problem, **counts)
    problem = worker_health(name, state_root)
    if problem is not None and stale:
        # the file outlived the process or the loop: say how old it is and what it was doing last
        detail = f": {beat['detail']}" if beat.get("detail") else ""
        problem = f"{stale} (last state: {beat.get('state', '?')}{detail})"
    return WorkerReport(name, problem, **counts)


def worker_reports(state_root: Optional[Path] = None, now: Optional[float] = None) -> list[WorkerReport]:
    return [worker_report(name, state_root, now) for name in WORKER_NAMES]
