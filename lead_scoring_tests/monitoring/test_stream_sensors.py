"""streaming_topics_sensor and e2e_latency_sensor against the real local Kafka broker.

Every test uses its own topics and consumer groups (the session's broker is shared). The latency
tests that do not need the Flink pipeline use `echoing_scorer`: a thread that PLAYS THE PIPELINE'S
ROLE by reading probe records from a test input topic and writing a score record to a test scores
topic. The real pipeline round trip is in test_latency_pipeline.py.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import NewTopic

from lead_scoring.monitoring import sensors
from lead_scoring.monitoring.resources import MonitoringSettings
from lead_scoring.monitoring.streams import CONSUMER_LAG_CHECK, DLQ_GROWTH_CHECK
from lead_scoring.stack.ports import free_ports
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lineage import topic_asset_key, topic_specs
from lead_scoring_tests.monitoring.test_latency_decoding import wire_format

pytestmark = pytest.mark.stack


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def create_topics(kafka: KafkaResource, partitions: dict[str, int]) -> None:
    admin = kafka.admin()  # keep the handle alive until the futures resolve
    futures = admin.create_topics([NewTopic(t, num_partitions=n, replication_factor=1) for t, n in partitions.items()])
    for future in futures.values():
        future.result(timeout=30)


def produce(kafka: KafkaResource, topic: str, count: int, partition: int | None = None) -> None:
    producer = kafka.producer()
    for i in range(count):
        kwargs = {"partition": partition} if partition is not None else {}
        producer.produce(topic, key=f"k{i}".encode(), value=b"{}", **kwargs)
    assert producer.flush(30) == 0


def commit(kafka: KafkaResource, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for `group` (retrying while a fresh broker is still loading its coordinator)."""
    consumer = kafka.consumer(group)
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
                return
            except KafkaException as exc:
                if (
                    not exc.args[0].retriable()
                    and exc.args[0].code() not in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS)
                    or time.monotonic() > deadline
                ):
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()


def _tick(kafka: KafkaResource, monitoring: MonitoringSettings, cursor: str | None):
    context = dg.build_sensor_context(cursor=cursor, resources={"kafka": kafka, "monitoring": monitoring})
    return sensors.streaming_topics_sensor(context)


def _checks(result: dg.SensorResult) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    return {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in result.asset_events
        if isinstance(e, dg.AssetCheckEvaluation)
    }


def _observations(result: dg.SensorResult) -> dict[str, dict]:
    return {
        e.asset_key.to_user_string(): {k: v.value for k, v in e.metadata.items()}
        for e in result.asset_events
        if isinstance(e, dg.AssetObservation)
    }


def test_topics_sensor_offsets_rates_lag_dlq_and_alerts(local_stack):
    kafka = local_stack.kafka()
    uid = _uid()
    source, dlq, group = f"mon_in_{uid}", f"mon_dlq_{uid}", f"mon_group_{uid}"
    create_topics(kafka, {source: 2, dlq: 1})
    produce(kafka, source, 20, partition=0)
    produce(kafka, source, 10, partition=1)
    commit(kafka, group, source, {0: 5, 1: 5})  # 15 + 5 = 20 behind
    monitoring = MonitoringSettings(
        topics=[source, dlq],
        consumer_groups=[group],
        group_topics={group: [source]},
        dlq_topic=dlq,
        max_consumer_lag=15,
        max_dlq_growth=3,
    )

    first = _tick(kafka, monitoring, None)
    assert isinstance(first, dg.SensorResult)
    obs = _observations(first)
    assert obs[f"kafka/{source}"]["end_offset"] == 30 and obs[f"kafka/{source}"]["partitions"] == 2
    assert obs[f"kafka/{source}"][f"lag {group}"] == 20
    assert "messages_per_s" not in obs[f"kafka/{source}"]  # no earlier tick to compare with
    lag = _checks(first)[(f"kafka/{source}", CONSUMER_LAG_CHECK)]
    assert not lag.passed and lag.severity == dg.AssetCheckSeverity.ERROR and "20 behind" in lag.description
    assert (f"kafka/{dlq}", DLQ_GROWTH_CHECK) not in _checks(first)  # growth needs a baseline
    assert first.run_requests == []  # the red check is the alert: no run, no new process
    [breach] = json.loads(first.cursor)["alerts"]
    assert source in breach and group in breach

    time.sleep(1.0)
    produce(kafka, source, 12)
    produce(kafka, dlq, 5)
    second = _tick(kafka, monitoring, first.cursor)
    obs = _observations(second)
    assert obs[f"kafka/{source}"]["end_offset"] == 42
    rate = obs[f"kafka/{source}"]["messages_per_s"]
    assert 0 < rate <= 12 / 1.0
    checks = _checks(second)
    assert not checks[(f"kafka/{dlq}", DLQ_GROWTH_CHECK)].passed
    assert checks[(f"kafka/{dlq}", DLQ_GROWTH_CHECK)].metadata["growth"].value == 5
    # the DLQ breach joins the open incidents; still no run
    assert second.run_requests == []
    assert len(json.loads(second.cursor)["alerts"]) == 2

    # the consumer catches up, the DLQ stops growing: everything passes, no alert
    consumer = kafka.consumer(group)
    ends = {p: consumer.get_watermark_offsets(TopicPartition(source, p), timeout=10)[1] for p in (0, 1)}
    consumer.close()
    commit(kafka, group, source, ends)
    third = _tick(kafka, monitoring, second.cursor)
    checks = _checks(third)
    assert checks[(f"kafka/{source}", CONSUMER_LAG_CHECK)].passed
    assert checks[(f"kafka/{dlq}", DLQ_GROWTH_CHECK)].passed
    assert third.run_requests == []
    assert json.loads(third.cursor)["alerts"] == []


def test_topics_sensor_skips_when_the_broker_is_down():
    [port] = free_ports(1)  # nothing listens there: a stopped broker
    kafka = KafkaResource(bootstrap_servers=f"127.0.0.1:{port}")
    started = time.monotonic()
    result = _tick(kafka, MonitoringSettings(kafka_timeout_s=2.0), '{"ts": 1}')
    assert isinstance(result, dg.SkipReason)
    assert f"127.0.0.1:{port} is unreachable" in result.skip_message
    assert time.monotonic() - started < 15


@contextmanager
def echoing_scorer(
    kafka: KafkaResource,
    source: str,
    target: str,
    delay_s: float = 0.0,
    drop: bool = False,
    scores_format: str = "json",
) -> Iterator[list[str]]:
    """Plays the pipeline's role: for every record on `source`, a contract score record on `target`
    (JSON, or Schema Registry Avro wire format as Confluent Cloud's Flink writes it)."""
    stop = threading.Event()
    seen: list[str] = []
    ready = threading.Event()

    def run() -> None:
        consumer = kafka.consumer(f"echo_{_uid()}", **{"auto.offset.reset": "latest"})
        producer = kafka.producer()
        consumer.subscribe([source], on_assign=lambda c, parts: ready.set())
        try:
            while not stop.is_set():
                msg = consumer.poll(0.1)
                if msg is None or msg.error():
                    continue
                record = json.loads(msg.value())
                seen.append(record["Id"])
                if drop:
                    continue
                time.sleep(delay_s)
                score = {
                    "Id": record["Id"],
                    "_ObjectType": "Lead",
                    "_EventType": "updated",
                    "Lead_Score__c": 42,
                    "Lead_Score_Reasons__c": "+echo",
                    "Lead_Score_Model__c": "echo",
                    "source_ts": msg.timestamp()[1],
                    "scored_ts": int(time.time() * 1000),
                }
                value = (
                    wire_format({"Lead_Grade__c": "B", "features_hash": None, **score})
                    if scores_format == "avro-registry"
                    else json.dumps(score).encode()
                )
                producer.produce(target, key=record["Id"].encode(), value=value)
                producer.flush(10)
        finally:
            consumer.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the echoing stand-in never got its partitions"
    try:
        yield seen
    finally:
        stop.set()
        thread.join(15)


def _latency_tick(kafka: KafkaResource, monitoring: MonitoringSettings):
    sensor = sensors.make_e2e_latency_sensor(interval_s=60)
    return sensor(dg.build_sensor_context(resources={"kafka": kafka, "monitoring": monitoring}))


def test_latency_probe_against_an_echoing_stand_in_for_the_pipeline(local_stack):
    kafka = local_stack.kafka()
    uid = _uid()
    source, target = f"probe_in_{uid}", f"probe_scores_{uid}"
    create_topics(kafka, {source: 1, target: 3})
    produce(kafka, target, 3)  # older scores on the topic must not count
    monitoring = MonitoringSettings(
        input_topic=source, scores_topic=target, probe_count=4, probe_timeout_s=20, latency_slo_s=10.0
    )
    with echoing_scorer(kafka, source, target, delay_s=0.3) as seen:
        result = _latency_tick(kafka, monitoring)
    assert len(seen) == 4 and all(i.startswith("PROBE-") for i in seen)
    [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert observation.asset_key == topic_asset_key(target)
    p50, worst = observation.metadata["latency_p50_s"].value, observation.metadata["latency_max_s"].value
    assert 0.3 <= p50 <= worst < 10
    assert observation.metadata["probes_scored"].value == 4
    assert check.check_name == "latency_slo" and check.passed, check.description

    # gcp: the same tick also sends a probe Lead through (a fake) Salesforce, and waits for its score
    from lead_scoring_tests.monitoring.test_salesforce_probe import FakeLeadApi, FakeSalesforce

    lead_api = FakeLeadApi(score_after=1)

    class FakeCrm:
        def client(self):
            return FakeSalesforce(lead_api)

    with_sf = MonitoringSettings(
        input_topic=source, scores_topic=target, probe_count=2, probe_timeout_s=20, salesforce_probe=True
    )
    sensor = sensors.make_e2e_latency_sensor(interval_s=60, salesforce=True)
    with echoing_scorer(kafka, source, target):
        result = sensor(dg.build_sensor_context(resources={"kafka": kafka, "monitoring": with_sf, "crm": FakeCrm()}))
    [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert observation.metadata["salesforce_probe_deleted"].value is True and lead_api.deleted
    assert observation.metadata["salesforce_latency_s"].value >= 0 and check.passed

    # the same pipeline against a tighter SLO than its delay fails the check
    tight = MonitoringSettings(
        input_topic=source, scores_topic=target, probe_count=4, probe_timeout_s=20, latency_slo_s=0.2
    )
    with echoing_scorer(kafka, source, target, delay_s=0.3):
        result = _latency_tick(kafka, tight)
    [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert not check.passed and "SLO 0.2 s" in check.description


def test_latency_probe_reads_schema_registry_avro_scores_as_in_confluent_cloud(local_stack):
    """Issue 28 #5: in gcp the scores topic is Avro in Schema Registry wire format; the probe read it as JSON
    and so never saw a score (the SLO could not pass)."""
    kafka = local_stack.kafka()
    uid = _uid()
    source, target = f"probe_in_{uid}", f"probe_scores_{uid}"
    create_topics(kafka, {source: 1, target: 1})
    monitoring = MonitoringSettings(
        input_topic=source,
        scores_topic=target,
        probe_count=3,
        probe_timeout_s=20,
        latency_slo_s=10.0,
        scores_format="avro-registry",
    )
    with echoing_scorer(kafka, source, target, scores_format="avro-registry") as seen:
        result = _latency_tick(kafka, monitoring)
    assert len(seen) == 3
    [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
    [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert observation.metadata["probes_scored"].value == 3
    assert check.passed, check.description


def test_latency_probe_fails_when_scores_never_come(local_stack):
    kafka = local_stack.kafka()
    uid = _uid()
    source, target = f"probe_in_{uid}", f"probe_scores_{uid}"
    create_topics(kafka, {source: 1, target: 1})
    monitoring = MonitoringSettings(input_topic=source, scores_topic=target, probe_count=2, probe_timeout_s=3)
    with echoing_scorer(kafka, source, target, drop=True) as seen:
        result = _latency_tick(kafka, monitoring)
    assert len(seen) == 2
    [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
    assert not check.passed and "none of 2 probe leads was scored within 3 s" in check.description


def test_latency_sensor_skips_without_topics_or_broker(local_stack):
    kafka = local_stack.kafka()
    missing = MonitoringSettings(input_topic=f"nope_{_uid()}", scores_topic=f"nope_{_uid()}")
    result = _latency_tick(kafka, missing)
    assert isinstance(result, dg.SkipReason) and "does not exist" in result.skip_message
    [port] = free_ports(1)
    down = KafkaResource(bootstrap_servers=f"127.0.0.1:{port}")
    result = _latency_tick(down, MonitoringSettings(kafka_timeout_s=2.0))
    assert isinstance(result, dg.SkipReason) and "unreachable" in result.skip_message


def test_stream_health_checks_run_on_demand(local_stack):
    """The checks the sensor reports can also be executed from the UI: real lag, DLQ growth vs last observation."""
    from lead_scoring.streaming.admin import ensure_topics
    from lead_scoring.streaming.topics import DLQ, TOPICS

    kafka = local_stack.kafka()
    admin = kafka.admin()
    ensure_topics(admin, TOPICS)  # the pipeline's own names: these checks are declared on them
    dlq_end = _end(kafka, DLQ)
    instance = dg.DagsterInstance.ephemeral()
    # the sensor's last observation of the DLQ is the baseline for its growth
    instance.report_runless_asset_event(
        dg.AssetObservation(asset_key=topic_asset_key(DLQ), metadata={"end_offset": dg.MetadataValue.int(dlq_end)})
    )
    produce(kafka, DLQ, 4)
    job = dg.define_asset_job("check_streams", selection=dg.AssetSelection.checks(sensors.stream_health_checks))
    defs = dg.Definitions(
        assets=topic_specs(),
        asset_checks=[sensors.stream_health_checks],
        jobs=[job],
        resources={"kafka": kafka, "monitoring": MonitoringSettings(max_dlq_growth=3)},
    )
    result = defs.resolve_job_def("check_streams").execute_in_process(instance=instance)
    evaluations = {(e.asset_key.to_user_string(), e.check_name): e for e in result.get_asset_check_evaluations()}
    assert set(evaluations) == {(s.asset_key.to_user_string(), s.name) for s in sensors.stream_health_checks_specs()}
    dlq = evaluations[(f"kafka/{DLQ}", DLQ_GROWTH_CHECK)]
    assert not dlq.passed and dlq.metadata["growth"].value == 4
    for (asset, name), evaluation in evaluations.items():
        if name == CONSUMER_LAG_CHECK:  # topics exist; the pipeline's consumers may or may not run here
            assert "topic does not exist" not in (evaluation.description or ""), asset


def _end(kafka: KafkaResource, topic: str) -> int:
    consumer = kafka.consumer(f"end_{_uid()}")
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                meta = consumer.list_topics(topic, timeout=10).topics[topic]
                return sum(
                    consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions
                )
            except KafkaException as exc:
                # a topic created a moment ago may not have elected its partition leaders yet
                error = exc.args[0]
                transient = error.retriable() or error.code() == KafkaError.NOT_LEADER_FOR_PARTITION
                if not transient or time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
    finally:
        consumer.close()
