"""A micro-batch and how it is written: records detached from the Kafka client, the handler that writes them,
and `BatchWriter`, which no record can stop.

A write that fails with an error that is the record's fault (`crm.quarantine.classify`: permanent) is split in
halves until the record is alone; that record is quarantined with the error (`handler.quarantine`) and the rest
lands. Only transient errors retry the batch, with backoff, until it is written, `max_attempts` or a stop; while
they do, `stuck` says which batch (its first record, since the first failure, the last error).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Protocol

import tenacity

from lead_scoring.crm.quarantine import ErrorKind, classify, describe_error
from lead_scoring.retry import backoff

log = logging.getLogger(__name__)


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
            self.counts[k] = self.counts.get(k, 0) + v


class WorkerFailed(RuntimeError):
    """A batch could not be written within `max_attempts`; its offsets stay uncommitted."""


class BatchWriter:
    """Writes micro-batches through `handler`, isolating the records that fail on their own, retrying the rest.

    `on_retry(detail)` is called before each backoff (the worker reports "retrying a write"), `on_written()` once
    a batch that had failed is written; `heartbeat()` during the backoff, so a 30 s wait does not read as dead."""

    def __init__(
        self,
        handler: BatchHandler,
        name: str,
        stats: WorkerStats,
        stop: threading.Event,
        *,
        max_attempts: Optional[int],
        backoff_s: float,
        max_backoff_s: float,
        sleep: Callable[[float], None],
        heartbeat: Callable[[], None],
        on_retry: Callable[[str], None],
        on_written: Callable[[], None],
    ):
        self.handler = handler
        self.name = name
        self.stats = stats
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._stop = stop
        self._sleep = sleep
        self._heartbeat = heartbeat
        self._on_retry = on_retry
        self._on_written = on_written
        self.stuck: Optional[dict[str, Any]] = None  # the batch whose write is being retried (heartbeat)

    def write(self, batch: list[Message]) -> dict[str, int]:
        """Write the batch, isolating and quarantining records that fail on their own; retry transient failures
        (with backoff, heartbeating, until `max_attempts` or a stop); raise `WorkerFailed` if it is not written."""
        stop = tenacity.stop_after_attempt(self.max_attempts) if self.max_attempts else tenacity.stop_never
        retrying = tenacity.Retrying(
            stop=tenacity.stop_any(stop, lambda _state: self._stop.is_set()),
            wait=backoff(self.backoff_s, self.max_backoff_s),
            sleep=self._sleep_heartbeating,
            reraise=True,
            before_sleep=lambda state: self._failed_once(batch, state),
        )
        try:
            counts = retrying(self._write_isolating, batch)
        except Exception as exc:  # still failing after max_attempts, or asked to stop meanwhile: commit nothing
            why = "the worker is stopping" if self._stop.is_set() else f"{self.max_attempts} attempts"
            raise WorkerFailed(
                f"{self.name}: batch of {len(batch)} not written ({why}): {describe_error(exc)}"
            ) from exc
        if self.stuck is not None:
            log.info(
                "%s: the batch at %s[%s]@%s is written after %.0f s",
                self.name,
                self.stuck["topic"],
                self.stuck["partition"],
                self.stuck["offset"],
                time.time() - self.stuck["since"],
            )
            self.stuck = None
            self._on_written()
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

    def _failed_once(self, batch: list[Message], state: tenacity.RetryCallState) -> None:
        self.stats.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        error = describe_error(exc) if exc is not None else "unknown error"
        first = batch[0]
        since = self.stuck["since"] if self.stuck is not None else time.time()
        # the batch's first record: its offset is where the group's committed position stays until this is written
        self.stuck = {
            "topic": first.topic,
            "partition": first.partition,
            "offset": first.offset,
            "since": since,
            "error": error,
        }
        self._on_retry(f"batch of {len(batch)}, attempt {state.attempt_number}: {error}")
