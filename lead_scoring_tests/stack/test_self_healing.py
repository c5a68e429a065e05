"""The product heals itself, on a private full stack: a killed service comes back counted, the statements come
back after a JobManager crash and after a reboot (`stack down` + `stack up`), and the CRM workers ride out a
broker outage. Counts are exact: every lead is scored, written to the CRM and landed in the warehouse once.

The stack here is the product's: the supervisor, Kafka, Flink, the model server and both workers, and the
pipeline under its default names, so the supervisor's own hooks (savepoints before stop, restore after a
JobManager restart) are what brings the statements back. Nothing in these tests restarts anything.

Every bound is one today's code meets and a regression breaks: `lead-scoring audit` of each stream's window
finds every lead in the CRM, `crm_leads_raw`, `lead_scores` and the ledger exactly once (0 missing, 0 doubled);
on the score topics a crash restored from checkpoints re-scores only input that came after the newest
checkpoint completed before the kill (less `LATENCY_SLACK_S`), each change at most once more. Waits are on
conditions (scores seen, a checkpoint completed, a quiet topic), not on sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import psutil
import pytest
from confluent_kafka import TopicPartition

from lead_scoring.cli.product import statements_problem
from lead_scoring.cli.stack import wait_for_the_statements
from lead_scoring.crm.heartbeat import SINK, WRITEBACK, read_heartbeat
from lead_scoring.crm.replay import replay
from lead_scoring.crm.synthetic import frame_records, generate_leads
from lead_scoring.crm.writeback import parse_score
from lead_scoring.monitoring.audit import UNCHANGED, AuditReport, audit
from lead_scoring.monitoring.pipeline import pipeline_consumer_groups
from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.services import local_stack
from lead_scoring.serving.service import MODEL_SERVER
from lead_scoring.settings import Profile
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import JOBMANAGER
from lead_scoring.stack.install import install
from lead_scoring.stack.kafka import KAFKA
from lead_scoring.stack.service_status import pid_alive
from lead_scoring.stack.stack import Stack
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.healing import local_engine
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import group_lag
from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline
from lead_scoring.streaming.rollout import rollout
from lead_scoring.streaming.topics import CONTACT_SCORES, INPUT_RAW, LEAD_SCORES, TOPICS
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

CHECKPOINT_S = 10
RATE = 100.0
# A record is through validate + split + the scoring stage's source within this long (p99 ~1 s on a loaded
# 2-core machine): input older than the restored checkpoint by more than this was scored before it, never again.
LATENCY_SLACK_S = 5.0


@dataclass
class Product:
    stack: Stack
    kafka: KafkaResource
    warehouse: DuckDBWarehouse
    prefix: str = "lead-scoring"

    def pid(self, name: str) -> int:
        rec = self.stack.files.record(name)
        assert rec is not None and rec.pid, f"{name} has no running process"
        return rec.pid


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Product]:
    root = tmp_path_factory.mktemp("healing")
    cfg = StackConfig.isolated(root)
    install(cfg)
    stack = local_stack(cfg)
    try:
        stack.up()
        repo = ArtifactRepository(LocalBlobs(root / "artifacts"), Profile.LOCAL)
        artifact = repo.save(fit_model(n=300, seed=5), manifest={"trained_on": "self-healing tests"})
        repo.set_production(artifact.version)
        stack.up([MODEL_SERVER], args={MODEL_SERVER: {"artifact": artifact.uri}})
        kafka = KafkaResource(bootstrap_servers=cfg.kafka_bootstrap)
        ensure_topics(kafka.admin(), TOPICS)
        settings = RenderSettings(
            Dialect.FLINK,
            artifact.version,
            f"{cfg.model_url}/v1/models/{cfg.model_name}:predict",
            kafka_bootstrap=cfg.kafka_bootstrap,
            checkpoint_interval=f"{CHECKPOINT_S} s",
        )
        rollout(local_engine(cfg), render_pipeline(settings), verify_timeout_s=300)
        yield Product(stack, kafka, DuckDBWarehouse(path=str(root / "warehouse" / "lead_scoring.duckdb")))
    finally:
        stack.down()


class Scores(threading.Thread):
    """Every score of the run's Ids on lead_scores / contact_scores, read from their current end."""

    def __init__(self, kafka: KafkaResource, tag: str):
        super().__init__(daemon=True)
        self.tag = tag
        self.ids: Counter[str] = Counter()
        self.source_ms: dict[str, int] = {}  # Id -> the input's Kafka timestamp (each run's Id has one record)
        self.received = 0
        self._done = threading.Event()
        self.consumer = kafka.consumer(f"healing-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": False})
        assignment = []
        for topic in (LEAD_SCORES, CONTACT_SCORES):
            for p in self.consumer.list_topics(topic, timeout=30).topics[topic].partitions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                assignment.append(TopicPartition(topic, p, high))
        self.consumer.assign(assignment)
        self.start()

    def run(self) -> None:
        while not self._done.is_set():
            for msg in self.consumer.consume(500, timeout=0.5):
                if msg.error() is None and msg.value() is not None:
                    rid = json.loads(msg.value())["Id"]
                    if rid.startswith(self.tag):
                        self.ids[rid] += 1
                        self.received += 1
                        score, _ = parse_score(msg.value())
                        if score is not None and score["source_ts"] is not None:
                            self.source_ms[rid] = int(score["source_ts"].value // 1_000_000)
        self.consumer.close()

    def stop(self) -> None:
        self._done.set()
        self.join(30)

    def wait_for(self, n: int, timeout_s: float = 120.0) -> None:
        """Until at least `n` of the run's leads were scored (the stream flows through the whole pipeline)."""
        wait_until(
            lambda: True if len(self.ids) >= n else None,
            timeout_s=timeout_s,
            interval_s=0.2,
            what=f"{n} of the stream's leads scored",
        )

    def wait_quiet(self, quiet_s: float = CHECKPOINT_S, timeout_s: float = 120.0) -> None:
        """Until no score of the run arrived for `quiet_s` (late replays of a restore included)."""
        seen = [self.received, time.monotonic()]

        def quiet() -> bool | None:
            if self.received != seen[0]:
                seen[:] = [self.received, time.monotonic()]
            return True if time.monotonic() - seen[1] >= quiet_s else None

        wait_until(quiet, timeout_s=timeout_s, interval_s=0.5, what=f"no new score for {quiet_s:.0f} s")


def _checkpointed_after(product: Product, after_ms: float, timeout_s: float = 60.0) -> int:
    """Until every statement has completed a checkpoint triggered after `after_ms`; the oldest of their newest
    completed checkpoints (epoch ms): what a restore goes back to at most."""
    engine = local_engine(product.stack.cfg)
    rest = product.stack.cfg.flink_rest_url

    def newest() -> int | None:
        stamps = []
        for jid in engine.running(product.prefix).values():
            latest = httpx.get(f"{rest}/jobs/{jid}/checkpoints", timeout=10).json().get("latest") or {}
            stamps.append(int((latest.get("completed") or {}).get("trigger_timestamp") or 0))
        return min(stamps) if len(stamps) == 4 and min(stamps) > after_ms else None

    return wait_until(newest, timeout_s=timeout_s, interval_s=0.5, what="a checkpoint of every statement")


def _leads(n: int, tag: str, seed: int) -> list[dict]:
    records = list(frame_records(generate_leads(n, seed=seed)))
    for i, record in enumerate(records):
        record["Id"] = f"{tag}{i:05d}"
    return records


def _stream(product: Product, records: list[dict]) -> threading.Thread:
    def send() -> None:
        summary = replay(product.kafka, iter(records), INPUT_RAW, rate=RATE)
        assert summary.failed == 0, summary.errors

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def _lag(product: Product) -> int:
    """Messages the pipeline's Flink statements have not consumed yet."""
    return sum(
        sum(group_lag(product.kafka, g.group_id, g.topics).values())
        for g in pipeline_consumer_groups()
        if "-flink-" in g.group_id
    )


def _count(warehouse: DuckDBWarehouse, table: str, tag: str) -> int:
    return int(warehouse.query(f"SELECT COUNT(DISTINCT Id) AS n FROM {table} WHERE STARTS_WITH(Id, '{tag}')")["n"][0])


def _caught_up_with_a_bounded_replay(product: Product, scores: Scores, n: int, checkpoint_ms: int) -> None:
    """After a crash restored from checkpoints: nothing lost; only input after the newest checkpoint completed
    before the crash (`checkpoint_ms`, less the pipeline's latency) is scored again, each change at most once
    more (not once per stage)."""
    wait_until(
        lambda: True if _lag(product) == 0 else None,
        timeout_s=120,
        interval_s=1,
        what="the restored statements caught up",
    )
    scores.wait_quiet()
    scores.stop()
    assert len(scores.ids) == n  # nothing lost
    twice = {i for i, c in scores.ids.items() if c > 1}
    cutoff = checkpoint_ms - LATENCY_SLACK_S * 1000
    before = sorted(i for i in twice if scores.source_ms[i] < cutoff)
    after = sum(1 for ms in scores.source_ms.values() if ms >= cutoff)
    assert before == [], (
        f"{len(before)} lead(s) sent more than {LATENCY_SLACK_S:.0f} s before the restored "
        f"checkpoint were scored again (e.g. {before[:3]}): the restore went back too far"
    )
    assert len(twice) <= after  # the bound, stated: at most the input after the checkpoint
    assert max(scores.ids.values()) <= 2


def _reconciled(product: Product, since: datetime, n: int, timeout_s: float = 300.0) -> AuditReport:
    """Until `lead-scoring audit` of the window finds all `n` leads in every hop; then: 0 missing, 0 doubled in the
    CRM, crm_leads_raw, lead_scores and the ledger (replays on the score topics are reported, not counted)."""

    def complete() -> AuditReport | None:
        report = audit(product.kafka, product.warehouse, since, grace_s=3600.0)
        return report if report.ok and report.late == 0 else None

    try:
        report = wait_until(complete, timeout_s=timeout_s, interval_s=3, what="every hop holding the stream")
    except WaitTimeout:
        final = audit(product.kafka, product.warehouse, since, grace_s=0.0)
        raise AssertionError(f"{final.verdict()}; {_landing_state(product, '')}") from None
    # The local CRM echoes each written score to input_raw (as Salesforce does): audited, not scored again. A
    # lead is written once, and once more if its score was replayed after the crash (at most once, asserted by
    # the caller) or its write redone after the writeback was killed: an echo loop would pass any bound.
    echoes = report.excluded.get(UNCHANGED, 0)
    assert report.audited - echoes == n and echoes <= 2 * n, report.verdict()
    for hop in report.hops:
        assert hop.missing == 0 and (hop.replays_allowed or hop.doubled == 0), hop.summary()
    return report


def _landing_state(product: Product, tag: str) -> str:
    """Where the leads stopped: the two tables' counts and every consumer group's lag (Flink and workers)."""
    lags = {g.role: sum(group_lag(product.kafka, g.group_id, g.topics).values()) for g in pipeline_consumer_groups()}
    return (
        f"crm_leads {_count(product.warehouse, 'crm_leads', tag)}, crm_leads_raw "
        f"{_count(product.warehouse, 'crm_leads_raw', tag)}, lag {lags}, workers {_heartbeats(product)} "
        f"at {time.time():.0f}"
    )


def _heartbeats(product: Product) -> str:
    """Where each CRM worker says it stands (its heartbeat file)."""
    state_root = product.stack.cfg.state.parent
    return str(
        {
            w: {
                k: (read_heartbeat(w, state_root) or {}).get(k)
                for k in ("state", "detail", "ts", "consumed", "assigned_partitions", "reconnects")
            }
            for w in (WRITEBACK, SINK)
        }
    )


def test_a_killed_service_is_restarted_and_counted(product: Product) -> None:
    before = product.stack.files.record(SINK)
    assert before is not None and before.restarts == 0
    os.kill(product.pid(SINK), signal.SIGKILL)
    wait_until(
        lambda: (r := product.stack.files.record(SINK)) and r.state == "running" and r.restarts == 1 or None,
        timeout_s=90,
        interval_s=1,
        what="the sink restarted by the supervisor",
    )
    [status] = product.stack.status([SINK])
    assert status.restarts == 1 and status.last_exit == "SIGKILL" and status.pid != before.pid


def test_jobmanager_crash_restores_the_statements_with_nothing_lost(product: Product) -> None:
    tag = f"JM{uuid.uuid4().hex[:6]}-"
    records = _leads(1500, tag, seed=31)
    scores = Scores(product.kafka, tag)
    jobs_before = set(local_engine(product.stack.cfg).running(product.prefix).values())
    since = datetime.now(UTC) - timedelta(seconds=1)
    sender = _stream(product, records)
    scores.wait_for(200)
    # kill right after a checkpoint that holds part of this stream: what comes before it must never be re-scored
    checkpoint_ms = _checkpointed_after(product, since.timestamp() * 1000 + 8000)
    os.kill(product.pid(JOBMANAGER), signal.SIGKILL)
    sender.join()
    wait_until(
        lambda: True if len(scores.ids) == len(records) else None,
        timeout_s=240,
        interval_s=1,
        what="every lead scored after the JobManager crash",
    )
    # The TaskManager runs the old tasks until it notices the JobManager is gone; then the supervisor's hook
    # resubmits the four statements from their checkpoints, which replays what came after those.
    engine = local_engine(product.stack.cfg)

    def four_running() -> dict[str, str] | None:
        try:
            return r if len(r := engine.running(product.prefix)) == 4 else None
        except httpx.HTTPError:  # the JobManager is still on its way back
            return None

    restored = wait_until(four_running, timeout_s=180, interval_s=1, what="the four statements restored")
    assert not jobs_before & set(restored.values())  # new jobs, same statements
    _caught_up_with_a_bounded_replay(product, scores, len(records), checkpoint_ms)
    assert product.stack.files.record(JOBMANAGER).restarts == 1
    _reconciled(product, since, len(records))


def test_reboot_resumes_from_savepoints_exactly(product: Product) -> None:
    tag = f"RB{uuid.uuid4().hex[:6]}-"
    records = _leads(1200, tag, seed=37)
    scores = Scores(product.kafka, tag)
    since = datetime.now(UTC) - timedelta(seconds=1)
    sender = _stream(product, records)
    scores.wait_for(200)  # mid-stream
    product.stack.down()  # a laptop going to sleep: savepoints first, then every process
    product.stack.up()  # the producer held the rest; the statements come back from their savepoints
    # what `lead-scoring stack up` does next: returns once they run, so `product status` finds the product
    # deployed and scoring (and `scripts/up` does not rebuild it)
    wait_for_the_statements(product.stack.cfg, timeout_s=180)
    assert statements_problem(product.stack.cfg) is None
    sender.join()
    wait_until(
        lambda: True if len(scores.ids) == len(records) else None,
        timeout_s=300,
        interval_s=1,
        what="every lead scored after stack down + up",
    )
    scores.wait_quiet()
    scores.stop()
    assert len(scores.ids) == len(records)
    assert [i for i, n in scores.ids.items() if n > 1] == []  # the savepoint hand-over is exact
    _reconciled(product, since, len(records))


def test_power_loss_resumes_from_the_retained_checkpoints(product: Product) -> None:
    """Every process killed at once, the supervisor first (no savepoint, no orderly stop), then `stack up`."""
    tag = f"PL{uuid.uuid4().hex[:6]}-"
    records = _leads(1200, tag, seed=43)
    scores = Scores(product.kafka, tag)
    since = datetime.now(UTC) - timedelta(seconds=1)
    sender = _stream(product, records)
    scores.wait_for(200)
    checkpoint_ms = _checkpointed_after(product, since.timestamp() * 1000 + 8000)  # one holding part of the stream
    victims = [product.stack.files.daemon()] + [
        psutil.Process(r.pid) for r in product.stack.files.records().values() if r.pid and pid_alive(r.pid)
    ]
    for proc in victims:
        for p in [proc, *proc.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.kill()
    psutil.wait_procs(victims, timeout=30)
    product.stack.up()  # what `scripts/up` does after the machine comes back
    sender.join()
    wait_until(
        lambda: True if len(scores.ids) == len(records) else None,
        timeout_s=300,
        interval_s=1,
        what="every lead scored after the power loss",
    )
    _caught_up_with_a_bounded_replay(product, scores, len(records), checkpoint_ms)
    _reconciled(product, since, len(records))  # the replays are the same scores: one ledger row per lead


def test_the_workers_ride_out_a_broker_outage(product: Product) -> None:
    tag = f"BO{uuid.uuid4().hex[:6]}-"
    records = _leads(600, tag, seed=41)
    pids = {w: product.pid(w) for w in (WRITEBACK, SINK)}
    restarts = {w: product.stack.files.record(w).restarts for w in (WRITEBACK, SINK)}
    state_root = product.stack.cfg.state.parent
    since = datetime.now(UTC) - timedelta(seconds=1)
    scores = Scores(product.kafka, tag)
    sender = _stream(product, records)
    scores.wait_for(100)  # the stream flows through the pipeline when the broker goes
    scores.stop()
    product.stack.down([KAFKA])
    try:
        wait_until(
            lambda: (
                True
                if all(
                    (read_heartbeat(w, state_root) or {}).get("state") == "waiting for Kafka" for w in (WRITEBACK, SINK)
                )
                else None
            ),
            timeout_s=90,
            interval_s=1,
            what="both workers reporting 'waiting for Kafka'",
            last_state=lambda: _heartbeats(product),
        )
        time.sleep(20)  # a real outage, not a blip
        assert {w: product.pid(w) for w in pids} == pids  # nobody died
    finally:  # whatever failed above, the module's other tests need their broker back
        product.stack.up([KAFKA])
    sender.join()
    _reconciled(product, since, len(records))
    assert {w: product.pid(w) for w in pids} == pids
    assert {w: product.stack.files.record(w).restarts for w in restarts} == restarts
    assert all((read_heartbeat(w, state_root) or {}).get("state") == "consuming" for w in (WRITEBACK, SINK))
