"""A consuming worker that stops hearing from Kafka notices it, with a real client and no broker to answer."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from confluent_kafka import KafkaError, TopicPartition

from lead_scoring.crm import consumer_session
from lead_scoring.crm.batches import WorkerFailed
from lead_scoring.crm.heartbeat import CONSUMING, WAITING_FOR_KAFKA
from lead_scoring.crm.workers import MicroBatchWorker
from lead_scoring.stack.ports import free_port
from lead_scoring.streaming.kafka import KafkaResource


def _worker(tmp_path: Path, kafka: KafkaResource) -> MicroBatchWorker:
    worker = MicroBatchWorker(
        kafka,
        "outage-test",
        ["lead_scores"],
        handler=lambda batch: None,
        name="writeback",
        heartbeat_path=tmp_path / "writeback.json",
    )
    worker.status.set(CONSUMING)
    return worker


def test_an_idle_worker_whose_broker_is_gone_reports_waiting_for_kafka(tmp_path: Path) -> None:
    # librdkafka may stay silent (no error_cb) when the only broker of an idle consumer goes away; the idle
    # check's metadata request is what tells "no traffic" from "cut off".
    kafka = KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens there
    worker = _worker(tmp_path, kafka)
    consumer = kafka.consumer("outage-test", log_level=0)
    worker.session.consumer = consumer
    try:
        worker.session.check_broker()
    finally:
        consumer.close()
    assert worker.state == WAITING_FOR_KAFKA
    assert worker.stats.outages == 1
    assert '"state": "waiting for Kafka"' in (tmp_path / "writeback.json").read_text()


def test_a_commit_while_no_broker_answers_does_not_hold_the_loop(tmp_path: Path) -> None:
    # librdkafka defers a commit issued while no coordinator can be reached until one is found
    # (librdkafka#3740): a synchronous commit there held the loop, and its heartbeat, for the whole outage.
    kafka = KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens there
    worker = _worker(tmp_path, kafka)
    worker.offsets.pending = {("lead_scores", 0): 42}
    # close() waits up to the session timeout for the deferred commit (the workers' own: 10 s)
    consumer = kafka.consumer("outage-test", log_level=0, **{"session.timeout.ms": 6000, "heartbeat.interval.ms": 2000})
    try:
        committing = threading.Thread(target=worker.offsets.commit, args=(consumer,), daemon=True)
        committing.start()
        committing.join(20)
        assert not committing.is_alive(), "the commit blocked the worker's loop"
        assert worker.offsets.pending == {("lead_scores", 0): 42}  # kept until Kafka confirms it
        assert worker.offsets.issued_at is not None
    finally:
        consumer.close()


def test_commit_results_clear_only_what_kafka_confirmed(tmp_path: Path) -> None:
    worker = _worker(tmp_path, KafkaResource(bootstrap_servers="127.0.0.1:1"))
    worker.offsets.pending = {("lead_scores", 0): 10, ("lead_scores", 1): 7}
    worker.offsets.issued_at = 1.0
    # partition 1 was written further while the commit was in flight: its newer offset stays pending
    worker.offsets.pending[("lead_scores", 1)] = 9
    worker.offsets.on_commit(None, [TopicPartition("lead_scores", 0, 10), TopicPartition("lead_scores", 1, 7)])
    assert worker.offsets.pending == {("lead_scores", 1): 9}
    assert worker.offsets.issued_at is None and worker.state == CONSUMING

    worker.offsets.on_commit(KafkaError(KafkaError._TRANSPORT), [TopicPartition("lead_scores", 1, 9)])
    assert worker.state == WAITING_FOR_KAFKA  # and the offsets are kept for the next attempt
    assert worker.offsets.pending == {("lead_scores", 1): 9}

    worker.offsets.on_commit(None, [TopicPartition("lead_scores", 1, 9)])
    assert worker.offsets.pending == {} and worker.state == CONSUMING

    worker.offsets.pending = {("lead_scores", 0): 12}
    worker.offsets.on_commit(KafkaError(KafkaError.ILLEGAL_GENERATION), [TopicPartition("lead_scores", 0, 12)])
    assert worker.offsets.pending == {}  # no longer ours: the partition's new owner reads it again


class _WedgedConsumer:
    """A Kafka client whose close() never returns (a wedged librdkafka handle)."""

    def __init__(self) -> None:
        self.closes = 0
        self.released = threading.Event()

    def close(self) -> None:
        self.closes += 1
        self.released.wait()


def test_a_stalled_consumer_that_will_not_close_fails_the_worker_without_hanging_its_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(consumer_session, "CLOSE_TIMEOUT_S", 0.5)
    worker = _worker(tmp_path, KafkaResource(bootstrap_servers="127.0.0.1:1"))
    wedged = _WedgedConsumer()
    worker.session.consumer = wedged
    try:
        with pytest.raises(WorkerFailed, match="did not close"):
            worker.session._replace({("lead_scores", 0): 42}, "nothing was fetched")
        # the worker's way out (run's finally) closes the session: it must not wait on the wedged client again
        closing = threading.Thread(target=worker.session.close, daemon=True)
        closing.start()
        closing.join(2)
        assert not closing.is_alive(), "the worker's way out waits on the wedged client's close() again"
        assert wedged.closes == 1
    finally:
        wedged.released.set()
