"""Is a Kafka producer stuck, or waiting for a broker that is away?

Seen after a broker restart: "Failed to acquire idempotence PID from broker ...: Coordinator load in progress:
retrying", then 358 messages never acknowledged in 10 minutes (librdkafka retries the PID request on the same
broker, confluent-kafka-python#1335). Waiting would never end; a new client gets a PID at once. So a producer
that acknowledged nothing for `PRODUCER_STALL_S` while messages waited, with a fresh admin client reaching the
broker, is stuck: its owner purges it and produces what it held again with a new client (`replay.Producer`, the
local CRM's echo). With the broker away it is waiting, and nothing is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Optional

from confluent_kafka import KafkaException

from lead_scoring.streaming.kafka import KafkaResource

PRODUCER_STALL_S = 60.0


class ProducerWatch:
    """Tells a stuck producer from one waiting for its broker, from what its owner reports."""

    def __init__(
        self,
        kafka: KafkaResource,
        topic: str,
        stall_s: Optional[float] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.kafka, self.topic, self.clock = kafka, topic, clock
        self._stall_s = stall_s
        self._last_progress = clock()

    @property
    def stall_s(self) -> float:
        return PRODUCER_STALL_S if self._stall_s is None else self._stall_s

    def progressed(self) -> None:
        """A message was acknowledged (or a new client started): the client is not stuck."""
        self._last_progress = self.clock()

    def stuck(self, waiting: int) -> bool:
        """`waiting` messages unacknowledged: True when nothing was acknowledged for `stall_s` and the broker
        answers a fresh client. Nothing waiting resets the clock (an idle producer is not a stuck one)."""
        if not waiting:
            self.progressed()
            return False
        if self.clock() - self._last_progress < self.stall_s:
            return False
        try:
            self.kafka.admin().list_topics(topic=self.topic, timeout=5.0)
        except KafkaException:
            self.progressed()  # the broker is away: waiting, not stuck; look again after another stall_s
            return False
        return True
