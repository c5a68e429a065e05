"""The CRM edges on the real local stack: replay into Kafka, the sink and writeback workers.

Each test uses its own topics, consumer groups and DuckDB file, so it neither sees nor disturbs the
stack-managed workers (which read the pipeline's own topics); the last test checks those.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import NewTopic

from lead_scoring.contract import validate_record
from lead_scoring.crm import consumer_watch
from lead_scoring.crm import replay as replay_module
from lead_scoring.crm.heartbeat import GROUP_IDS, SINK, WRITEBACK, worker_health
from lead_scoring.crm.replay import frame_records, load_events, replay
from lead_scoring.crm.synthetic import generate_leads, write_frame
from lead_scoring.crm.workers import MicroBatchWorker
from lead_scoring.stack.ports import free_port
from lead_scoring.streaming import producer_watch
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import end_offset, group_lag
from lead_scoring.streaming.topics import INPUT_RAW, LEAD_SCORES
from lead_scoring.warehouse.resources import DuckDBWarehouse

pytestmark = pytest.mark.stack
log = logging.getLogger(__name__)

# ../shared beside the checkout, as in CI
X_EDUCATION = Path(__file__).resolve().parents[3] / "shared" / "data" / "x_education_leads_dev.csv"
MAPPING = Path(__file__).resolve().parents[2] / "data" / "mappings" / "x_education.yaml"


def _name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def create_topics(kafka: KafkaResource, names: list[str], partitions: int = 3) -> None:
    admin = kafka.admin()  # keep the client alive until the futures resolve
    futures = admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1) for n in names])
    for future in futures.values():
        future.result(30)


def consume_all(kafka: KafkaResource, topic: str, count: int, timeout_s: float = 60.0) -> list:
    consumer = kafka.consumer(_name("check"))
    consumer.subscribe([topic])
    got = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(msg)
        # anything beyond `count` would be a duplicate: read a little longer
        end = time.monotonic() + 2.0
        while time.monotonic() < end:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                got.append(msg)
    finally:
        consumer.close()
    return got


def group_assigned(kafka: KafkaResource, group: str) -> bool:
    admin = kafka.admin()
    [future] = admin.describe_consumer_groups([group]).values()
    try:
        desc = future.result(10)
    except Exception:
        return False
    return any(m.assignment and m.assignment.topic_partitions for m in desc.members)


def wait_until(
    check: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.5, logs: list[Path] | None = None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval_s)
    tails = "\n".join(f"--- {p.name}\n" + "\n".join(p.read_text().splitlines()[-15:]) for p in logs or [])
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{tails}")


def _leads_cli(local_stack, topic: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`lead-scoring leads ARGS` sending leads and their outcomes to `topic`, in a subprocess as a user runs it
    (wide output: the summaries are not wrapped)."""
    command = ["leads", *args, "--with-outcomes", "--topic", topic, "--bootstrap", local_stack.kafka_bootstrap]
    return subprocess.run(
        [str(Path(sys.executable).parent / "lead-scoring"), *command],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def synthetic_csv(tmp_path) -> Path:
    path = tmp_path / "leads.csv"
    write_frame(generate_leads(300, seed=11), path)
    return path


def test_replay_produces_contract_records_keyed_by_id_at_a_steady_rate(local_stack, synthetic_csv):
    kafka = local_stack.kafka()
    topic = _name("replay")
    create_topics(kafka, [topic])
    events, rejected = load_events(synthetic_csv, with_outcomes=True)
    created = int((events["_EventType"] == "created").sum())
    assert rejected == 0 and created == 300 and len(events) > created  # outcomes follow

    summary = replay(kafka, frame_records(events), topic, rate=400.0)

    assert (summary.sent, summary.failed) == (len(events), 0)
    assert summary.elapsed_s >= (len(events) - 1) / 400.0  # the rate is a ceiling...
    assert summary.rate > 200.0  # ...and is roughly achieved
    messages = consume_all(kafka, topic, len(events))
    assert len(messages) == len(events)  # idempotent producer: nothing twice
    records = [json.loads(m.value()) for m in messages]
    assert all(m.key().decode() == r["Id"] for m, r in zip(messages, records, strict=True))
    assert [e for r in records for e in validate_record(r)] == []
    # within a partition (= per Id), a lead's outcome event comes after its creation event
    seen: dict[str, str] = {}
    for r in sorted(zip(messages, records, strict=True), key=lambda mr: (mr[0].partition(), mr[0].offset())):
        rec = r[1]
        if rec["_EventType"] == "updated":
            assert seen.get(rec["Id"]) == "created" and isinstance(rec["IsConverted"], bool)
        else:
            assert "IsConverted" not in rec
        seen[rec["Id"]] = rec["_EventType"]


@pytest.mark.skipif(not X_EDUCATION.is_file(), reason="the X Education export is not on this machine")
def test_replay_cli_on_the_x_education_export(local_stack):
    topic = _name("replay_cli")
    create_topics(local_stack.kafka(), [topic])
    proc = _leads_cli(
        local_stack,
        topic,
        "replay",
        str(X_EDUCATION),
        "--mapping",
        str(MAPPING),
        "--limit",
        "60",
        "--rate",
        "300",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sent 120, failed 0" in proc.stdout  # 60 leads created + their 60 outcomes
    messages = consume_all(local_stack.kafka(), topic, 120)
    assert len(messages) == 120
    assert sum(json.loads(m.value()).get("IsConverted") is not None for m in messages) == 60


def _score(rid: str, object_type: str, i: int) -> dict:
    now = int(time.time() * 1000)
    return {
        "Id": rid,
        "_ObjectType": object_type,
        "_EventType": "updated",
        "Lead_Score__c": i % 101,
        "Lead_Score_Reasons__c": f"+Lead Add Form; -Email Bounced #{i}",
        "Lead_Score_Model__c": "vtest",
        "source_ts": now - 30,
        "scored_ts": now,
    }


class Worker:
    """A worker subprocess on the test's topics."""

    def __init__(
        self,
        name: str,
        bootstrap: str,
        warehouse: Path,
        group: str,
        raw: str,
        scores: list[str],
        log: Path,
        batch: int = 50,
        max_wait: float = 0.2,
    ):
        self.argv = [
            sys.executable,
            "-m",
            "lead_scoring_tests.crm.run_worker",
            name,
            bootstrap,
            str(warehouse),
            group,
            raw,
            *scores,
            "--batch",
            str(batch),
            "--max-wait",
            str(max_wait),
        ]
        self.name = name
        self.log = log
        self.home = log.parent / f"{name}-home"  # its own state folder: a heartbeat no other worker wrote
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        with open(self.log, "ab") as out:  # the child has its own copy of the descriptor
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parents[2],
                env={**os.environ, "LEAD_SCORING_HOME": str(self.home)},
            )
        return self

    def wait_consuming(self, timeout_s: float = 180.0) -> None:
        """Until the worker holds its partitions (its heartbeat says so), so a test's stream starts after it."""
        wait_until(
            lambda: worker_health(self.name, self.home) is None, timeout_s, f"{self.name} to consume", logs=[self.log]
        )

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout_s)

    def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _count(warehouse: DuckDBWarehouse, sql: str) -> int:
    return int(warehouse.query(sql).iloc[0, 0])


def test_workers_killed_mid_stream_and_restarted_land_everything_exactly_once(local_stack, tmp_path):
    kafka = local_stack.kafka()
    raw, leads_t, contacts_t = _name("raw"), _name("lscores"), _name("cscores")
    create_topics(kafka, [raw, leads_t, contacts_t])
    wh_path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(path=str(wh_path))
    groups = {"sink": _name("sink"), "writeback": _name("writeback")}

    n = 900
    ids = [f"{'003' if i % 5 == 0 else '00Q'}T{uuid.uuid4().hex[:12]}" for i in range(n)]
    probes = [f"PROBE-{uuid.uuid4().hex[:8]}" for _ in range(5)]
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    raw_records = [
        {
            "Id": rid,
            "_ObjectType": "Contact" if rid.startswith("003") else "Lead",
            "_EventType": "created",
            "LastModifiedDate": stamp,
            "LeadSource": "Google",
        }
        for rid in ids + probes
    ]
    scores = [_score(rid, "Contact" if rid.startswith("003") else "Lead", i) for i, rid in enumerate(ids + probes)]

    workers = {
        name: Worker(
            name,
            local_stack.kafka_bootstrap,
            wh_path,
            groups[name],
            raw,
            [leads_t, contacts_t],
            tmp_path / f"{name}.log",
        )
        for name in ("sink", "writeback")
    }

    def produce_all() -> None:
        # 100/s: the kill below must land mid-stream even when a loaded machine lets the sink catch up in bursts
        # (at 300/s a CI run once saw all 905 raw rows landed by the time 150 were counted)
        replay(kafka, iter(raw_records), raw, rate=100.0)
        replay(kafka, (s for s in scores if s["_ObjectType"] == "Lead"), leads_t, rate=300.0)
        replay(kafka, (s for s in scores if s["_ObjectType"] == "Contact"), contacts_t, rate=300.0)

    try:
        for w in workers.values():
            w.start()
        for w in workers.values():  # under load a worker's start-up can outlast the whole stream
            w.wait_consuming()
        producer = threading.Thread(target=produce_all)
        producer.start()
        log.info("workers started, producing")
        # Kill both once some, not all, of the stream has landed: mid-stream, some batches uncommitted.
        wait_until(
            lambda: _count(warehouse, "SELECT COUNT(*) FROM crm_leads_raw") >= 150,
            120,
            "first sink batches",
            logs=[w.log for w in workers.values()],
        )
        log.info("first sink batches landed; killing the workers")
        for w in workers.values():
            w.kill()
        landed_at_kill = _count(warehouse, "SELECT COUNT(*) FROM crm_leads_raw")
        for w in workers.values():
            w.start()
        log.info("workers restarted (%d raw rows had landed)", landed_at_kill)
        producer.join(120)
        log.info("all produced")
        assert landed_at_kill < len(raw_records), "the kill was not mid-stream; produce more or slower"
        expected_crm = n  # probes are never written back
        totals = (
            f"SELECT (SELECT COUNT(*) FROM lead_scores) >= {len(scores)} "
            f"AND (SELECT COUNT(*) FROM crm_leads) >= {expected_crm} "
            f"AND (SELECT COUNT(*) FROM crm_leads_raw) >= {len(raw_records)}"
        )
        wait_until(
            lambda: bool(warehouse.query(totals).iloc[0, 0]),
            180,
            "everything to land after the restart",
            interval_s=2.0,
            logs=[w.log for w in workers.values()],
        )
        log.info("everything landed")
        # Clean stop: SIGTERM flushes and exits 0, leaving no lag.
        assert [w.terminate() for w in workers.values()] == [0, 0]
    finally:
        for w in workers.values():
            w.ensure_stopped()

    assert _count(warehouse, "SELECT COUNT(*) FROM crm_leads_raw") == len(raw_records)
    assert _count(warehouse, "SELECT COUNT(DISTINCT Id) FROM crm_leads_raw") == len(raw_records)
    assert _count(warehouse, "SELECT COUNT(*) FROM lead_scores") == len(scores)
    assert _count(warehouse, "SELECT COUNT(DISTINCT Id) FROM lead_scores") == len(scores)
    assert _count(warehouse, "SELECT COUNT(*) FROM lead_scores WHERE _source = 'probe'") == len(probes)
    assert _count(warehouse, "SELECT COUNT(*) FROM crm_leads_raw WHERE _source = 'probe'") == len(probes)
    crm = warehouse.query("SELECT Id, _ObjectType, Lead_Score__c, Lead_Score_Reasons__c FROM crm_leads")
    assert len(crm) == n and crm["Id"].is_unique and not crm["Id"].str.startswith("PROBE-").any()
    expected = {s["Id"]: (s["_ObjectType"], s["Lead_Score__c"], s["Lead_Score_Reasons__c"]) for s in scores[:n]}
    assert {rid: (ot, int(sc), rs) for rid, ot, sc, rs in crm.values.tolist()} == expected
    assert _count(warehouse, "SELECT COUNT(*) FROM crm_writeback_errors") == 0
    assert group_lag(kafka, groups["sink"], [raw, leads_t, contacts_t]) == {raw: 0, leads_t: 0, contacts_t: 0}
    assert group_lag(kafka, groups["writeback"], [leads_t, contacts_t]) == {leads_t: 0, contacts_t: 0}


def test_sigterm_flushes_the_batch_a_worker_holds(local_stack, tmp_path):
    kafka = local_stack.kafka()
    raw, leads_t = _name("raw"), _name("lscores")
    create_topics(kafka, [raw, leads_t])
    wh_path = tmp_path / "warehouse.duckdb"
    group = _name("sink")
    # A batch that never fills and never times out: only the SIGTERM flush can write it.
    worker = Worker(
        "sink",
        local_stack.kafka_bootstrap,
        wh_path,
        group,
        raw,
        [leads_t],
        tmp_path / "sink.log",
        batch=100_000,
        max_wait=3600,
    ).start()
    try:
        scores = [_score(f"00QS{i:06d}", "Lead", i) for i in range(40)]
        assert replay(kafka, iter(scores), leads_t).sent == 40
        wait_until(lambda: group_assigned(kafka, group), 90, "the worker to be assigned its partitions")
        time.sleep(3)  # let it poll the messages into its batch
        assert group_lag(kafka, group, [leads_t]) == {leads_t: 40}  # held, not written
        assert worker.terminate() == 0
    finally:
        worker.ensure_stopped()
    warehouse = DuckDBWarehouse(path=str(wh_path))
    assert _count(warehouse, "SELECT COUNT(*) FROM lead_scores") == 40
    assert group_lag(kafka, group, [leads_t]) == {leads_t: 0}


def test_stack_up_runs_the_workers_on_the_pipeline_topics(local_stack):
    stack = local_stack.stack
    workers = [WRITEBACK, SINK]
    try:
        statuses = {s.name: s for s in stack.up(workers)}  # waits until both have joined their groups
        for name in workers:
            assert statuses[name].state == "healthy", statuses[name]
            assert statuses[name].detail.startswith("lag "), statuses[name]
        kafka = local_stack.kafka()
        rid = f"00QU{uuid.uuid4().hex[:10]}"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
        assert replay(kafka, iter([{"Id": rid, "_ObjectType": "Lead", "LastModifiedDate": stamp}]), INPUT_RAW).sent == 1
        assert replay(kafka, iter([_score(rid, "Lead", 77)]), LEAD_SCORES).sent == 1
        warehouse = DuckDBWarehouse(path=str(Path(stack.cfg.state_root) / "warehouse" / "lead_scoring.duckdb"))
        wait_until(
            lambda: (
                _count(warehouse, f"SELECT COUNT(*) FROM crm_leads WHERE Id = '{rid}'") == 1
                and _count(warehouse, f"SELECT COUNT(*) FROM crm_leads_raw WHERE Id = '{rid}'") == 1
                and _count(warehouse, f"SELECT COUNT(*) FROM lead_scores WHERE Id = '{rid}'") == 1
            ),
            90,
            "the stack's workers to land the records",
        )
        assert _count(warehouse, f"SELECT Lead_Score__c FROM crm_leads WHERE Id = '{rid}'") == 77
        wait_until(
            lambda: sum(group_lag(kafka, GROUP_IDS["writeback"], [LEAD_SCORES]).values()) == 0,
            30,
            "the writeback to commit",
        )
        assert {s.name: s.state for s in stack.status(workers)} == dict.fromkeys(workers, "healthy")
    finally:
        assert sorted(stack.down(workers)) == sorted(workers)
    assert {s.name: s.state for s in stack.status(workers)} == dict.fromkeys(workers, "stopped")
    # SIGTERM made each worker flush and close: their logs end with the clean-stop line.
    for name in workers:
        assert f"{name} stopped cleanly" in stack.log_path(name).read_text()


def test_leads_generate_cli_streams_valid_synthetic_leads(local_stack):
    topic = _name("generate")
    create_topics(local_stack.kafka(), [topic])
    proc = _leads_cli(
        local_stack,
        topic,
        "generate",
        "--rate",
        "50",
        "--limit",
        "40",
        "--outcome-delay",
        "0.2",
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sent 40, failed 0" in proc.stdout
    messages = consume_all(local_stack.kafka(), topic, 40)
    records = [json.loads(m.value()) for m in messages]
    assert len(records) == 40 and [e for r in records for e in validate_record(r)] == []
    assert any(r["_EventType"] == "updated" and isinstance(r["IsConverted"], bool) for r in records)


class _Recorder:
    """A handler that keeps what it was given, by (topic, partition, offset)."""

    def __init__(self) -> None:
        self.seen: Counter[tuple[str, int, int]] = Counter()

    def handle(self, batch) -> dict[str, int]:
        self.seen.update((m.topic, m.partition, m.offset) for m in batch)
        return {"written": len(batch)}


class _FirstConsumerStalls(MicroBatchWorker):
    """Its first Kafka consumer is left stalled by `stall(consumer, partitions)` on assignment: a real client, put
    in the state by librdkafka's own API."""

    def __init__(self, *args, stall: Callable[[Any, list], None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._stall = stall
        self.stalled_once = False

    def _on_assign(self, consumer, partitions) -> None:
        super()._on_assign(consumer, partitions)
        if not self.stalled_once:
            self._stall(consumer, partitions)
            self.stalled_once = True


def _pause(consumer, partitions) -> None:
    """Hold the partitions without fetching them, as a client stuck after a broker restart does (librdkafka#5153)."""
    consumer.pause(partitions)


def _unassign(consumer, partitions) -> None:
    """Give the partitions up inside the assignment callback, so the group coordinator counts the consumer as their
    owner while it fetches nothing: the state a worker was seen in at load 12 (0 partitions, "Waiting for
    coordinator", lag 490 for 300 s). The callback's own unassign() replaces the automatic assign()."""
    consumer.unassign()


def _run_in_thread(worker: MicroBatchWorker) -> threading.Thread:
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    return thread


@contextmanager
def _stalling_worker(
    local_stack, tmp_path: Path, stall: Callable[[Any, list], None], stem: str, id_prefix: str, count: int, **options
) -> Iterator[tuple[_FirstConsumerStalls, _Recorder]]:
    """A writeback worker whose first consumer `stall` leaves stalled, running in a thread over `count` scores on
    a fresh topic; stopped on exit."""
    kafka = local_stack.kafka()
    topic = _name(stem)
    create_topics(kafka, [topic])
    scores = [_score(f"{id_prefix}{i:06d}", "Lead", i) for i in range(count)]
    assert replay(kafka, iter(scores), topic).sent == count
    recorder = _Recorder()
    worker = _FirstConsumerStalls(
        kafka,
        _name(stem),
        [topic],
        recorder,
        name="writeback",
        max_wait_s=0.2,
        heartbeat_path=tmp_path / "writeback.json",
        stall=stall,
        **options,
    )
    thread = _run_in_thread(worker)
    try:
        yield worker, recorder
    finally:
        worker.stop()
        thread.join(60)


def _replaced_once_and_nothing_lost(worker: MicroBatchWorker, recorder: _Recorder) -> None:
    assert worker.stats.reconnects == 1
    assert set(recorder.seen.values()) == {1}  # the stalled consumer had fetched nothing: nothing twice
    assert group_lag(worker.kafka, worker.group_id, worker.topics) == dict.fromkeys(worker.topics, 0)


def test_a_consumer_that_stops_fetching_is_replaced_and_nothing_is_lost(local_stack, tmp_path, monkeypatch):
    monkeypatch.setattr(consumer_watch, "FETCH_STALL_S", 3.0)
    stalling = _stalling_worker(local_stack, tmp_path, _pause, "stall", "00QT", 60, batch_size=500)
    with stalling as (worker, recorder):
        wait_until(lambda: len(recorder.seen) == 60, 90, "the 60 records written after the stuck consumer is replaced")
    assert worker.stalled_once
    _replaced_once_and_nothing_lost(worker, recorder)
    assert json.loads((tmp_path / "writeback.json").read_text())["reconnects"] == 1  # in its heartbeat


def test_a_consumer_left_without_partitions_is_replaced_and_nothing_is_lost(local_stack, tmp_path, monkeypatch):
    monkeypatch.setattr(consumer_watch, "FETCH_STALL_S", 3.0)
    stalling = _stalling_worker(local_stack, tmp_path, _unassign, "unassigned", "00QU", 40)
    with stalling as (worker, recorder):
        wait_until(lambda: worker.stalled_once, 60, "the first assignment")
        time.sleep(1.5)
        assert json.loads((tmp_path / "writeback.json").read_text())["assigned_partitions"] == 0
        wait_until(lambda: len(recorder.seen) == 40, 90, "the 40 records written after the consumer is replaced")
    _replaced_once_and_nothing_lost(worker, recorder)


def test_a_producer_that_acknowledges_nothing_with_the_broker_up_is_replaced_and_nothing_is_lost(
    local_stack, monkeypatch
):
    # After a broker restart an idempotent producer once acknowledged nothing for 10 minutes ("Failed to acquire
    # idempotence PID ... Coordinator load in progress"). Here the first client talks to a port nothing listens
    # on, while the broker itself answers: a client stuck, not a broker away.
    monkeypatch.setattr(producer_watch, "PRODUCER_STALL_S", 2.0)
    kafka = local_stack.kafka()
    topic = _name("stuckproducer")
    create_topics(kafka, [topic])
    clients = []

    def make_producer(**overrides):
        stuck = not clients
        conf = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0} if stuck else {}
        clients.append(kafka.producer(**overrides, **conf))
        return clients[-1]

    out = replay_module.Producer(kafka, topic, make_producer=make_producer)
    for i in range(20):
        out.send(_score(f"00QP{i:06d}", "Lead", i))
    summary = out.close(timeout_s=60)
    assert (summary.sent, summary.failed, out.replaced) == (20, 0, 1)
    assert end_offset(kafka, topic) == 20


def test_an_idle_worker_behind_a_transaction_marker_is_not_replaced_over_and_over(local_stack, tmp_path, monkeypatch):
    # The log of a transactionally written topic ends in a commit marker no consumer returns: an idle worker
    # may sit one offset short of the log's end for good. One replacement at most, never one per check.
    monkeypatch.setattr(consumer_watch, "FETCH_STALL_S", 1.0)
    kafka = local_stack.kafka()
    topic = _name("txn")
    create_topics(kafka, [topic], partitions=1)
    producer = Producer({**kafka.client_config(), "transactional.id": _name("txn")})
    producer.init_transactions(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=f"k{i}", value=json.dumps(_score(f"00QX{i:06d}", "Lead", i)))
    producer.commit_transaction(30)
    recorder = _Recorder()
    worker = MicroBatchWorker(
        kafka, _name("txn"), [topic], recorder, name="sink", max_wait_s=0.2, heartbeat_path=tmp_path / "sink.json"
    )
    thread = _run_in_thread(worker)
    try:
        wait_until(lambda: len(recorder.seen) == 5, 90, "the 5 committed records")
        time.sleep(25)  # idle: several rounds of the stall check
    finally:
        worker.stop()
        thread.join(60)
    assert worker.stats.reconnects <= 1
    assert set(recorder.seen.values()) == {1}
