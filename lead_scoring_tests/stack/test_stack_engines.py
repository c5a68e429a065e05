"""The local stack on the real engines: Kafka 4 (KRaft), Flink 2.3 through the SQL Gateway.

All tests share the session's `local_stack`; each uses its own topics and consumer groups. The
broker-restart test is last in this module because it bounces the broker the others use.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import fastavro
import httpx
import pytest

from lead_scoring.stack.flink import SQL_GATEWAY
from lead_scoring.stack.kafka import KAFKA
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring_tests.fixtures.stack import ENGINES

pytestmark = pytest.mark.stack


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def produce(kafka: KafkaResource, topic: str, messages: list[tuple[str, bytes]]) -> None:
    """Produce with the idempotent acks=all producer; fail unless every message is acknowledged."""
    producer = kafka.producer()
    errors: list[str] = []

    def on_delivery(err, msg) -> None:
        if err is not None:
            errors.append(str(err))

    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0, f"{remaining} messages not acknowledged within 30 s"
    assert errors == []


def consume(
    kafka: KafkaResource,
    topic: str,
    count: int,
    group: str | None = None,
    timeout_s: float = 90.0,
    commit: bool = False,
) -> list[tuple[str, bytes]]:
    """Read `count` messages (fails on timeout); optionally commit their offsets synchronously."""
    consumer = kafka.consumer(group or _name("check"))
    consumer.subscribe([topic])
    got: list[tuple[str, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                # UNKNOWN_TOPIC_OR_PART while a Flink sink has not created its topic yet is fine.
                continue
            got.append(((msg.key() or b"").decode(), msg.value()))
        if commit and got:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    assert len(got) >= count, f"read {len(got)} of {count} messages from {topic} within {timeout_s:.0f} s"
    return got


@contextmanager
def running_insert(flink: SqlGatewayFlink, ddl: list[str], insert: str) -> Iterator[str]:
    """Create tables and start an INSERT job in a session; cancel the job afterwards."""
    with flink.session() as session:
        for statement in ddl:
            session.execute(statement)
        result = session.execute(insert)
        job_id = result.rows[0][0]
        try:
            yield job_id
        finally:
            flink.cancel_job(job_id)


def kafka_table(name: str, topic: str, columns: str, bootstrap: str, fmt: str, source: bool) -> str:
    scan = f",'properties.group.id'='{_name('flink')}','scan.startup.mode'='earliest-offset'" if source else ""
    return (
        f"CREATE TABLE {name} ({columns}) WITH ('connector'='kafka','topic'='{topic}',"
        f"'properties.bootstrap.servers'='{bootstrap}','format'='{fmt}'{scan})"
    )


def test_second_up_is_a_no_op(local_stack) -> None:
    before = {s.name: s.pid for s in local_stack.stack.status(ENGINES)}
    statuses = local_stack.stack.up(ENGINES)
    assert {s.name: s.pid for s in statuses} == before
    assert all(s.state == "healthy" for s in statuses), statuses


def test_produce_consume_round_trip(local_stack) -> None:
    kafka = local_stack.kafka()
    topic = _name("roundtrip")
    sent = [(f"k{i}", json.dumps({"i": i}).encode()) for i in range(200)]
    produce(kafka, topic, sent)
    assert consume(kafka, topic, len(sent)) == sent  # one partition: same order


def test_select_1_through_sql_gateway(local_stack) -> None:
    flink = local_stack.flink_sql()
    assert flink.info()["version"] == "2.3.0"
    with flink.session() as session:
        result = session.execute("SELECT 1 AS x")
    assert result.columns == ["x"]
    assert result.rows == [[1]]
    assert result.job_id, "SELECT 1 must run as a job on the session cluster"


def test_json_pass_through(local_stack) -> None:
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    src, dst = _name("json_in"), _name("json_out")
    records = [{"Id": f"00Q{i:05d}", "n": i, "score": i / 10} for i in range(20)]
    produce(kafka, src, [(r["Id"], json.dumps(r).encode()) for r in records])
    cols = "Id STRING, n INT, score DOUBLE"
    ddl = [
        kafka_table("src", src, cols, local_stack.kafka_bootstrap, "json", source=True),
        kafka_table("dst", dst, cols, local_stack.kafka_bootstrap, "json", source=False),
    ]
    with running_insert(flink, ddl, "INSERT INTO dst SELECT Id, n, score FROM src") as job_id:
        assert flink.job_state(job_id) in ("CREATED", "INITIALIZING", "RUNNING")
        out = consume(kafka, dst, len(records))
        checkpoint = _wait_for_checkpoint(local_stack, job_id)
    assert sorted((json.loads(v) for _, v in out), key=lambda r: r["n"]) == records
    # Checkpoints are written under the stack's state folder and kept after the job is cancelled.
    assert checkpoint.parent.parent == local_stack.stack.flink_dir / "checkpoints"
    assert (checkpoint / "_metadata").is_file()


def _wait_for_checkpoint(local_stack, job_id: str, timeout_s: float = 90.0) -> Path:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = httpx.get(f"{local_stack.flink_rest_url}/jobs/{job_id}/checkpoints", timeout=5).json()
        latest = (body.get("latest") or {}).get("completed")
        if latest and latest.get("external_path"):
            return Path(latest["external_path"].removeprefix("file:"))
        time.sleep(1)
    raise AssertionError(f"no completed checkpoint for {job_id} within {timeout_s:.0f} s")


# What Flink's avro format derives for (Id STRING NOT NULL, n INT NOT NULL, score DOUBLE).
AVRO_SCHEMA = fastavro.parse_schema(
    {
        "type": "record",
        "name": "record",
        "namespace": "org.apache.flink.avro.generated",
        "fields": [
            {"name": "Id", "type": "string"},
            {"name": "n", "type": "int"},
            {"name": "score", "type": ["null", "double"], "default": None},
        ],
    }
)


def _avro(record: dict) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, AVRO_SCHEMA, record)
    return buf.getvalue()


def test_avro_pass_through(local_stack) -> None:
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    src, dst = _name("avro_in"), _name("avro_out")
    records = [{"Id": f"00Q{i:05d}", "n": i, "score": None if i % 3 == 0 else i / 4} for i in range(20)]
    produce(kafka, src, [(r["Id"], _avro(r)) for r in records])
    cols = "Id STRING NOT NULL, n INT NOT NULL, score DOUBLE"
    ddl = [
        kafka_table("src", src, cols, local_stack.kafka_bootstrap, "avro", source=True),
        kafka_table("dst", dst, cols, local_stack.kafka_bootstrap, "avro", source=False),
    ]
    with running_insert(flink, ddl, "INSERT INTO dst SELECT Id, n, score FROM src"):
        out = consume(kafka, dst, len(records))
    decoded = [fastavro.schemaless_reader(io.BytesIO(v), AVRO_SCHEMA, AVRO_SCHEMA) for _, v in out]
    assert sorted(decoded, key=lambda r: r["n"]) == records


def test_sql_error_names_the_cause(local_stack) -> None:
    from lead_scoring.streaming.sql_gateway import FlinkSqlError

    with local_stack.flink_sql().session() as session, pytest.raises(FlinkSqlError, match="no_such_table"):
        session.execute("SELECT * FROM no_such_table")


def test_status_reports_memory_and_health(local_stack) -> None:
    statuses = {s.name: s for s in local_stack.stack.status()}
    for name in (KAFKA, "jobmanager", "taskmanager", SQL_GATEWAY):
        assert statuses[name].state == "healthy", statuses[name]
        assert statuses[name].rss_bytes and statuses[name].rss_bytes > 50 * 2**20
    total = sum(s.rss_bytes or 0 for s in statuses.values())
    assert total < 4 * 2**30, f"stack uses {total / 2**30:.2f} GiB RSS (target < 4 GiB)"


def test_broker_restart_loses_no_committed_message(local_stack) -> None:
    kafka = local_stack.kafka()
    topic, group = _name("restart"), _name("restart_group")
    sent = [(f"k{i}", f"v{i}".encode()) for i in range(300)]
    produce(kafka, topic, sent)  # every message acknowledged by the broker (acks=all)
    assert consume(kafka, topic, 100, group=group, commit=True) == sent[:100]

    old_pid = {s.name: s.pid for s in local_stack.stack.status()}[KAFKA]
    statuses = {s.name: s for s in local_stack.stack.restart([KAFKA])}
    assert statuses[KAFKA].state == "healthy" and statuses[KAFKA].pid != old_pid

    # Every acknowledged message is still there, and the group resumes at its committed offset.
    assert consume(kafka, topic, len(sent)) == sent
    assert consume(kafka, topic, 200, group=group) == sent[100:]
