"""Long-running Kafka workers: poll -> micro-batch -> write -> commit, with a clean SIGTERM flush.

A worker commits a batch's offsets only after its handler has written the batch (at-least-once
delivery). Handlers make the effect idempotent (upsert by Id, insert-if-absent by a natural key), so
a batch replayed after a crash or a kill changes nothing twice.

`lead-scoring worker NAME` runs one; `lead-scoring stack up` starts them as managed services.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

log = logging.getLogger(__name__)

WRITEBACK = "writeback"
SINK = "sink"
WORKER_NAMES = (WRITEBACK, SINK)
GROUP_IDS = {WRITEBACK: "lead-scoring-writeback", SINK: "lead-scoring-sink"}


@dataclass(frozen=True)
class Message:
    """One consumed Kafka message, detached from the client."""

    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: Optional[int]


class BatchHandler(Protocol):
    def handle(self, batch: Sequence[Message]) -> dict[str, int]:
        """Write the batch; raise to have it retried (nothing is committed until it succeeds)."""


@dataclass
class WorkerStats:
    consumed: int = 0
    batches: int = 0
    retries: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, counts: dict[str, int]) -> None:
        for k, v in counts.items():
            self.counts[k] = self.counts.get(k, 0) + int(v)


class WorkerFailed(RuntimeError):
    """A batch could not be written after every retry; its offsets stay uncommitted."""


class MicroBatchWorker:
    """Consume `topics` in `group_id`, hand micro-batches to `handler`, commit after each success."""

    def __init__(
        self,
        kafka: Any,
        group_id: str,
        topics: Sequence[str],
        handler: BatchHandler,
        *,
        batch_size: int = 500,
        max_wait_s: float = 1.0,
        max_attempts: int = 8,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        consumer_overrides: Optional[dict[str, Any]] = None,
        name: str = "worker",
        heartbeat_path: Optional[Path] = None,
    ):
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

    # ---- loop ----------------------------------------------------------------------------------

    def run(self, idle_exit_s: Optional[float] = None) -> WorkerStats:
        """Run until `stop()` (or, with `idle_exit_s`, until no message came for that long)."""
        self._wait_for_topics()
        consumer = self.kafka.consumer(self.group_id, **{
            "topic.metadata.refresh.interval.ms": 10_000,
            # A killed worker's partitions move to its replacement after 10 s instead of 45 s.
            "session.timeout.ms": 10_000, "heartbeat.interval.ms": 2_000,
            **self.consumer_overrides})
        consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
        log.info("%s: consuming %s as group %s", self.name, ", ".join(self.topics), self.group_id)
        last_message = time.monotonic()
        try:
            while not self._stop.is_set():
                self._heartbeat()
                room = max(1, self.batch_size - len(self._batch))
                for msg in consumer.consume(num_messages=room, timeout=0.2):
                    err = msg.error()
                    if err is not None:
                        # Partition EOF and "topic not yet created" are normal; anything fatal raises.
                        if err.fatal():
                            raise WorkerFailed(f"{self.name}: fatal Kafka error: {err}")
                        log.debug("%s: %s", self.name, err)
                        continue
                    if not self._batch:
                        self._batch_started = time.monotonic()
                    ts_type, ts = msg.timestamp()
                    self._batch.append(Message(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value(),
                                               ts if ts_type != 0 else None))
                    last_message = time.monotonic()
                if self._batch and (len(self._batch) >= self.batch_size
                                    or time.monotonic() - self._batch_started >= self.max_wait_s):
                    self._flush(consumer)
                if idle_exit_s is not None and not self._batch and time.monotonic() - last_message > idle_exit_s:
                    break
            self._flush(consumer)
        finally:
            consumer.close()
            log.info("%s: stopped after %d messages in %d batches (%s)", self.name, self.stats.consumed,
                     self.stats.batches, ", ".join(f"{k}={v}" for k, v in sorted(self.stats.counts.items())))
        return self.stats

    def _on_assign(self, consumer: Any, partitions: list) -> None:
        self._assigned = len(partitions)
        self._heartbeat(force=True)

    def _on_revoke(self, consumer: Any, partitions: list) -> None:
        self._flush(consumer)
        self._assigned = 0
        self._heartbeat(force=True)

    def _heartbeat(self, force: bool = False) -> None:
        """Tell `stack up/status` the worker is alive and consuming (a file, not an admin request:
        librdkafka's coordinator admin calls can abort the asking process, librdkafka#4605)."""
        now = time.time()
        if self.heartbeat_path is None or (not force and now - self._last_heartbeat < 1.0):
            return
        self._last_heartbeat = now
        self.heartbeat_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.heartbeat_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"pid": os.getpid(), "ts": now, "assigned_partitions": self._assigned,
                                   "consumed": self.stats.consumed, "group": self.group_id}))
        tmp.replace(self.heartbeat_path)

    def _wait_for_topics(self, timeout_s: float = 180.0) -> None:
        """Create missing topics, waiting for a broker that is still starting (as under `stack up`)."""
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                ensure_topics(self.kafka, self.topics)
                return
            except KafkaException as exc:
                if self._stop.is_set() or time.monotonic() > deadline:
                    raise
                log.info("%s: waiting for Kafka (%s)", self.name, exc)
                self._sleep(1.0)

    def _flush(self, consumer: Any) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        counts = self._handle_with_retry(batch)
        from confluent_kafka import TopicPartition

        next_offsets: dict[tuple[str, int], int] = {}
        for m in batch:
            key = (m.topic, m.partition)
            next_offsets[key] = max(next_offsets.get(key, 0), m.offset + 1)
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in sorted(next_offsets.items())],
                        asynchronous=False)
        self.stats.consumed += len(batch)
        self.stats.batches += 1
        self.stats.add(counts)
        log.debug("%s: batch of %d written and committed (%s)", self.name, len(batch), counts)

    def _handle_with_retry(self, batch: list[Message]) -> dict[str, int]:
        delay = self.backoff_s
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self.handler.handle(batch)
            except Exception as exc:  # the handler's write failed: retry the same batch, commit nothing
                if attempt == self.max_attempts:
                    raise WorkerFailed(
                        f"{self.name}: batch of {len(batch)} not written after {attempt} attempts: {exc}") from exc
                self.stats.retries += 1
                log.warning("%s: writing a batch of %d failed (attempt %d/%d: %s: %s); retrying in %.1f s",
                            self.name, len(batch), attempt, self.max_attempts, type(exc).__name__, exc, delay)
                self._sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
        raise AssertionError("unreachable")  # pragma: no cover


def consumer_group_lag(kafka: Any, group_id: str, topics: Iterable[str], timeout_s: float = 5.0) -> dict[str, int]:
    """Messages not yet committed by `group_id`, per topic (end offset - committed offset).

    A partition the group never committed counts from its low watermark. Missing topics count 0.
    """
    from confluent_kafka import TopicPartition

    consumer = kafka.consumer(group_id, **{"log_level": 0})
    try:
        lag: dict[str, int] = {}
        metadata = consumer.list_topics(timeout=timeout_s)
        parts = []
        for topic in topics:
            meta = metadata.topics.get(topic)
            lag[topic] = 0
            if meta is None or meta.error is not None:
                continue
            parts += [TopicPartition(topic, p) for p in meta.partitions]
        if not parts:
            return lag
        committed = consumer.committed(parts, timeout=timeout_s)
        for tp in committed:
            low, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=timeout_s)
            position = tp.offset if tp.offset >= 0 else low
            lag[tp.topic] += max(0, high - position)
        return lag
    finally:
        consumer.close()


def build_worker(name: str, kafka: Any = None, warehouse: Any = None, crm: Any = None, *,
                 topics: Optional[Sequence[str]] = None, score_topics: Optional[Sequence[str]] = None,
                 group_id: Optional[str] = None, **options: Any) -> MicroBatchWorker:
    """The named worker with the active profile's resources (or the ones given).

    `topics`/`score_topics`/`group_id` default to the pipeline's (tests pass their own to stay isolated).
    """
    from lead_scoring.streaming import topics as t

    if name not in WORKER_NAMES:
        raise ValueError(f"unknown worker {name!r}; one of: {', '.join(WORKER_NAMES)}")
    if kafka is None or warehouse is None or (name == WRITEBACK and crm is None):
        from lead_scoring.crm.resources import resources_for_profile
        from lead_scoring.resources import build_resources

        defaults_res = {**build_resources(), **resources_for_profile()}

        def resolved(key: str) -> Any:
            # Outside a Dagster run: resolve dg.EnvVar fields now (a missing variable is named here).
            return defaults_res[key].process_config_and_initialize()

        kafka = kafka or resolved("kafka")
        warehouse = warehouse or resolved("warehouse")
        crm = crm or (resolved("crm") if name == WRITEBACK else None)
    score_topics = list(score_topics or t.SCORE_TOPICS)
    if name == WRITEBACK:
        from lead_scoring.crm.writeback import WritebackHandler

        handler: BatchHandler = WritebackHandler(crm.writer(warehouse), warehouse)
        defaults = {"batch_size": 500, "max_wait_s": 0.5}  # the Salesforce writer chunks by 200 itself
        topics = list(topics or score_topics)
    else:
        from lead_scoring.crm.sink import SinkHandler

        handler = SinkHandler(warehouse, score_topics=score_topics)
        defaults = {"batch_size": 2000, "max_wait_s": 2.0}
        topics = list(topics or [t.INPUT_RAW, *score_topics])
    options.setdefault("heartbeat_path", heartbeat_path(name))
    return MicroBatchWorker(kafka, group_id or GROUP_IDS[name], topics, handler, name=name, **{**defaults, **options})


HEARTBEAT_MAX_AGE_S = 15.0


def heartbeat_path(name: str, state_root: Any = None) -> Path:
    """Where the named worker reports that it is alive (under the state folder it writes to)."""
    from lead_scoring.settings import state_dir

    root = Path(state_root) if state_root is not None else state_dir()
    return root / "workers" / f"{name}.heartbeat.json"


def worker_topics(name: str) -> list[str]:
    """The topics the named worker reads in the pipeline (for lag)."""
    from lead_scoring.streaming import topics as t

    return list(t.SCORE_TOPICS) if name == WRITEBACK else [t.INPUT_RAW, *t.SCORE_TOPICS]


def ensure_topics(kafka: Any, topics: Sequence[str], timeout_s: float = 30.0) -> list[str]:
    """Create the missing ones of `topics` (pipeline topics with their spec); returns those created.

    Existing topics are left alone: their partitions and configs belong to the `streaming_topics` asset.
    """
    from lead_scoring.streaming.admin import ensure_topics as ensure_specs
    from lead_scoring.streaming.topics import TOPICS_BY_NAME, TopicSpec

    admin = kafka.admin()
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    missing = [TOPICS_BY_NAME.get(t) or TopicSpec(t, "created by a CRM worker", partitions=1)
               for t in topics if t not in existing]
    if not missing:
        return []
    created = [state.name for state in ensure_specs(admin, missing, timeout_s=timeout_s) if state.action == "created"]
    if created:
        log.info("created topic(s) %s", ", ".join(created))
    return created


# ------------------------------------------------------------------------------------------------
# managed by `lead-scoring stack up` (lead_scoring.stack.services calls these)


def stack_service_argv(name: str, bootstrap: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "lead_scoring.crm.workers", name, "--bootstrap", bootstrap]


def stack_service_env(state_root: Any) -> dict[str, str]:
    """The local stack's workers write the local warehouse (the stack's state root) and local CRM."""
    env = {"LEAD_SCORING_PROFILE": "local"}
    if state_root is not None:
        env["LEAD_SCORING_HOME"] = str(state_root)
    return env


def worker_health(name: str, state_root: Any = None) -> Optional[str]:
    """None when the worker's heartbeat is fresh and it holds partitions, else what is missing."""
    path = heartbeat_path(name, state_root)
    try:
        beat = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return f"no heartbeat yet at {path}"
    age = time.time() - float(beat.get("ts", 0))
    if age > HEARTBEAT_MAX_AGE_S:
        return f"last heartbeat {age:.0f} s ago"
    try:
        os.kill(int(beat["pid"]), 0)
    except (OSError, KeyError, ValueError):
        return f"worker pid {beat.get('pid')} is gone"
    if not beat.get("assigned_partitions"):
        return f"joined group {beat.get('group')} but holds no partition yet"
    return None


def worker_lag_detail(bootstrap: str, name: str) -> str:
    """`lag N` (messages not yet written and committed) for `stack status`."""
    from lead_scoring.streaming.resources import KafkaResource

    try:
        lag = consumer_group_lag(KafkaResource(bootstrap_servers=bootstrap), GROUP_IDS[name], worker_topics(name),
                                 timeout_s=3.0)
    except Exception as exc:
        return f"lag unknown ({type(exc).__name__})"
    return "lag " + ", ".join(f"{topic} {n:,}" for topic, n in lag.items())


if __name__ == "__main__":  # `python -m lead_scoring.crm.workers NAME --bootstrap HOST:PORT` (stack up)
    import typer

    from lead_scoring.cli import _configure
    from lead_scoring.crm.cli import worker as _worker_command

    _configure(verbose=False)
    typer.run(_worker_command)
