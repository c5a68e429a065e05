"""The Flink SQL pipeline on the real stack: replay, dead letters, rollout during a replay, model server outage.

One pipeline for the module (its own topics, statement names and consumer groups, so it never meets a
developer's pipeline), rolled out by the `flink_statements` asset itself through `materialize_to_memory`,
scoring through our `kserve` model provider against a real model server process.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import fastavro
import httpx
import pytest

from lead_scoring.contract import parse_record
from lead_scoring.contract.schemas import lead_avro_schema
from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.serving.service import ModelServerProcess, swap_model
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring_tests.fixtures.stack import stub_deployment
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

MODEL = "lead_scorer"


@dataclass
class Running:
    kafka: KafkaResource
    flink: SqlGatewayFlink
    prefix: str  # topics
    names: str  # statements and consumer groups
    url: str
    port: int
    server: ModelServerProcess
    log: Path
    versions: list[str]
    uris: dict[str, str]

    def topic(self, name: str) -> str:
        return self.prefix + name

    def deploy(self, version: str, url: str | None = None, **tuning: Any) -> dg.ExecuteInMemoryResult:
        return dg.materialize_to_memory(
            [stub_deployment(url or self.url, version, MODEL), flink_statements],
            resources={"kafka": self.kafka, "flink": self.flink},
            run_config={
                "ops": {
                    "flink_statements": {
                        "config": {
                            "topic_prefix": self.prefix,
                            "statement_prefix": self.names,
                            "group_prefix": self.names,
                            "verify_timeout_s": 120.0,
                            **tuning,
                        }
                    }
                }
            },
            raise_on_error=False,
        )

    def jobs(self) -> dict[str, str]:
        jobs = httpx.get(f"{self.flink.flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]
        return {j["name"]: j["jid"] for j in jobs if j["name"].startswith(self.names) and j["state"] == "RUNNING"}


def records(n: int, seed: int) -> list[dict[str, Any]]:
    frame = generate_leads(n, seed=seed)
    out = []
    for row in frame.to_dict(orient="records"):
        out.append({k: v for k, v in row.items() if v is not None and v == v})  # drop None / NaN
    return out


def malformed(n: int, tag: str) -> list[tuple[str, bytes]]:
    """Bad records of every kind the contract names, each with a unique key."""
    good = records(1, seed=99)[0]
    kinds = [
        lambda i: b"this is not json " + str(i).encode(),
        lambda i: json.dumps([1, 2, i]).encode(),
        lambda i: json.dumps({k: v for k, v in good.items() if k != "Id"}).encode(),
        lambda i: json.dumps({k: v for k, v in good.items() if k != "LastModifiedDate"} | {"Id": f"{tag}{i}"}).encode(),
        lambda i: json.dumps(good | {"Id": f"{tag}{i}", "_ObjectType": "Account"}).encode(),
        lambda i: json.dumps(good | {"Id": f"{tag}{i}", "Total_Visits__c": "seven"}).encode(),
        lambda i: json.dumps(good | {"Id": f"{tag}{i}", "DoNotCall": "yes"}).encode(),
        lambda i: json.dumps(good | {"Id": f"{tag}{i}", "LastModifiedDate": "yesterday"}).encode(),
        lambda i: json.dumps(good | {"Id": f"{tag}{i}", "Time_On_Website__c": -5}).encode(),
        lambda i: json.dumps(good | {"Id": f"{tag}{i}", "Country": 42}).encode(),
    ]
    return [(f"{tag}{i}", kinds[i % len(kinds)](i)) for i in range(n)]


def produce(kafka: KafkaResource, topic: str, messages: list[tuple[str, bytes]], rate: float | None = None) -> None:
    producer = kafka.producer()
    errors: list[str] = []
    gap = 1.0 / rate if rate else 0.0
    start = time.monotonic()
    for i, (key, value) in enumerate(messages):
        producer.produce(
            topic, key=key.encode(), value=value, on_delivery=lambda err, _m: errors.append(str(err)) if err else None
        )
        producer.poll(0)
        if gap:
            time.sleep(max(0.0, start + (i + 1) * gap - time.monotonic()))
    assert producer.flush(60) == 0
    assert errors == []


def read(
    kafka: KafkaResource, topic: str, keys: set[str], timeout_s: float = 300.0, settle_s: float = 4.0
) -> list[tuple[str, dict[str, Any]]]:
    """Every message whose key is in `keys`, until all were seen and `settle_s` passed without more."""
    consumer = kafka.consumer(f"check-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    got: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    settled_at = None
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                key = (msg.key() or b"").decode()
                if key in keys:
                    got.append((key, json.loads(msg.value())))
                    seen.add(key)
                    settled_at = None
                continue
            if seen >= keys:
                settled_at = settled_at or time.monotonic()
                if time.monotonic() - settled_at >= settle_s:
                    break
    finally:
        consumer.close()
    return got


def read_dlq(kafka: KafkaResource, topic: str, count: int, timeout_s: float = 120.0) -> list[dict[str, Any]]:
    consumer = kafka.consumer(f"dlq-{uuid.uuid4().hex[:8]}")
    consumer.subscribe([topic])
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                out.append(json.loads(msg.value()))
    finally:
        consumer.close()
    return out


def direct_scores(url: str, batch: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for i in range(0, len(batch), 200):
        chunk = batch[i : i + 200]
        resp = httpx.post(f"{url}/v1/models/{MODEL}:predict", json={"instances": chunk}, timeout=60)
        assert resp.status_code == 200, resp.text
        for rec, pred in zip(chunk, resp.json()["predictions"], strict=True):
            out[rec["Id"]] = pred
    return out


def assert_once(got: list[tuple[str, dict[str, Any]]], keys: set[str], what: str) -> dict[str, dict[str, Any]]:
    counts = Counter(k for k, _ in got)
    missing = keys - set(counts)
    twice = {k: c for k, c in counts.items() if c > 1}
    assert not missing, f"{len(missing)} of {len(keys)} {what} never scored, e.g. {sorted(missing)[:3]}"
    assert not twice, f"{len(twice)} {what} scored more than once, e.g. {list(twice.items())[:3]}"
    return dict(got)


@pytest.fixture(scope="module")
def running(local_stack, tmp_path_factory) -> Iterator[Running]:
    tmp = tmp_path_factory.mktemp("pipeline")
    repo = ArtifactRepository(LocalBlobs(tmp / "artifacts"), Profile.LOCAL)
    v1 = repo.save(fit_model(n=300, seed=1), manifest={"trained_on": "pipeline test v1"})
    time.sleep(1.1)  # versions are time-stamped to the second
    v2 = repo.save(fit_model(n=300, seed=2), manifest={"trained_on": "pipeline test v2"})
    assert v1.version != v2.version
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp / "model-server.log"
    server = ModelServerProcess(v1.uri, port=port, log_path=log, model_name=MODEL)
    tag = uuid.uuid4().hex[:6]
    ctx = Running(
        kafka=local_stack.kafka(),
        flink=local_stack.flink_sql(),
        prefix=f"p{tag}_",
        names=f"p{tag}",
        url=url,
        port=port,
        server=server,
        log=log,
        versions=[v1.version, v2.version],
        uris={v1.version: v1.uri, v2.version: v2.uri},
    )
    try:
        server.start()
        topics = dg.materialize_to_memory(
            [streaming_topics],
            resources={"kafka": ctx.kafka, "flink": ctx.flink},
            run_config={"ops": {"streaming_topics": {"config": {"topic_prefix": ctx.prefix}}}},
        )
        assert topics.success
        result = ctx.deploy(v1.version)
        assert result.success, _failure(result)
        yield ctx
    finally:
        for jid in ctx.jobs().values():
            httpx.patch(f"{ctx.flink.flink_rest_url}/jobs/{jid}", params={"mode": "cancel"}, timeout=10)
        ctx.server.stop()


def _failure(result: dg.ExecuteInMemoryResult) -> str:
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None:
            return str(getattr(event.event_specific_data, "error", event.event_specific_data))
    return "no failure event"


def test_topics_created_with_their_config(running) -> None:
    admin = running.kafka.admin()
    meta = admin.list_topics(timeout=10).topics
    assert len(meta[running.topic("input_raw")].partitions) == 3
    assert len(meta[running.topic("dlq")].partitions) == 1
    # a second materialization changes nothing
    again = dg.materialize_to_memory(
        [streaming_topics],
        resources={"kafka": running.kafka, "flink": running.flink},
        run_config={"ops": {"streaming_topics": {"config": {"topic_prefix": running.prefix}}}},
    )
    md = again.asset_materializations_for_node("streaming_topics")[0].metadata
    assert md["created"].value == []
    # the DLQ holds raw payloads (PII): bound by the erasure promise like input_raw (it was 30 days)
    assert md["topics"].value[running.topic("dlq")]["retention.ms"] == str(7 * 24 * 3600 * 1000)


def by_role(jobs: dict[str, str], names: str) -> dict[str, tuple[str, str]]:
    """role -> (statement name, job id); names are `<prefix>-<role>-<fingerprint of the SQL>`."""
    return {name.removeprefix(names + "-").rsplit("-", 1)[0]: (name, jid) for name, jid in jobs.items()}


def test_rollout_metadata(running) -> None:
    assert set(by_role(running.jobs(), running.names)) == {"validate", "route", "score-leads", "score-contacts"}


def test_replay_1000_with_2_percent_malformed(running) -> None:
    good = records(980, seed=7)
    bad = malformed(20, tag=f"bad{uuid.uuid4().hex[:4]}-")
    messages = [(r["Id"], json.dumps(r).encode()) for r in good] + bad
    messages = messages[::2] + messages[1::2]  # bad ones spread through the replay
    produce(running.kafka, running.topic("input_raw"), messages)

    leads = {r["Id"] for r in good if r["_ObjectType"] == "Lead"}
    contacts = {r["Id"] for r in good if r["_ObjectType"] == "Contact"}
    assert leads and contacts
    lead_scores = assert_once(read(running.kafka, running.topic("lead_scores"), leads), leads, "leads")
    contact_scores = assert_once(read(running.kafka, running.topic("contact_scores"), contacts), contacts, "contacts")

    # every streamed score equals the model server's own answer for the same record
    direct = direct_scores(running.url, good)
    for rid, score in {**lead_scores, **contact_scores}.items():
        want = direct[rid]
        assert score["Lead_Score__c"] == want["score"], rid
        assert score["Lead_Score_Reasons__c"] == want["reasons_text"], rid
        assert score["Lead_Score_Model__c"] == want["model_version"] == running.versions[0]
        assert score["_EventType"] == "updated" and score["Id"] == rid
        assert score["scored_ts"] >= score["source_ts"] > 1_600_000_000_000
    assert {s["_ObjectType"] for s in lead_scores.values()} == {"Lead"}
    assert {s["_ObjectType"] for s in contact_scores.values()} == {"Contact"}

    # every malformed record is in the dlq with its payload and the validator's reason
    dlq = read_dlq(running.kafka, running.topic("dlq"), len(bad))
    assert len(dlq) == len(bad)
    by_payload = {d["payload"]: d for d in dlq}
    for _key, payload in bad:
        entry = by_payload[payload.decode()]
        _, errors = parse_record(payload)
        assert errors, payload
        expected = "; ".join(str(e) for e in errors)
        if expected.startswith("$: not valid JSON"):
            assert entry["reason"] == "$: not valid JSON"
        elif expected.startswith("$: expected a JSON object"):
            assert entry["reason"].startswith("$: expected a JSON object")
        else:
            assert entry["reason"] == expected, payload

    # input_avro holds the contract's Avro encoding (schema derived from lead_scoring.contract)
    schema = fastavro.parse_schema(lead_avro_schema())
    consumer = running.kafka.consumer(f"avro-{uuid.uuid4().hex[:6]}")
    consumer.subscribe([running.topic("input_avro")])
    decoded = []
    deadline = time.monotonic() + 30
    while len(decoded) < 20 and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            decoded.append(fastavro.schemaless_reader(io.BytesIO(msg.value()), schema, schema))
    consumer.close()
    originals = {r["Id"]: r for r in good}
    for rec in decoded:
        src = originals[rec["Id"]]
        assert rec["_ObjectType"] == src["_ObjectType"] and rec["Time_On_Website__c"] == src["Time_On_Website__c"]
        assert (
            rec["LastModifiedDate"].isoformat().replace("+00:00", "")[:23] == src["LastModifiedDate"].rstrip("Z")[:23]
        )


def test_failed_rollout_leaves_the_old_statements_running(running) -> None:
    before = running.jobs()
    result = running.deploy("m-not-served")  # the server answers with another version: preflight fails
    assert not result.success
    assert "answers with version" in _failure(result)
    assert running.jobs() == before


def _replay_during(running, seed: int, action) -> tuple[dict[str, dict[str, Any]], Any]:
    """`action()` while 500 leads stream in at 35/s; every lead and contact must be scored exactly once."""
    good = records(500, seed=seed)
    keys = {r["Id"] for r in good}
    messages = [(r["Id"], json.dumps(r).encode()) for r in good]
    replay = threading.Thread(target=produce, args=(running.kafka, running.topic("input_raw"), messages, 35.0))
    replay.start()
    time.sleep(3)
    result = action()
    replay.join()
    leads = {r["Id"] for r in good if r["_ObjectType"] == "Lead"}
    contacts = keys - leads
    lead_scores = assert_once(read(running.kafka, running.topic("lead_scores"), leads), leads, "leads")
    assert_once(read(running.kafka, running.topic("contact_scores"), contacts), contacts, "contacts")
    return {r["Id"]: lead_scores.get(r["Id"]) for r in good if r["Id"] in lead_scores}, result


def test_a_new_model_version_is_served_without_touching_the_stream(running) -> None:
    v1, v2 = running.versions
    before = running.jobs()

    def retrain():
        swap_model(running.url, v2, MODEL)  # model_deployment's local hot swap
        return running.deploy(v2)

    scores, result = _replay_during(running, 11, retrain)
    assert result.success, _failure(result)
    assert running.jobs() == before  # the same four jobs: nothing stopped, no gap, nothing cold
    md = result.asset_materializations_for_node("flink_statements")[0].metadata
    assert md["model_version"].value == v2 and md["stopped"].value == []
    assert {s["action"] for s in md["statements"].value} == {"unchanged"}
    assert md["preflight"].value["model_version"] == v2  # the probe saw the new version answer
    versions = [s["Lead_Score_Model__c"] for s in scores.values()]
    assert set(versions) <= {v1, v2} and versions[-1] == v2


def test_changed_sql_is_handed_over_during_a_replay_and_loses_nothing(running) -> None:
    before = by_role(running.jobs(), running.names)
    v2 = running.versions[1]
    _, result = _replay_during(running, 12, lambda: running.deploy(v2, model_batch_size=32))
    assert result.success, _failure(result)
    after = by_role(running.jobs(), running.names)
    # the scoring statements' SQL changed (the provider's batch size): new statements from the old ones'
    # savepoints; validate and route render the same SQL and keep running, the same jobs
    for role in ("validate", "route"):
        assert after[role] == before[role]
    for role in ("score-leads", "score-contacts"):
        assert after[role][0] != before[role][0]
    md = result.asset_materializations_for_node("flink_statements")[0].metadata
    assert sorted(md["stopped"].value) == sorted([before["score-leads"][0], before["score-contacts"][0]])
    assert "'batch-size' = '32'" in md["rendered_sql"].value


def test_model_server_down_for_10_s_loses_nothing(running) -> None:
    good = records(360, seed=23)
    keys = {r["Id"] for r in good}
    messages = [(r["Id"], json.dumps(r).encode()) for r in good]
    replay = threading.Thread(target=produce, args=(running.kafka, running.topic("input_raw"), messages, 30.0))
    replay.start()
    time.sleep(2)
    serving = httpx.get(f"{running.url}/v2/models/{MODEL}", timeout=10).json()["versions"][0]
    running.server.stop()
    time.sleep(10)
    running.server = ModelServerProcess(
        running.uris[serving], port=running.port, log_path=running.log, model_name=MODEL
    ).start()
    replay.join()

    leads = {r["Id"] for r in good if r["_ObjectType"] == "Lead"}
    contacts = keys - leads
    assert_once(read(running.kafka, running.topic("lead_scores"), leads), leads, "leads")
    assert_once(read(running.kafka, running.topic("contact_scores"), contacts), contacts, "contacts")
    jobs = running.jobs()
    assert len(jobs) == 4, jobs  # nothing failed: the provider retried until the server was back
