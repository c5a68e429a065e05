"""The CRM workers as the rest of the stack sees them: their names, consumer groups, topics and heartbeat.

Kept apart from `crm.workers` (the worker loop, its handlers and their clients: pandas, DuckDB, Salesforce,
seconds of imports on 2 cores) so that `stack status`, `stack up` and the supervisor read a worker's state
without importing what the worker itself runs.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Optional

from lead_scoring.settings import state_dir
from lead_scoring.streaming.topics import INPUT_RAW, SCORE_TOPICS, SHADOW_SCORE_TOPICS

WRITEBACK = "writeback"
SINK = "sink"
WORKER_NAMES = (WRITEBACK, SINK)
GROUP_IDS = {WRITEBACK: "lead-scoring-writeback", SINK: "lead-scoring-sink"}
HEARTBEAT_MAX_AGE_S = 15.0

# a worker's states, in its heartbeat
CONSUMING = "consuming"
WAITING_FOR_KAFKA = "waiting for Kafka"
RETRYING_WRITE = "retrying a write"


def heartbeat_path(name: str, state_root: Optional[Path] = None) -> Path:
    """Where the named worker reports that it is alive (under the state folder it writes to)."""
    return (state_root or state_dir()) / "workers" / f"{name}.heartbeat.json"


def worker_topics(name: str) -> list[str]:
    """The topics the named worker reads in the pipeline (for lag)."""
    return list(SCORE_TOPICS) if name == WRITEBACK else [INPUT_RAW, *SCORE_TOPICS, *SHADOW_SCORE_TOPICS]


def read_heartbeat(name: str, state_root: Optional[Path] = None) -> Optional[dict[str, Any]]:
    try:
        return json.loads(heartbeat_path(name, state_root).read_text())
    except (FileNotFoundError, ValueError):
        return None


def worker_health(name: str, state_root: Optional[Path] = None) -> Optional[str]:
    """None when the worker's heartbeat is fresh, it holds partitions and is consuming, else what is wrong."""
    path = heartbeat_path(name, state_root)
    beat = read_heartbeat(name, state_root)
    if beat is None:
        return f"no heartbeat yet at {path}"
    age = time.time() - float(beat.get("ts", 0))
    if age > HEARTBEAT_MAX_AGE_S:
        return f"last heartbeat {age:.0f} s ago"
    try:
        os.kill(int(beat["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return f"worker pid {beat.get('pid')} is gone"
    state = beat.get("state", CONSUMING)
    if state != CONSUMING:
        since = time.time() - float(beat.get("since", time.time()))
        return f"{state} for {since:.0f} s ({beat.get('detail', '')})"
    if not beat.get("assigned_partitions"):
        return f"joined group {beat.get('group')} but holds no partition yet"
    return None
