"""Consumer-group lag and topic end offsets: the one implementation the workers, the rollout, the stack
status and the stream sensor share.

Committed offsets are read with a consumer that never joins the group (`committed()` only), not with the
admin ListConsumerGroupOffsets: librdkafka's coordinator admin requests can abort the whole process when
a connection drops mid-request (confluentinc/librdkafka#4605), and this runs inside the Dagster code
server and the workers. One consumer per group answers metadata, committed offsets and watermarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import tenacity
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from lead_scoring.retry import backoff
from lead_scoring.streaming.kafka import KafkaResource

Partition = tuple[str, int]
OFFSETS_GROUP = "lead-scoring.offsets"  # reads only; never joins, never commits
# A group's coordinator moving or still loading (a new group, a broker just back): asked again, not reported.
COORDINATOR_BUSY = {
    KafkaError.NOT_COORDINATOR,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
}


def _coordinator_busy(exc: BaseException) -> bool:
    return (
        isinstance(exc, KafkaException)
        and bool(exc.args)
        and getattr(exc.args[0], "code", lambda: None)() in COORDINATOR_BUSY
    )


class KafkaUnavailable(RuntimeError):
    """The brokers could not be reached (or did not answer in time)."""


def _unavailable(exc: KafkaException) -> KafkaUnavailable:
    return KafkaUnavailable(str(exc.args[0]) if exc.args else str(exc))


class OffsetReader:
    """Metadata, watermarks and one group's committed offsets through a single non-joining consumer."""

    def __init__(self, consumer: Any, timeout_s: float):
        self.consumer = consumer
        self.timeout_s = timeout_s

    def partitions(self, topics: Iterable[str] | None = None) -> dict[str, int]:
        """Partitions per existing topic (all topics, or those of `topics` that exist)."""
        try:
            metadata = self.consumer.list_topics(timeout=self.timeout_s)
        except KafkaException as exc:
            raise _unavailable(exc) from exc
        wanted = set(topics) if topics is not None else None
        return {
            name: len(meta.partitions)
            for name, meta in metadata.topics.items()
            if meta.error is None and (wanted is None or name in wanted)
        }

    def committed(self, partitions: dict[str, int]) -> dict[Partition, int]:
        """The reader's group's committed offset per partition; -1 where it never committed."""
        wanted = [TopicPartition(t, p) for t, n in partitions.items() for p in range(n)]
        if not wanted:
            return {}
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.timeout_s * 2),
            wait=backoff(0.2, 2.0),
            retry=tenacity.retry_if_exception(_coordinator_busy),
            reraise=True,
        )
        try:
            committed = retrying(self.consumer.committed, wanted, timeout=self.timeout_s)
        except KafkaException as exc:
            raise _unavailable(exc) from exc
        return {(tp.topic, tp.partition): tp.offset for tp in committed}

    def watermarks(self, partitions: dict[str, int]) -> dict[Partition, tuple[int, int]]:
        """(low, high) watermark per partition."""
        try:
            return {
                (t, p): self.consumer.get_watermark_offsets(TopicPartition(t, p), timeout=self.timeout_s)
                for t, n in partitions.items()
                for p in range(n)
            }
        except KafkaException as exc:
            raise _unavailable(exc) from exc


@contextmanager
def offset_reader(kafka: KafkaResource, group: str = OFFSETS_GROUP, timeout_s: float = 5.0) -> Iterator[OffsetReader]:
    # log_level 0: an unreachable broker is reported by the caller once, not by librdkafka every second.
    consumer = kafka.consumer(group, **{"log_level": 0, "enable.partition.eof": False})
    try:
        yield OffsetReader(consumer, timeout_s)
    finally:
        consumer.close()


def lag_by_partition(committed: dict[Partition, int], marks: dict[Partition, tuple[int, int]]) -> dict[Partition, int]:
    """end - committed per partition; a partition never committed counts from its low watermark."""
    out = {}
    for key, (low, high) in marks.items():
        position = committed.get(key, -1)
        out[key] = max(0, high - (position if position >= 0 else low))
    return out


def group_lag(kafka: KafkaResource, group: str, topics: Iterable[str], timeout_s: float = 5.0) -> dict[str, int]:
    """Messages not yet committed by `group`, per topic (missing topics count 0)."""
    topics = list(topics)
    with offset_reader(kafka, group, timeout_s) as reader:
        counts = reader.partitions(topics)
        lags = lag_by_partition(reader.committed(counts), reader.watermarks(counts))
    out = dict.fromkeys(topics, 0)
    for (topic, _), lag in lags.items():
        out[topic] += lag
    return out


def end_offset(kafka: KafkaResource, topic: str, timeout_s: float = 5.0) -> int:
    """Sum of the topic's high watermarks (0 for a topic that does not exist)."""
    with offset_reader(kafka, timeout_s=timeout_s) as reader:
        return sum(high for _, high in reader.watermarks(reader.partitions([topic])).values())
