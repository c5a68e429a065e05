"""Offsets and lag: a coordinator that is moving or still loading is asked again; a dead broker is reported."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from lead_scoring.streaming.lag import KafkaUnavailable, OffsetReader, lag_by_partition


class Consumer:
    """A consumer whose `committed()` fails with `errors` first (the shape librdkafka raises), then answers."""

    def __init__(self, errors: list[int]):
        self.errors = list(errors)
        self.calls = 0

    def committed(self, partitions: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        self.calls += 1
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return [TopicPartition(tp.topic, tp.partition, 10 * (tp.partition + 1)) for tp in partitions]


def test_a_busy_coordinator_is_asked_again() -> None:
    consumer = Consumer([KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS])
    got = OffsetReader(consumer, timeout_s=5.0).committed({"leads": 2})
    assert got == {("leads", 0): 10, ("leads", 1): 20} and consumer.calls == 3


def test_an_unreachable_broker_is_reported_at_once() -> None:
    consumer = Consumer([KafkaError._TRANSPORT])
    with pytest.raises(KafkaUnavailable):
        OffsetReader(consumer, timeout_s=5.0).committed({"leads": 1})
    assert consumer.calls == 1


def test_lag_counts_a_never_committed_partition_from_its_low_watermark() -> None:
    lag = lag_by_partition({("t", 0): 5, ("t", 1): -1}, {("t", 0): (0, 9), ("t", 1): (3, 7)})
    assert lag == {("t", 0): 4, ("t", 1): 4}
