"""Long-running Kafka workers: poll -> micro-batch -> write -> commit, riding out any outage.

A worker commits a batch's offsets only after its handler has written the batch (at-least-once delivery).
Handlers make the effect idempotent (upsert by Id, insert-if-absent by a natural key), so a batch replayed
after a crash, a kill or a rebalance changes nothing twice.

No transient fault ends a worker: while Kafka is unreachable it waits (librdkafka reconnects by itself;
we log one line when the broker goes and one when it is back, not a line per retry), a write that fails is
retried with backoff until it succeeds, and a commit that fails is retried; nothing is committed that was
not written. The worker's state ("consuming", "waiting for Kafka", "retrying a write") is in its heartbeat
file, which `stack status` reads.

No record stops a worker: a write that fails with an error that is the record's fault (`crm.quarantine.classify`:
permanent) is split in halves until the record is alone; that record is quarantined with the error
(`handler.quarantine`) and the rest lands, offsets committed. Only transient errors retry the batch. While they
do, the heartbeat carries `"stuck": {"topic", "partition", "offset", "since", "error"}` (the batch's first
record, since the first failure, the last error) and `"stuck": null` otherwise; `"quarantined"` counts the
records this process put aside.

The parts: `crm.consumer_session` (`ConsumerSession`: the Kafka consumer, subscribed, probed, replaced when it
stops fetching, which `crm.consumer_watch` tells), `crm.batches` (the batch, its handler and `BatchWriter`:
isolate, quarantine, retry), `crm.offsets` (`OffsetCommitter`: asynchronous commits of what was written),
`crm.worker_status` (the state, its log lines and the heartbeat file); `MicroBatchWorker` here runs the loop:
it batches what the session polls, has it written, and commits.

`lead-scoring worker NAME` runs one; the stack's supervisor runs both as services.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Optional

from lead_scoring.crm.batches import BatchHandler, BatchWriter, Message, WorkerStats
from lead_scoring.crm.consumer_session import ConsumerSession
from lead_scoring.crm.heartbeat import (
    GROUP_IDS,
    RETRYING_WRITE,
    WAITING_FOR_KAFKA,
    WORKER_NAMES,
    WRITEBACK,
    heartbeat_path,
)
from lead_scoring.crm.offsets import OffsetCommitter
from lead_scoring.crm.resources import CrmResource, input_topic_of
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.worker_status import WorkerStatus
from lead_scoring.crm.writeback import WritebackHandler
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.settings import Profile
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.topics import INPUT_RAW, SCORE_TOPICS, SHADOW_SCORE_TOPICS
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)


class MicroBatchWorker:
    """Consume `topics` in `group_id`, hand micro-batches to `handler`, commit after each success.

    The loop is here: batch what `session` polls, write it, commit it. Keeping a working Kafka consumer is
    `crm.consumer_session.ConsumerSession`, how a batch is written `crm.batches.BatchWriter`, how offsets are
    committed `crm.offsets.OffsetCommitter`, how the state is reported `crm.worker_status.WorkerStatus`."""

    def __init__(
        self,
        kafka: KafkaResource,
        group_id: str,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        max_wait_s: float = 1.0,
        max_attempts: Optional[int] = None,  # None: retry a failing write until it succeeds (the service)
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        consumer_overrides: Optional[dict[str, Any]] = None,
        name: str = "worker",
        heartbeat_path: Optional[Path] = None,
        on_stop: Sequence[Callable[[], None]] = (),
    ):
        self.on_stop = list(on_stop)  # e.g. the local CRM's echo thread, after the last batch
        self.kafka = kafka
        self.group_id = group_id
        self.topics = list(topics)
        self.handler = handler
        self.batch_size = batch_size
        self.max_wait_s = max_wait_s
        self.name = name
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._batch: list[Message] = []
        self._batch_started = 0.0
        self.status = WorkerStatus(
            name,
            group_id,
            self.stats,
            heartbeat_path,
            assigned=lambda: self.session.watch.assigned,
            stuck=lambda: self.writer.stuck,
        )
        self.writer = BatchWriter(
            handler,
            name,
            self.stats,
            self._stop,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            sleep=sleep,
            heartbeat=self.status.beat,
            on_retry=lambda detail: self.status.set(RETRYING_WRITE, detail),
            on_written=self.status.written_after_retries,
        )
        self.offsets = OffsetCommitter(
            name,
            on_failure=lambda detail: self.status.set(WAITING_FOR_KAFKA, detail),
            on_success=self.status.kafka_answered,
        )
        self.session = ConsumerSession(
            kafka,
            group_id,
            self.topics,
            name=name,
            stats=self.stats,
            status=self.status,
            offsets=self.offsets,
            stop=self._stop,
            flush=self._flush,
            consumer_overrides=consumer_overrides or {},
            max_backoff_s=max_backoff_s,
            sleep=sleep,
        )

    # ---- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: it writes and commits what it holds, then closes the consumer."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    @property
    def state(self) -> str:
        """What the worker is doing (`crm.heartbeat`: CONSUMING, WAITING_FOR_KAFKA, RETRYING_WRITE)."""
        return self.status.state

    def install_signal_handlers(self) -> None:
        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("%s: %s received, flushing and stopping", self.name, signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    # ---- loop ----------------------------------------------------------------------------------

    def run(self, idle_exit_s: Optional[float] = None) -> WorkerStats:
        """Run until `stop()` (or, with `idle_exit_s`, until no message came for that long)."""
        session = self.session
        session.open(on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        try:
            while not self._stop.is_set():
                self.status.beat()
                session.keep_alive()
                self.offsets.commit(session.consumer)
                for message in session.poll(room=max(1, self.batch_size - len(self._batch))):
                    if not self._batch:
                        self._batch_started = time.monotonic()
                    self._batch.append(message)
                if self._batch and (
                    len(self._batch) >= self.batch_size or time.monotonic() - self._batch_started >= self.max_wait_s
                ):
                    self._flush(session.consumer)
                if idle_exit_s is not None and not self._batch and session.idle_s() > idle_exit_s:
                    break
            self._flush(session.consumer)
            self._commit_now(session.consumer)
        finally:
            if self.offsets.pending:
                log.warning(
                    "%s: stopping with offsets not committed (Kafka unreachable); their records will be "
                    "read again and written idempotently",
                    self.name,
                )
            session.close()
            for stop in self.on_stop:
                stop()
            log.info(
                "%s: stopped after %d messages in %d batches, %d outage(s), %d reconnect(s) (%s)",
                self.name,
                self.stats.consumed,
                self.stats.batches,
                self.stats.outages,
                self.stats.reconnects,
                ", ".join(f"{k}={v}" for k, v in sorted(self.stats.counts.items())),
            )
        return self.stats

    # ---- rebalances: what the batch held becomes when partitions come and go -------------------

    def _on_assign(self, consumer: Any, partitions: list) -> None:
        self.session.assigned(partitions)

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        self._flush(consumer)
        self._commit_now(consumer)
        self.session.unassigned()

    def _on_lost(self, consumer: Any, partitions: list) -> None:
        # The partitions already belong to someone else: write what we hold (idempotent), commit nothing.
        batch, self._batch = self._batch, []
        if batch:
            self.writer.write(batch)
        self.offsets.forget()
        self.session.unassigned()

    # ---- write and commit ----------------------------------------------------------------------

    def _flush(self, consumer: Any) -> None:
        """Write the batch held, then commit its offsets (asynchronously)."""
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        counts = self.writer.write(batch)
        self.offsets.written(batch)
        self.stats.consumed += len(batch)
        self.stats.batches += 1
        self.stats.add(counts)
        if consumer is not None:
            self.offsets.commit(consumer)
        log.debug("%s: batch of %d written (%s)", self.name, len(batch), counts)

    def _commit_now(self, consumer: Any) -> None:
        """Before partitions leave (a clean stop, a rebalance) and with the broker there: commit synchronously."""
        if self.status.state != WAITING_FOR_KAFKA:
            self.offsets.commit_now(consumer)


def build_worker(
    name: str,
    kafka: KafkaResource,
    warehouse: Warehouse,
    crm: Optional[CrmResource] = None,
    *,
    topics: Optional[Sequence[str]] = None,
    score_topics: Optional[Sequence[str]] = None,
    shadow_topics: Optional[Sequence[str]] = None,
    group_id: Optional[str] = None,
    register: Optional[ErasureRegister] = None,
    profile: Optional[Profile] = None,
    **options: Any,
) -> MicroBatchWorker:
    """The named worker on the given resources.

    `topics`/`score_topics`/`shadow_topics`/`group_id` default to the pipeline's (tests pass their own to stay
    isolated); `register` (the erasure register) to the `profile`'s, keyed by its `erasure_key` (one of the two
    is needed).
    """
    if name not in WORKER_NAMES:
        raise ValueError(f"unknown worker {name!r}; one of: {', '.join(WORKER_NAMES)}")
    score_topics = list(score_topics or SCORE_TOPICS)
    shadow_topics = list(SHADOW_SCORE_TOPICS if shadow_topics is None else shadow_topics)
    if register is None:
        if profile is None:
            raise TypeError("build_worker needs a register or the profile whose erasure register the worker reads")
        register = ErasureRegister.for_profile(warehouse, profile)
    handler: BatchHandler
    if name == WRITEBACK:
        if crm is None:
            raise ValueError("the writeback worker needs a CRM resource")
        topics = list(topics or score_topics)  # never the shadow topic: a challenger's scores stay out of the CRM
        # the local CRM echoes its writes to input_raw like Salesforce (crm/echo.py), next to the topics read
        writer = crm.echoing_writer(warehouse, kafka, input_topic_of(topics))
        handler = WritebackHandler(writer, warehouse, register=register)
        defaults: dict[str, Any] = {"batch_size": 500, "max_wait_s": 0.5}  # the Salesforce writer chunks by 200
        defaults["on_stop"] = [writer.close]  # e.g. the local CRM's echo thread stops with the worker
    else:
        handler = SinkHandler(warehouse, score_topics=score_topics, shadow_topics=shadow_topics, register=register)
        defaults = {"batch_size": 2000, "max_wait_s": 2.0}
        topics = list(topics or [INPUT_RAW, *score_topics, *shadow_topics])
    options.setdefault("heartbeat_path", heartbeat_path(name))
    return MicroBatchWorker(kafka, group_id or GROUP_IDS[name], topics, handler, name=name, **{**defaults, **options})
