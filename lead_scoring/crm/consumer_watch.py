"""Is the Kafka consumer still fetching? What a worker asks while nothing arrives.

librdkafka does not always report the loss of an idle client's only broker, and it can be left stuck without
saying so: after a broker restart it may keep a partition without fetching it (librdkafka#5153), and once, at
load 12, a consumer sat with no partition at all ("commit failed: Waiting for coordinator", lag 490 for 300 s).
Each suspicion is confirmed by a second look IDLE_PROBE_S later with nothing moved; the worker then replaces the
consumer by a new one in the same group. A replacement made for exactly the same positions is not made again:
a consumer stopped there again is not stuck but in front of records no consumer may read (transaction markers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional

from confluent_kafka import KafkaException, TopicPartition

log = logging.getLogger(__name__)

# Consuming but nothing arrived for this long: check the broker is still there (one metadata request).
IDLE_PROBE_S = 5.0
IDLE_PROBE_TIMEOUT_S = 3.0
# Nothing arrived for this long while the broker holds records past our position (or: no partition assigned for
# this long while the group's records wait): the client may be stuck.
FETCH_STALL_S = 30.0
COORDINATOR_SILENT = ("(group coordinator: no answer)", -1)

Positions = dict[tuple[str, int], int]  # (topic, partition) -> the offset records wait behind


def describe(positions: Positions) -> str:
    return ", ".join(f"{t}[{p}]@{o}" if p >= 0 else t for (t, p), o in sorted(positions.items()))


class _LastLook:
    """The positions one stall check saw at its previous look (empty: no suspicion yet)."""

    def __init__(self) -> None:
        self.positions: Positions = {}


class ConsumerWatch:
    """The stall checks of one worker's consumer; `assigned` is the client's own count of its partitions."""

    def __init__(self, name: str, topics: Sequence[str]):
        self.name = name
        self.topics = list(topics)
        self.assigned = 0
        self._fetch_suspect = _LastLook()  # our positions at the last look, when records waited past them
        self._group_suspect = _LastLook()  # the group's committed offsets at the last look
        self._replaced: Positions = {}  # what the last replacement was for
        self._unassigned_since: Optional[float] = None  # monotonic time the consumer was first seen empty-handed
        self._last_group_look = 0.0

    def subscribed(self) -> None:
        self._unassigned_since = None
        self.assigned = 0

    def message_arrived(self) -> None:
        self._fetch_suspect = _LastLook()

    def replaced(self, positions: Positions) -> None:
        self._replaced, self._fetch_suspect, self._group_suspect = positions, _LastLook(), _LastLook()
        self.assigned = 0

    def broker_error(self, consumer: Any, timeout_s: float = IDLE_PROBE_TIMEOUT_S) -> Optional[str]:
        """None when the broker answers a metadata request, else why not."""
        try:
            consumer.list_topics(topic=self.topics[0], timeout=timeout_s)
        except KafkaException as exc:
            return f"metadata request failed: {exc.args[0] if exc.args else exc}"
        return None

    def fetch_stalled(self, consumer: Any) -> Optional[Positions]:
        """The positions, when at two looks IDLE_PROBE_S apart with nothing consumed between them the broker held
        records past our position on the same partitions; else None."""
        return self._confirmed(self._fetch_suspect, self._records_waiting, consumer, "the partitions' offsets")

    def left_without_partitions(self, consumer: Any, now: float) -> Optional[Positions]:
        """The group's waiting offsets, when the consumer has held no partition for FETCH_STALL_S, the broker
        answers, and at two looks IDLE_PROBE_S apart the group's records waited behind the same committed offsets
        (nobody in the group moved them) or the coordinator did not answer; else None. A member left idle by a
        larger group is not stuck: the member holding the partitions moves their offsets."""
        self.assigned = len(consumer.assignment())
        if self.assigned:
            self._unassigned_since = None
            return None
        if self._unassigned_since is None:
            self._unassigned_since = now
        if now - self._unassigned_since < FETCH_STALL_S or now - self._last_group_look < IDLE_PROBE_S:
            return None
        self._last_group_look = now
        if self.broker_error(consumer) is not None:
            return None  # the broker is away: waiting for Kafka, not a stuck client
        return self._confirmed(self._group_suspect, self._group_waiting, consumer, "the topics' offsets")

    def _confirmed(
        self, last_look: _LastLook, look: Callable[[Any], Positions], consumer: Any, what: str
    ) -> Optional[Positions]:
        """What `look` sees now, when records wait and the previous look saw the same (nothing moved between the
        two) and no replacement was made for exactly these positions already; else None."""
        try:
            waiting = look(consumer)
        except KafkaException as exc:
            log.debug("%s: could not read %s: %s", self.name, what, exc)
            return None
        suspect, last_look.positions = last_look.positions, waiting
        return waiting if waiting and waiting == suspect and waiting != self._replaced else None

    def _records_waiting(self, consumer: Any) -> Positions:
        """Our position, for each assigned partition whose log ends beyond it."""
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

    def _group_waiting(self, consumer: Any) -> Positions:
        """The group's committed offset, for each partition of our topics whose log ends beyond it;
        `COORDINATOR_SILENT` when the committed offsets cannot be read."""
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
