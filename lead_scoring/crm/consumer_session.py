"""A worker's Kafka consumer over its whole life: topics created, subscribed, polled, watched, and replaced when it
stops fetching.

Kept apart from `crm.workers` (the batcher: hold a micro-batch, write it, commit it) so that the loop there reads
as poll -> batch -> write -> commit, and everything about keeping a consumer that works is here: waiting for a
broker that is down or still starting, probing it while nothing arrives (librdkafka does not always report the
loss of an idle client's only broker), and replacing a consumer `crm.consumer_watch` finds stuck.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import tenacity
from confluent_kafka import KafkaException

from lead_scoring.crm import consumer_watch
from lead_scoring.crm.batches import Message, WorkerFailed, WorkerStats
from lead_scoring.crm.consumer_watch import ConsumerWatch, Positions, describe
from lead_scoring.crm.heartbeat import CONSUMING, WAITING_FOR_KAFKA
from lead_scoring.crm.offsets import OffsetCommitter
from lead_scoring.crm.worker_status import WorkerStatus
from lead_scoring.retry import backoff
from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.kafka import KafkaResource

log = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 30.0
# While waiting for Kafka: a cheap metadata request this often tells when the broker is back, even on an idle topic.
PROBE_WHILE_WAITING_S = 2.0

RebalanceCallback = Callable[[Any, list], None]  # (consumer, partitions), as confluent_kafka calls it


class ConsumerSession:
    """The Kafka consumer of worker `name` in `group_id`: `open` subscribes (creating missing topics first),
    `keep_alive` runs once per turn of the worker's loop, `poll` returns the records that arrived, `close` ends it.

    What a rebalance means for the records held is the worker's business: it passes its callbacks, and tells the
    session about the assignment with `assigned` / `unassigned`. A stuck consumer is replaced after `flush` has
    written and committed what the worker holds, as on any revocation."""

    def __init__(
        self,
        kafka: KafkaResource,
        group_id: str,
        topics: Sequence[str],
        *,
        name: str,
        stats: WorkerStats,
        status: WorkerStatus,
        offsets: OffsetCommitter,
        stop: threading.Event,
        flush: Callable[[Any], None],
        consumer_overrides: dict[str, Any],
        max_backoff_s: float,
        sleep: Callable[[float], None],
    ):
        self.kafka = kafka
        self.group_id = group_id
        self.topics = list(topics)
        self.name = name
        self.stats = stats
        self.status = status
        self.offsets = offsets
        self._stop = stop
        self._flush = flush
        self.consumer_overrides = consumer_overrides
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self.watch = ConsumerWatch(name, self.topics)
        self.consumer: Any = None
        self._rebalance: dict[str, RebalanceCallback] = {}
        self.last_message = time.monotonic()
        self._last_probe = 0.0

    def open(self, on_assign: RebalanceCallback, on_revoke: RebalanceCallback, on_lost: RebalanceCallback) -> None:
        """Create missing topics (waiting for the broker), then subscribe with the worker's rebalance callbacks."""
        self._rebalance = {"on_assign": on_assign, "on_revoke": on_revoke, "on_lost": on_lost}
        self._wait_for_topics()
        self._subscribe()
        self.last_message = time.monotonic()

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()

    # ---- the assignment, as the worker's rebalance callbacks report it ----------------------------------

    def assigned(self, partitions: list) -> None:
        self.watch.assigned = len(partitions)
        self.status.set(CONSUMING)

    def unassigned(self) -> None:
        self.watch.assigned = 0
        self.status.beat(force=True)

    # ---- each turn of the loop --------------------------------------------------------------------------

    def idle_s(self) -> float:
        """How long ago the last record arrived (or the consumer was subscribed or replaced)."""
        return time.monotonic() - self.last_message

    def keep_alive(self) -> None:
        """Replace a consumer left without partitions or no longer fetching; probe the broker while waiting for
        it, and while nothing arrives (to tell "idle" from "cut off")."""
        now = time.monotonic()
        idle_probe_s = consumer_watch.IDLE_PROBE_S  # read from the module, like FETCH_STALL_S: tests shorten those
        stuck_at = self.watch.left_without_partitions(self.consumer, now)
        if stuck_at is not None:
            self._replace(stuck_at, f"no partition assigned for {consumer_watch.FETCH_STALL_S:.0f} s")
        elif self.status.state == WAITING_FOR_KAFKA and now - self._last_probe > PROBE_WHILE_WAITING_S:
            self._last_probe = now
            if self.watch.broker_error(self.consumer, timeout_s=1.0) is None:
                self.status.set(CONSUMING)
        elif self.status.state == CONSUMING and now - max(self.last_message, self._last_probe) > idle_probe_s:
            # librdkafka does not always call error_cb when the only broker goes away from an idle client: with
            # nothing arriving, ask for metadata to know whether we are idle or cut off.
            # At most one stall check per IDLE_PROBE_S: this branch only runs that often.
            self._last_probe = now
            if self.check_broker() and now - self.last_message > consumer_watch.FETCH_STALL_S:
                stuck_at = self.watch.fetch_stalled(self.consumer)
                if stuck_at is not None:
                    self._replace(stuck_at, f"none arrived for {consumer_watch.FETCH_STALL_S:.0f} s with the broker up")

    def poll(self, room: int) -> list[Message]:
        """At most `room` records, waiting up to 0.2 s for the first."""
        received = []
        for msg in self.consumer.consume(num_messages=room, timeout=0.2):
            err = msg.error()
            if err is not None:
                # Partition EOF and "topic not yet created" are normal; outages come through error_cb.
                if err.fatal():
                    raise WorkerFailed(f"{self.name}: fatal Kafka error: {err}")
                log.debug("%s: %s", self.name, err)
                continue
            if self.status.state == WAITING_FOR_KAFKA:
                self.status.set(CONSUMING)
            ts_type, ts = msg.timestamp()
            received.append(
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
            self.last_message = time.monotonic()
            self.watch.message_arrived()
        return received

    def check_broker(self) -> bool:
        """While consuming but idle: a failed metadata request means the broker is gone, not the traffic."""
        error = self.watch.broker_error(self.consumer)
        if error is not None:
            self.status.set(WAITING_FOR_KAFKA, error)
        return error is None

    # ---- subscribing and replacing ----------------------------------------------------------------------

    def _subscribe(self) -> None:
        self.consumer = self.kafka.consumer(
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
                "error_cb": self.status.on_kafka_error,
                "on_commit": self.offsets.on_commit,
                **self.consumer_overrides,
            },
        )
        self.consumer.subscribe(self.topics, **self._rebalance)
        self.watch.subscribed()
        log.info("%s: consuming %s as group %s", self.name, ", ".join(self.topics), self.group_id)

    def _replace(self, positions: Positions, why: str) -> None:
        """Close a stuck consumer (a new one in the group takes over) and subscribe a new one; what the worker
        holds is written and committed on the way out, as on any revocation."""
        log.warning(
            "%s: records are waiting on %s but %s; replacing the Kafka consumer", self.name, describe(positions), why
        )
        self.stats.reconnects += 1
        self.watch.replaced(positions)
        self._flush(self.consumer)
        # close() revokes (a synchronous commit) and may hang on a wedged client: bounded, on a side thread
        closing = threading.Thread(target=self.consumer.close, name=f"{self.name}-close", daemon=True)
        closing.start()
        closing.join(CLOSE_TIMEOUT_S)
        if closing.is_alive():
            # beyond closing: only a new process gets a clean client (the supervisor restarts the worker); the
            # wedged client is dropped, so the worker's way out does not call close() on it again and hang there
            self.consumer = None
            raise WorkerFailed(f"{self.name}: the stalled Kafka consumer did not close within {CLOSE_TIMEOUT_S:.0f} s")
        self.status.beat(force=True)
        self._subscribe()
        self.last_message = time.monotonic()

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
                    self.status.set(WAITING_FOR_KAFKA, str(exc.args[0]) if exc.args else str(exc))
                    raise
                if created:
                    log.info("%s: created topic(s) %s", self.name, ", ".join(s.name for s in created))
