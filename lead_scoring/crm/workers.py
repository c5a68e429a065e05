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

`lead-scoring worker NAME` runs one; the stack's supervisor runs both as services.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import tenacity
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from lead_scoring.crm.echo import EchoingCrmWriter
from lead_scoring.crm.quarantine import ErrorKind, classify, describe_error
from lead_scoring.crm.resources import CrmResource, input_topic_of
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.writeback import WritebackHandler
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.retry import backoff
from lead_scoring.settings import current_profile, state_dir
from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.topics import INPUT_RAW, SCORE_TOPICS, SHADOW_SCORE_TOPICS
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

WRITEBACK = "writeback"
SINK = "sink"
WORKER_NAMES = (WRITEBACK, SINK)
GROUP_IDS = {WRITEBACK: "lead-scoring-writeback", SINK: "lead-scoring-sink"}
HEARTBEAT_MAX_AGE_S = 15.0

CONSUMING = "consuming"
WAITING_FOR_KAFKA = "waiting for Kafka"
RETRYING_WRITE = "retrying a write"
# librdkafka's signals that no broker can be reached (it keeps reconnecting on its own).
# Consuming but nothing arrived for this long: check the broker is still there (one metadata request).
IDLE_PROBE_S = 5.0
IDLE_PROBE_TIMEOUT_S = 3.0
COMMIT_STALL_S = 30.0
# Nothing arrived for this long while the broker holds records past our position: the client may be stuck
# (after a broker restart librdkafka can keep a partition without fetching it, librdkafka#5153). Confirmed by a
# second look IDLE_PROBE_S later, then the consumer is replaced by a new one in the same group.
FETCH_STALL_S = 30.0
CLOSE_TIMEOUT_S = 30.0
# A consumer can also be left holding no partition at all while the group's records wait (seen once at load 12:
# "commit failed: Waiting for coordinator", 0 partitions, lag 490 for 300 s). After FETCH_STALL_S without an
# assignment, the group's committed offsets are read twice IDLE_PROBE_S apart; records waiting behind offsets
# that did not move (or a coordinator that does not answer while the broker does) replace the consumer.
COORDINATOR_SILENT = ("(group coordinator: no answer)", -1)
_BROKER_DOWN = {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE}


@dataclass(frozen=True)
class Message:
    """One consumed Kafka message, detached from the client."""

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: Optional[int]
    headers: tuple[tuple[str, Optional[bytes]], ...] = ()


class BatchHandler(Protocol):
    def handle(self, batch: Sequence[Message]) -> dict[str, int]:
        """Write the batch; raise to have it retried or, for a permanent error, split (see `crm.quarantine`)."""

    def quarantine(self, msg: Message, error: str) -> dict[str, int]:
        """Keep one record whose write failed permanently, with the error (idempotent); raise if that fails."""


@dataclass
class WorkerStats:
    consumed: int = 0
    batches: int = 0
    retries: int = 0
    outages: int = 0
    reconnects: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict[str, int]) -> None:
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + int(v)


class WorkerFailed(RuntimeError):
    """A batch could not be written within `max_attempts`; its offsets stay uncommitted."""


class MicroBatchWorker:
    """Consume `topics` in `group_id`, hand micro-batches to `handler`, commit after each success."""

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
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self.consumer_overrides = consumer_overrides or {}
        self.name = name
        self.stats = WorkerStats()
        self._stop = threading.Event()
        self._batch: list[Message] = []
        self._batch_started = 0.0
        self.heartbeat_path = heartbeat_path
        self._assigned = 0
        self._last_heartbeat = 0.0
        self.state = WAITING_FOR_KAFKA
        self._state_since = time.time()
        self._detail = ""
        # written, not yet committed: (topic, partition) -> next offset; committed asynchronously (see _commit)
        self._pending_commit: dict[tuple[str, int], int] = {}
        self._commit_issued_at: Optional[float] = None  # an asynchronous commit in flight since then
        self._next_commit_at = 0.0
        # (topic, partition) -> the position records were waiting behind, at the first sight of a stall
        self._stall_suspect: dict[tuple[str, int], int] = {}
        self._stall_replaced: dict[tuple[str, int], int] = {}  # what the last replacement was for
        self._stuck: Optional[dict[str, Any]] = None  # the batch whose write is being retried (heartbeat)
        self._unassigned_since: Optional[float] = None  # monotonic time the consumer was first seen empty-handed
        self._group_suspect: dict[tuple[str, int], int] = {}  # the group's waiting offsets at the last look
        self._last_group_look = 0.0

    # ---- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish: it writes and commits what it holds, then closes the consumer."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def install_signal_handlers(self) -> None:
        def _on_signal(signum: int, _frame: Any) -> None:
            log.info("%s: %s received, flushing and stopping", self.name, signal.Signals(signum).name)
            self.stop()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)

    def _set_state(self, state: str, detail: str = "") -> None:
        """One log line per change of state, never one per retry."""
        if state != self.state:
            since = time.time() - self._state_since
            if state == WAITING_FOR_KAFKA:
                self.stats.outages += 1
                log.warning("%s: waiting for Kafka (%s); nothing is committed until it is back", self.name, detail)
            elif self.state == WAITING_FOR_KAFKA:
                log.info("%s: Kafka is back after %.0f s; %s", self.name, since, state)
            elif state == RETRYING_WRITE:
                log.warning("%s: writing a batch failed (%s); retrying with backoff", self.name, detail)
            else:
                log.info("%s: %s", self.name, state)
            self.state, self._state_since = state, time.time()
        self._detail = detail
        self._heartbeat(force=True)

    def _on_kafka_error(self, err: KafkaError) -> None:
        # error_cb runs inside poll/consume on this thread
        if err.code() in _BROKER_DOWN:
            self._set_state(WAITING_FOR_KAFKA, err.str())
        elif err.fatal():
            log.error("%s: fatal Kafka error: %s", self.name, err)
        else:
            log.debug("%s: %s", self.name, err)

    # ---- loop ----------------------------------------------------------------------------------

    def run(self, idle_exit_s: Optional[float] = None) -> WorkerStats:
        """Run until `stop()` (or, with `idle_exit_s`, until no message came for that long)."""
        self._wait_for_topics()
        consumer = self._subscribe()
        last_message = time.monotonic()
        try:
            last_probe = 0.0
            while not self._stop.is_set():
                self._heartbeat()
                now = time.monotonic()
                if self._left_without_partitions(consumer, now):
                    stalled, consumer = consumer, None
                    self._retire(stalled, self._group_suspect, f"no partition assigned for {FETCH_STALL_S:.0f} s")
                    consumer = self._subscribe()
                    last_message = time.monotonic()
                elif self.state == WAITING_FOR_KAFKA and now - last_probe > 2.0:
                    last_probe = now
                    self._probe_broker(consumer)
                elif self.state == CONSUMING and now - max(last_message, last_probe) > IDLE_PROBE_S:
                    # librdkafka does not always call error_cb when the only broker goes away from an idle
                    # client: with nothing arriving, ask for metadata to know whether we are idle or cut off.
                    last_probe = now
                    # At most one stall check per IDLE_PROBE_S: this branch only runs that often.
                    if (
                        self._check_broker(consumer)
                        and now - last_message > FETCH_STALL_S
                        and self._fetch_stalled(consumer)
                    ):
                        stalled, consumer = consumer, None
                        self._retire(
                            stalled, self._stall_suspect, f"none arrived for {FETCH_STALL_S:.0f} s with the broker up"
                        )
                        consumer = self._subscribe()
                        last_message = time.monotonic()
                if self._pending_commit:
                    self._commit(consumer)
                room = max(1, self.batch_size - len(self._batch))
                for msg in consumer.consume(num_messages=room, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        # Partition EOF and "topic not yet created" are normal; outages come through error_cb.
                        if err.fatal():
                            raise WorkerFailed(f"{self.name}: fatal Kafka error: {err}")
                        log.debug("%s: %s", self.name, err)
                        continue
                    if self.state == WAITING_FOR_KAFKA:
                        self._set_state(CONSUMING)
                    if not self._batch:
                        self._batch_started = time.monotonic()
                    ts_type, ts = msg.timestamp()
                    self._batch.append(
                        Message(
                            msg.topic(),
                            msg.partition(),
                            msg.offset(),
                            msg.key(),
                            msg.value(),
                            ts if ts_type != 0 else None,
                            tuple(msg.headers() or ()),
                        )
                    )
                    last_message = time.monotonic()
                    self._stall_suspect = {}
                if self._batch and (
                    len(self._batch) >= self.batch_size or time.monotonic() - self._batch_started >= self.max_wait_s
                ):
                    self._flush(consumer)
                if idle_exit_s is not None and not self._batch and time.monotonic() - last_message > idle_exit_s:
                    break
            self._flush(consumer)
            self._commit_now(consumer)
        finally:
            if self._pending_commit:
                log.warning(
                    "%s: stopping with offsets not committed (Kafka unreachable); their records will be "
                    "read again and written idempotently",
                    self.name,
                )
            if consumer is not None:  # None: a stalled consumer that would not close (see _retire)
                consumer.close()
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

    def _subscribe(self) -> Any:
        consumer = self.kafka.consumer(
            self.group_id,
            **{
                "topic.metadata.refresh.interval.ms": 10_000,
                # A killed worker's partitions move to its replacement after 10 s instead of 45 s.
                "session.timeout.ms": 10_000,
                "heartbeat.interval.ms": 2_000,
                # A request in flight when the broker goes away fails after 10 s, not librdkafka's 60 s.
                "socket.timeout.ms": 10_000,
                # Our own words for outages (error_cb, one line per change), not librdkafka's line per retry.
                "log_level": 0,
                "error_cb": self._on_kafka_error,
                "on_commit": self._on_commit,
                **self.consumer_overrides,
            },
        )
        consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        self._unassigned_since = None
        log.info("%s: consuming %s as group %s", self.name, ", ".join(self.topics), self.group_id)
        return consumer

    def _check_broker(self, consumer: Any) -> bool:
        """While consuming but idle: a failed metadata request means the broker is gone, not the traffic."""
        try:
            consumer.list_topics(topic=self.topics[0], timeout=IDLE_PROBE_TIMEOUT_S)
        except KafkaException as exc:
            self._set_state(WAITING_FOR_KAFKA, f"metadata request failed: {exc.args[0] if exc.args else exc}")
            return False
        return True

    def _fetch_stalled(self, consumer: Any) -> bool:
        """True when, at two looks IDLE_PROBE_S apart with nothing consumed between them, the broker held records
        past our position on the same partitions (and a replacement was not already made for exactly those)."""
        try:
            waiting = self._records_waiting(consumer)
        except KafkaException as exc:
            log.debug("%s: could not read the partitions' offsets: %s", self.name, exc)
            return False
        suspect, self._stall_suspect = self._stall_suspect, waiting
        if not waiting or waiting != suspect:
            return False
        # A new consumer stopped at the very positions of the last replacement: not a stuck client but records no
        # consumer may read (transaction markers, aborted transactions under read_committed).
        return waiting != self._stall_replaced

    def _left_without_partitions(self, consumer: Any, now: float) -> bool:
        """True when the consumer has held no partition for FETCH_STALL_S, the broker answers, and at two looks
        IDLE_PROBE_S apart the group's records waited behind the same committed offsets (nobody in the group
        moved them) or the group coordinator did not answer. A member left idle by a larger group passes: the
        member that holds the partitions moves their offsets."""
        self._assigned = len(consumer.assignment())  # the client's own view (heartbeat), not the callbacks'
        if self._assigned:
            self._unassigned_since = None
            return False
        if self._unassigned_since is None:
            self._unassigned_since = now
        if now - self._unassigned_since < FETCH_STALL_S or now - self._last_group_look < IDLE_PROBE_S:
            return False
        self._last_group_look = now
        try:
            consumer.list_topics(topic=self.topics[0], timeout=IDLE_PROBE_TIMEOUT_S)
        except KafkaException:
            return False  # the broker is away: waiting for Kafka, not a stuck client
        try:
            waiting = self._group_waiting(consumer)
        except KafkaException as exc:
            log.debug("%s: could not read the topics' offsets: %s", self.name, exc)
            return False
        suspect, self._group_suspect = self._group_suspect, waiting
        return bool(waiting) and waiting == suspect and waiting != self._stall_replaced

    def _group_waiting(self, consumer: Any) -> dict[tuple[str, int], int]:
        """(topic, partition) -> the group's committed offset, for each partition of our topics whose log ends
        beyond it; `COORDINATOR_SILENT` when the committed offsets cannot be read."""
        metadata = consumer.list_topics(timeout=IDLE_PROBE_TIMEOUT_S)
        partitions = [
            TopicPartition(topic, p)
            for topic in self.topics
            if topic in metadata.topics
            for p in metadata.topics[topic].partitions
        ]
        try:
            committed = consumer.committed(partitions, timeout=IDLE_PROBE_TIMEOUT_S)
        except KafkaException:
            return {COORDINATOR_SILENT: -1}
        waiting = {}
        for tp in committed:
            low, high = consumer.get_watermark_offsets(tp, timeout=IDLE_PROBE_TIMEOUT_S, cached=False)
            start = max(tp.offset, low)  # none committed (-1001) or below the log's start: it starts there
            if high > start:
                waiting[(tp.topic, tp.partition)] = start
        return waiting

    def _records_waiting(self, consumer: Any) -> dict[tuple[str, int], int]:
        """(topic, partition) -> our position, for each assigned partition whose log ends beyond it."""
        assignment = consumer.assignment()
        if not assignment:
            return {}
        positions = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(assignment)}
        unread = [tp for tp in assignment if positions[(tp.topic, tp.partition)] < 0]
        if unread:  # nothing consumed since the assignment: it starts from the committed offset
            for tp in consumer.committed(unread, timeout=IDLE_PROBE_TIMEOUT_S):
                positions[(tp.topic, tp.partition)] = tp.offset
        waiting = {}
        for tp in assignment:
            key = (tp.topic, tp.partition)
            low, high = consumer.get_watermark_offsets(tp, timeout=IDLE_PROBE_TIMEOUT_S, cached=False)
            start = max(positions[key], low)  # below the log's start (or none committed): it starts there
            if high > start:
                waiting[key] = start
        return waiting

    def _retire(self, consumer: Any, waiting: dict[tuple[str, int], int], why: str) -> None:
        """Close a consumer that stopped fetching (a new one in the group takes over); what it holds is written
        and committed on the way out, as on any revocation."""
        log.warning(
            "%s: records are waiting on %s but %s; replacing the Kafka consumer",
            self.name,
            ", ".join(f"{t}[{p}]@{o}" if p >= 0 else t for (t, p), o in sorted(waiting.items())),
            why,
        )
        self.stats.reconnects += 1
        self._stall_replaced, self._stall_suspect, self._group_suspect = waiting, {}, {}
        self._flush(consumer)
        # close() revokes (a synchronous commit) and may hang on a wedged client: bounded, on a side thread
        closing = threading.Thread(target=consumer.close, name=f"{self.name}-close", daemon=True)
        closing.start()
        closing.join(CLOSE_TIMEOUT_S)
        if closing.is_alive():
            # beyond closing: only a new process gets a clean client (the supervisor restarts the worker)
            raise WorkerFailed(f"{self.name}: the stalled Kafka consumer did not close within {CLOSE_TIMEOUT_S:.0f} s")
        self._assigned = 0
        self._heartbeat(force=True)

    def _probe_broker(self, consumer: Any) -> None:
        """While waiting: a cheap metadata request tells when the broker is back, even on an idle topic."""
        try:
            consumer.list_topics(topic=self.topics[0], timeout=1.0)
        except KafkaException:
            return
        self._set_state(CONSUMING)

    def _on_assign(self, consumer: Any, partitions: list) -> None:
        self._assigned = len(partitions)
        self._set_state(CONSUMING)

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        self._flush(consumer)
        self._commit_now(consumer)
        self._assigned = 0
        self._heartbeat(force=True)

    def _on_lost(self, consumer: Any, partitions: list) -> None:
        # The partitions already belong to someone else: write what we hold (idempotent), commit nothing.
        batch, self._batch = self._batch, []
        if batch:
            self._write(batch)
        self._pending_commit = {}
        self._assigned = 0
        self._heartbeat(force=True)

    def _heartbeat(self, force: bool = False) -> None:
        """Tell `stack status` the worker is alive and what it is doing (a file, not an admin request:
        librdkafka's coordinator admin calls can abort the asking process, librdkafka#4605)."""
        now = time.time()
        if self.heartbeat_path is None or (not force and now - self._last_heartbeat < 1.0):
            return
        self._last_heartbeat = now
        self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.heartbeat_path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "ts": now,
                    "assigned_partitions": self._assigned,
                    "consumed": self.stats.consumed,
                    "group": self.group_id,
                    "state": self.state,
                    "since": self._state_since,
                    "detail": self._detail[:300],
                    "outages": self.stats.outages,
                    "reconnects": self.stats.reconnects,
                    "stuck": self._stuck,
                    "quarantined": self.stats.counts.get("quarantined", 0),
                }
            )
        )
        tmp.replace(self.heartbeat_path)

    def _wait_for_topics(self) -> None:
        """Create missing topics, waiting (forever, with backoff) for a broker that is down or still starting."""
        for attempt in tenacity.Retrying(
            wait=backoff(1.0, self.max_backoff_s),
            sleep=self._sleep,
            retry=tenacity.retry_if_exception_type(KafkaException),
        ):
            with attempt:
                if self._stop.is_set():
                    return
                try:
                    created = ensure_topics(self.kafka.admin(**{"log_level": 0}), self.topics, only_missing=True)
                except KafkaException as exc:
                    self._set_state(WAITING_FOR_KAFKA, str(exc.args[0]) if exc.args else str(exc))
                    raise
                if created:
                    log.info("%s: created topic(s) %s", self.name, ", ".join(s.name for s in created))

    def _flush(self, consumer: Any) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        counts = self._write(batch)
        for m in batch:
            key = (m.topic, m.partition)
            self._pending_commit[key] = max(self._pending_commit.get(key, 0), m.offset + 1)
        self.stats.consumed += len(batch)
        self.stats.batches += 1
        self.stats.add(counts)
        self._commit(consumer)
        log.debug("%s: batch of %d written (%s)", self.name, len(batch), counts)

    def _commit(self, consumer: Any) -> None:
        """Commit what was written, asynchronously; the result arrives in `_on_commit` during `consume`.

        Never synchronously: librdkafka defers a commit issued while no broker is up until a coordinator is
        found again (librdkafka#3740), so a synchronous one held the loop, and with it the heartbeat's
        "waiting for Kafka", for the whole outage. A commit that got no answer for COMMIT_STALL_S is issued
        again (a later commit of the same partitions supersedes it)."""
        now = time.monotonic()
        if not self._pending_commit or now < self._next_commit_at:
            return
        if self._commit_issued_at is not None and now - self._commit_issued_at < COMMIT_STALL_S:
            return
        try:
            consumer.commit(offsets=self._pending_offsets(), asynchronous=True)
        except KafkaException as exc:
            self._commit_failed(exc.args[0] if exc.args else None, str(exc))
            return
        self._commit_issued_at = now

    def _pending_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self._pending_commit.items())]

    def _on_commit(self, err: Optional[KafkaError], partitions: list) -> None:
        # on_commit runs inside poll/consume on this thread
        self._commit_issued_at = None
        failed = err if err is not None else next((tp.error for tp in partitions if tp.error is not None), None)
        for tp in partitions if err is None else ():
            key = (tp.topic, tp.partition)
            if tp.error is None and tp.offset >= self._pending_commit.get(key, tp.offset + 1):
                del self._pending_commit[key]
        if failed is not None:
            self._commit_failed(failed, failed.str() if isinstance(failed, KafkaError) else str(failed))
        elif self.state == WAITING_FOR_KAFKA:
            self._set_state(CONSUMING)

    def _commit_failed(self, err: Any, detail: str) -> None:
        code = err.code() if isinstance(err, KafkaError) else None
        if code in (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID):
            self._pending_commit = {}  # no longer ours: the new owner re-reads them (idempotent writes)
            return
        self._next_commit_at = time.monotonic() + 1.0
        self._set_state(WAITING_FOR_KAFKA, f"commit failed: {detail}")

    def _commit_now(self, consumer: Any) -> None:
        """Before partitions leave (a clean stop, a rebalance) and with the broker there: commit synchronously,
        so whoever reads them next starts after what was written."""
        if not self._pending_commit or self.state == WAITING_FOR_KAFKA:
            return
        try:
            consumer.commit(offsets=self._pending_offsets(), asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: final commit failed (%s)", self.name, exc)
            return
        self._pending_commit = {}

    def _write(self, batch: list[Message]) -> dict[str, int]:
        """Write the batch, isolating and quarantining records that fail on their own; retry transient failures
        (with backoff, heartbeating, until `max_attempts` or a stop) and commit nothing until it is written."""
        stop = tenacity.stop_after_attempt(self.max_attempts) if self.max_attempts else tenacity.stop_never
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(stop, lambda _state: self._stop.is_set()),
            wait=backoff(self.backoff_s, self.max_backoff_s),
            sleep=self._sleep_heartbeating,
            reraise=True,
            before_sleep=lambda state: self._on_write_failure(batch, state),
        )
        try:
            counts = retrying(self._write_isolating, batch)
        except Exception as exc:  # still failing after max_attempts, or asked to stop meanwhile: commit nothing
            why = "the worker is stopping" if self._stop.is_set() else f"{self.max_attempts} attempts"
            raise WorkerFailed(
                f"{self.name}: batch of {len(batch)} not written ({why}): {describe_error(exc)}"
            ) from exc
        if self._stuck is not None:
            log.info(
                "%s: the batch at %s[%s]@%s is written after %.0f s",
                self.name,
                self._stuck["topic"],
                self._stuck["partition"],
                self._stuck["offset"],
                time.time() - self._stuck["since"],
            )
            self._stuck = None
        if self.state == RETRYING_WRITE:
            self._set_state(CONSUMING)
        return counts

    def _write_isolating(self, batch: list[Message]) -> dict[str, int]:
        """`handler.handle(batch)`; on a permanent error, the two halves on their own, down to the one record
        that fails, which is quarantined (each write is idempotent, so a half written twice changes nothing)."""
        try:
            return self.handler.handle(batch)
        except Exception as exc:
            if classify(exc) is ErrorKind.TRANSIENT:
                raise
            if len(batch) == 1:
                error = describe_error(exc)
                log.warning(
                    "%s: record %s[%d]@%d cannot be written (%s); quarantined",
                    self.name,
                    batch[0].topic,
                    batch[0].partition,
                    batch[0].offset,
                    type(exc).__name__,
                )
                return self.handler.quarantine(batch[0], error)
        middle = len(batch) // 2
        counts = WorkerStats()
        counts.add(self._write_isolating(batch[:middle]))
        counts.add(self._write_isolating(batch[middle:]))
        return counts.counts

    def _sleep_heartbeating(self, seconds: float) -> None:
        """The backoff between write attempts, in slices of at most a second with a heartbeat after each (a
        30 s backoff must not read as a dead worker), cut short when the worker is asked to stop."""
        remaining = seconds
        while remaining > 0 and not self._stop.is_set():
            step = min(1.0, remaining)
            self._sleep(step)
            remaining -= step
            self._heartbeat()

    def _on_write_failure(self, batch: list[Message], state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        error = describe_error(exc) if exc is not None else "unknown error"
        first = batch[0]
        since = self._stuck["since"] if self._stuck is not None else time.time()
        # the batch's first record: its offset is where the group's committed position stays until this is written
        self._stuck = {
            "topic": first.topic,
            "partition": first.partition,
            "offset": first.offset,
            "since": since,
            "error": error,
        }
        self._set_state(RETRYING_WRITE, f"batch of {len(batch)}, attempt {state.attempt_number}: {error}")


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
    **options: Any,
) -> MicroBatchWorker:
    """The named worker on the given resources.

    `topics`/`score_topics`/`shadow_topics`/`group_id` default to the pipeline's (tests pass their own to stay
    isolated); `register` (the erasure register) to the profile's, keyed by its `erasure_key`.
    """
    if name not in WORKER_NAMES:
        raise ValueError(f"unknown worker {name!r}; one of: {', '.join(WORKER_NAMES)}")
    score_topics = list(score_topics or SCORE_TOPICS)
    shadow_topics = list(SHADOW_SCORE_TOPICS if shadow_topics is None else shadow_topics)
    register = register or ErasureRegister.for_profile(warehouse, current_profile())
    handler: BatchHandler
    if name == WRITEBACK:
        if crm is None:
            raise ValueError("the writeback worker needs a CRM resource")
        topics = list(topics or score_topics)  # never the shadow topic: a challenger's scores stay out of the CRM
        # the local CRM echoes its writes to input_raw like Salesforce (crm/echo.py), next to the topics read
        writer = crm.echoing_writer(warehouse, kafka, input_topic_of(topics))
        handler = WritebackHandler(writer, warehouse, register=register)
        defaults: dict[str, Any] = {"batch_size": 500, "max_wait_s": 0.5}  # the Salesforce writer chunks by 200
        if isinstance(writer, EchoingCrmWriter):  # its echo thread stops with the worker
            defaults["on_stop"] = [writer.close]
    else:
        handler = SinkHandler(warehouse, score_topics=score_topics, shadow_topics=shadow_topics, register=register)
        defaults = {"batch_size": 2000, "max_wait_s": 2.0}
        topics = list(topics or [INPUT_RAW, *score_topics, *shadow_topics])
    options.setdefault("heartbeat_path", heartbeat_path(name))
    return MicroBatchWorker(kafka, group_id or GROUP_IDS[name], topics, handler, name=name, **{**defaults, **options})


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
