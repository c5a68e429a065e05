"""A consuming worker that stops hearing from Kafka notices it, with a real client and no broker to answer."""

from __future__ import annotations

from pathlib import Path

from lead_scoring.crm.workers import CONSUMING, WAITING_FOR_KAFKA, MicroBatchWorker
from lead_scoring.stack.ports import free_port
from lead_scoring.streaming.kafka import KafkaResource


def _worker(tmp_path: Path, kafka: KafkaResource) -> MicroBatchWorker:
    worker = MicroBatchWorker(kafka, "outage-test", ["lead_scores"], handler=lambda batch: None, name="writeback",
                              heartbeat_path=tmp_path / "writeback.json")
    worker._set_state(CONSUMING)
    return worker


def test_an_idle_worker_whose_broker_is_gone_reports_waiting_for_kafka(tmp_path: Path) -> None:
    # librdkafka may stay silent (no error_cb) when the only broker of an idle consumer goes away; the idle
    # check's metadata request is what tells "no traffic" from "cut off".
    kafka = KafkaResource(bootstrap_servers=f"127.0.0.1:{free_port()}")  # nothing listens there
    worker = _worker(tmp_path, kafka)
    consumer = kafka.consumer("outage-test", log_level=0)
    try:
        worker._check_broker(consumer)
    finally:
        consumer.close()
    assert worker.state == WAITING_FOR_KAFKA
    assert worker.stats.outages == 1
    assert '"state": "waiting for Kafka"' in (tmp_path / "writeback.json").read_text()
