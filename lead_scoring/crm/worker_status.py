"""What a CRM worker is doing, said once: its state ("consuming", "waiting for Kafka", "retrying a write"), one
log line per change of state (never one per retry), and the heartbeat file `stack status` reads.

A file, not an admin request: librdkafka's coordinator admin calls can abort the asking process
(librdkafka#4605). `crm.heartbeat` reads what this writes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from confluent_kafka import KafkaError

from lead_scoring.crm.batches import WorkerStats
from lead_scoring.crm.heartbeat import CONSUMING, RETRYING_WRITE, WAITING_FOR_KAFKA

log = logging.getLogger(__name__)

# librdkafka's signals that no broker can be reached (it keeps reconnecting on its own).
_BROKER_DOWN = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


class WorkerStatus:
    """The state of worker `name` and its heartbeat at `path` (None: no file, e.g. in tests).

    `assigned` and `stuck` are read at each beat: the partitions the consumer holds, and the batch a transient
    error keeps retrying (`BatchWriter.stuck`)."""

    def __init__(
        self,
        name: str,
        group_id: str,
        stats: WorkerStats,
        path: Optional[Path],
        assigned: Callable[[], int],
        stuck: Callable[[], Optional[dict[str, Any]]],
    ):
        self.name = name
        self.group_id = group_id
        self.stats = stats
        self.path = path
        self._assigned = assigned
        self._stuck = stuck
        self.state = WAITING_FOR_KAFKA
        self.since = time.time()
        self.detail = ""
        self._last_beat = 0.0

    def set(self, state: str, detail: str = "") -> None:
        """One log line per change of state, never one per retry."""
        if state != self.state:
            since = time.time() - self.since
            if state == WAITING_FOR_KAFKA:
                self.stats.outages += 1
                log.warning("%s: waiting for Kafka (%s); nothing is committed until it is back", self.name, detail)
            elif self.state == WAITING_FOR_KAFKA:
                log.info("%s: Kafka is back after %.0f s; %s", self.name, since, state)
            elif state == RETRYING_WRITE:
                log.warning("%s: writing a batch failed (%s); retrying with backoff", self.name, detail)
            else:
                log.info("%s: %s", self.name, state)
            self.state, self.since = state, time.time()
        self.detail = detail
        self.beat(force=True)

    def kafka_answered(self) -> None:
        if self.state == WAITING_FOR_KAFKA:
            self.set(CONSUMING)

    def written_after_retries(self) -> None:
        if self.state == RETRYING_WRITE:
            self.set(CONSUMING)

    def on_kafka_error(self, err: KafkaError) -> None:
        """The consumer's error_cb: it runs inside poll/consume, on the worker's thread."""
        if err.code() in _BROKER_DOWN:
            self.set(WAITING_FOR_KAFKA, err.str())
        elif err.fatal():
            log.error("%s: fatal Kafka error: %s", self.name, err)
        else:
            log.debug("%s: %s", self.name, err)

    def beat(self, force: bool = False) -> None:
        """Tell `stack status` the worker is alive and what it is doing (at most once a second unless `force`)."""
        now = time.time()
        if self.path is None or (not force and now - self._last_beat < 1.0):
            return
        self._last_beat = now
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "ts": now,
                    "assigned_partitions": self._assigned(),
                    "consumed": self.stats.consumed,
                    "group": self.group_id,
                    "state": self.state,
                    "since": self.since,
                    "detail": self.detail[:300],
                    "outages": self.stats.outages,
                    "reconnects": self.stats.reconnects,
                    "stuck": self._stuck(),
                    "quarantined": self.stats.counts.get("quarantined", 0),
                    # the writeback's suppressed writes: the CRM held the score already (crm/writeback.py)
                    "unchanged_skipped": self.stats.counts.get("unchanged_skipped", 0),
                }
            )
        )
        tmp.replace(self.path)
