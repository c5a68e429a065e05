"""Faults, as an operator meets them: stream leads at 100/s, SIGKILL one part mid-stream, type nothing.

For each of kafka, jobmanager, taskmanager, sql-gateway, model-server, writeback, sink, and the whole stack
(`stack down` + `stack up`, a reboot), on a private stack (free ports, temporary state, the full product:
supervisor, Flink pipeline, model server, both CRM workers):

* leads lost: produced, acknowledged by Kafka, never scored (after the stream has had time to drain);
* leads scored twice: Ids with more than one score record (at-least-once replay after a restore);
* seconds until the affected path flowed again with no command typed: the first output written after the
  kill (a score on lead_scores for the pipeline's parts, a crm_leads write for the writeback, a warehouse
  row for the sink), and when the supervisor saw the part healthy again;
* crm_leads and warehouse rows written for the run's leads;
* the audit (`lead-scoring audit`, `monitoring.audit`) of the fault's window once the stream has drained: every
  lead in every hop (DLQ or leads/contacts, score topics, the CRM, crm_leads_raw, lead_scores, the score ledger,
  rejected_leads) exactly once, or the hop where records are missing or doubled.

`hostile` kills nothing: a few structurally hostile payloads (not JSON, invalid UTF-8, deeply nested, ~900 KB,
a tombstone, zero bytes, Avro bytes, duplicate keys, a binary key) go to input_raw in the middle of the stream;
every valid lead must still reach the CRM, the warehouse and the ledger, every hostile one the DLQ.

    .venv/bin/python benchmarks/faults.py                       # every fault, 60 s streams, kill at 20 s
    .venv/bin/python benchmarks/faults.py --faults jobmanager kafka --seconds 40

Results go to benchmarks/results/faults.json (with the commit, the machine and the command that produced them)
and a markdown table on stdout. The fault table in docs/operations.md and the README's reliability line are
rendered from a results file, never typed by hand:

    .venv/bin/python benchmarks/faults.py --docs benchmarks/results/faults.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from common import provenance, replace_section, small_model, synthetic_records
from confluent_kafka import TopicPartition

from lead_scoring.crm.heartbeat import SINK, WRITEBACK
from lead_scoring.crm.replay import replay
from lead_scoring.monitoring.audit import AuditReport, audit
from lead_scoring.monitoring.pipeline import pipeline_consumer_groups
from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.services import local_stack
from lead_scoring.serving.service import MODEL_SERVER
from lead_scoring.settings import Profile
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import JOBMANAGER, SQL_GATEWAY, TASKMANAGER
from lead_scoring.stack.install import install
from lead_scoring.stack.kafka import KAFKA
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

log = logging.getLogger("faults")

HOSTILE = "hostile"
FAULTS = [KAFKA, JOBMANAGER, TASKMANAGER, SQL_GATEWAY, MODEL_SERVER, WRITEBACK, SINK, "stack", HOSTILE]
SCORING_PATH = {KAFKA, JOBMANAGER, TASKMANAGER, MODEL_SERVER, "stack"}
# what each fault is, and who brings the part back (docs/operations.md)
FAULT_LABELS = {
    KAFKA: ("Kafka broker killed", "the supervisor restarts it; Flink sources, workers and producers wait and resume"),
    JOBMANAGER: (
        "Flink JobManager killed",
        "the supervisor restarts it; its hook resubmits the statements from their newest retained checkpoints",
    ),
    TASKMANAGER: ("Flink TaskManager killed", "the supervisor restarts it; Flink restarts the jobs from checkpoints"),
    SQL_GATEWAY: ("SQL Gateway killed", "the supervisor; running jobs do not depend on it"),
    MODEL_SERVER: (
        "model server killed",
        "the supervisor restarts it with the production artifact; the kserve provider retries the batch",
    ),
    WRITEBACK: ("writeback worker killed", "the supervisor; the uncommitted batch is re-read and upserted"),
    SINK: ("sink worker killed", "the supervisor; the uncommitted batch is re-read and written idempotently"),
    "stack": (
        "whole stack (`stack down` + `stack up`)",
        "`stack down` savepoints every statement; `stack up` restores from it",
    ),
    HOSTILE: (
        "hostile records mid-stream (nothing killed)",
        "Flink sends each to the dlq with its reason; the sink keeps each in `rejected_leads`; nothing restarts",
    ),
}


def hostile_payloads(tag: str) -> list[tuple[bytes | None, bytes | None]]:
    """(key, value) pairs no worker may choke on: each must end in the DLQ (and rejected_leads), nothing else."""
    nested = b"[" * 5_000 + b"]" * 5_000
    return [
        (f"{tag}H1".encode(), b"this is not JSON"),
        (f"{tag}H2".encode(), b"\xff\xfe\x00 invalid UTF-8 \xc3\x28"),
        (f"{tag}H3".encode(), b'{"Id": ' + nested + b"}"),
        (f"{tag}H4".encode(), b'{"Id": "' + f"{tag}H4".encode() + b'", "Company": "' + b"x" * 900_000 + b'"}'),
        (f"{tag}H5".encode(), None),  # a tombstone
        (f"{tag}H6".encode(), b""),  # zero bytes
        (f"{tag}H7".encode(), b"\x00\x00\x00\x00\x01\x02" + b"avro-ish \x10\x20"),  # Confluent wire format
        (f"{tag}H8".encode(), b'{"Id": "a", "Id": "b", "_ObjectType": "Lead"}'),  # duplicate keys
        (b"\x00\xff\xfe binary key", b'{"Id": ["not", "a", "string"], "LastModifiedDate": 5}'),
        (None, b"[1, 2, 3]"),  # no key, not an object
    ]


@dataclass
class FaultResult:
    fault: str
    produced: int
    scored: int = 0
    lost: int = 0
    scored_twice: int = 0
    duplicate_records: int = 0
    resumed_s: float | None = None  # first output of the affected path after the kill
    healthy_again_s: float | None = None  # the supervisor's view of the killed part
    restarts: int = 0
    crm_rows: int = 0
    warehouse_raw_rows: int = 0
    warehouse_score_rows: int = 0
    duplicate_bound: int = 0  # one checkpoint interval of input
    hostile_sent: int = 0
    audit_ok: bool | None = None  # every hop holds every record of the window exactly once
    audit_missing: dict[str, int] = field(default_factory=dict)  # hop -> records missing there
    audit_doubled: dict[str, int] = field(default_factory=dict)  # hop -> records doubled (CRM, warehouse, ledger)
    audit_replayed: dict[str, int] = field(default_factory=dict)  # hop -> replays on an at-least-once topic
    audit_verdict: str = ""
    notes: list[str] = field(default_factory=list)


class ScoreCollector(threading.Thread):
    """Reads lead_scores + contact_scores from their current end, keeping every score of the run's Ids."""

    def __init__(self, kafka: KafkaResource, prefix: str):
        super().__init__(daemon=True)
        self.prefix = prefix
        self.scores: list[tuple[str, int, float]] = []  # (Id, scored_ts ms, received at)
        self._done = threading.Event()
        self.consumer = kafka.consumer(f"faults-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": False})
        assignment = []
        for topic in (LEAD_SCORES, CONTACT_SCORES):
            meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
            for p in meta.partitions:
                _, high = self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
                assignment.append(TopicPartition(topic, p, high))
        self.consumer.assign(assignment)

    def run(self) -> None:
        while not self._done.is_set():
            for msg in self.consumer.consume(500, timeout=0.5):
                if msg.error() or msg.value() is None:
                    continue
                score = json.loads(msg.value())
                if str(score.get("Id", "")).startswith(self.prefix):
                    self.scores.append((score["Id"], int(score["scored_ts"]), time.time()))
        self.consumer.close()

    def stop(self) -> None:
        self._done.set()
        self.join(30)


def _pid(stack: Stack, name: str) -> int | None:
    rec = stack.files.record(name)
    return rec.pid if rec else None


def _kill(stack: Stack, fault: str) -> None:
    if fault == "stack":
        stack.down()
        stack.up()
        return
    pid = _pid(stack, fault)
    if pid is None:
        raise SystemExit(f"{fault} is not running: cannot inject the fault")
    os.kill(pid, signal.SIGKILL)


def _healthy_again(stack: Stack, fault: str, kill_at: float, timeout_s: float) -> float | None:
    name = JOBMANAGER if fault == "stack" else fault
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        rec = stack.files.record(name)
        if rec is not None and rec.healthy_at and rec.healthy_at > kill_at:
            return round(rec.healthy_at - kill_at, 1)
        time.sleep(0.5)
    return None


def _scoring_resumed(scored_ms: list[int], kill_ms: float, gap_ms: float = 2000.0) -> float | None:
    """Seconds from the kill to the end of the longest pause in scoring after it (0: scoring never paused).

    Parts keep working for a moment after a kill (a TaskManager runs its tasks until it notices the lost
    JobManager), so "the first score after the kill" says nothing; the end of the outage does.
    """
    after = [ts for ts in scored_ms if ts >= kill_ms]
    if not after:
        return None
    gaps = [(b - a, b) for a, b in zip([kill_ms, *after], after, strict=False)]  # consecutive pairs
    longest, end = max(gaps)
    return round((end - kill_ms) / 1000, 1) if longest > gap_ms else 0.0


def _send_hostile(kafka: KafkaResource, tag: str) -> int:
    producer = kafka.producer(**{"message.max.bytes": 2_000_000})
    payloads = hostile_payloads(tag)
    for key, value in payloads:
        producer.produce(INPUT_RAW, key=key, value=value)
    if producer.flush(30) != 0:
        raise SystemExit("the hostile records were not acknowledged by Kafka within 30 s")
    return len(payloads)


def _audit_until_settled(kafka: KafkaResource, warehouse: DuckDBWarehouse, since: Any, timeout_s: float) -> AuditReport:
    """The audit of the window once nothing is in flight any more (or at the timeout: what is missing then)."""

    def settled() -> AuditReport | None:
        report = audit(kafka, warehouse, since, grace_s=3600.0)
        return report if report.ok and report.late == 0 else None

    with contextlib.suppress(WaitTimeout):
        wait_until(settled, timeout_s=timeout_s, interval_s=5.0, what="every hop to hold the window")
    return audit(kafka, warehouse, since, grace_s=0.0)


def settle(stack: Stack, timeout_s: float = 300.0) -> None:
    """Until every statement runs, no Flink group lags and the workers consume: the next fault starts clean."""
    engine = local_engine(stack.cfg)
    groups = pipeline_consumer_groups()
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            running = all(h.running for h in engine.health("lead-scoring"))
            lagging = sum(sum(group_lag(engine.kafka, g.group_id, g.topics).values()) for g in groups)
        except Exception as exc:  # a part still coming back
            log.info("settling: %s", exc)
            running, lagging = False, -1
        workers = all(s.state == "healthy" for s in stack.status([WRITEBACK, SINK]))
        if running and lagging == 0 and workers:
            time.sleep(5)
            return
        time.sleep(2)
    raise SystemExit(f"the stack did not settle within {timeout_s:.0f} s")


def run_fault(
    stack: Stack,
    kafka: KafkaResource,
    warehouse: DuckDBWarehouse,
    fault: str,
    rate: float,
    seconds: float,
    kill_after: float,
    drain_s: float,
    checkpoint_s: float,
) -> FaultResult:
    tag = f"F{fault[:3].upper()}{uuid.uuid4().hex[:5]}-"
    records = synthetic_records(int(rate * seconds), seed=hash(tag) % 10_000)
    for i, rec in enumerate(records):
        rec["Id"] = f"{tag}{i:06d}"
    ids = {r["Id"] for r in records}
    result = FaultResult(fault=fault, produced=len(records), duplicate_bound=int(rate * checkpoint_s))
    collector = ScoreCollector(kafka, tag)
    collector.start()
    watched = JOBMANAGER if fault == "stack" else fault
    before = stack.files.record(watched)
    restarts_before = before.restarts if before else 0
    summary_box: dict[str, Any] = {}
    window_start = pd.Timestamp.now(tz="UTC").to_pydatetime() - pd.Timedelta(seconds=1)
    sender = threading.Thread(target=lambda: summary_box.setdefault("s", replay(kafka, iter(records), INPUT_RAW, rate)))
    sender.start()
    time.sleep(kill_after)
    kill_at = time.time()
    if fault == HOSTILE:
        log.info("%s: hostile records into input_raw at %.0f s into the stream", fault, kill_after)
        result.hostile_sent = _send_hostile(kafka, tag)
    else:
        log.info("%s: killing at %.0f s into the stream", fault, kill_after)
        _kill(stack, fault)
    sender.join()
    summary = summary_box["s"]
    if summary.failed:
        result.notes.append(f"{summary.failed} records not acknowledged by Kafka (producer gave up)")
    if fault != HOSTILE:
        result.healthy_again_s = _healthy_again(stack, fault, kill_at, timeout_s=drain_s)
    deadline = time.time() + drain_s
    with contextlib.suppress(WaitTimeout):
        wait_until(
            lambda: True if len({i for i, _, _ in collector.scores}) >= len(ids) else None,
            timeout_s=max(1.0, deadline - time.time()),
            interval_s=1.0,
            what="every lead scored",
        )
    # late replays of a restore still count as duplicates: the topic must stay quiet for 10 s first
    quiet_since = [len(collector.scores), time.time()]

    def quiet() -> bool | None:
        if len(collector.scores) != quiet_since[0]:
            quiet_since[:] = [len(collector.scores), time.time()]
        return True if time.time() - quiet_since[1] >= 10 else None

    with contextlib.suppress(WaitTimeout):
        wait_until(quiet, timeout_s=60, interval_s=1.0, what="the score topics to stay quiet")
    collector.stop()
    counts = Counter(i for i, _, _ in collector.scores)
    result.scored = len(counts)
    result.lost = len(ids - set(counts))
    result.scored_twice = sum(1 for n in counts.values() if n > 1)
    result.duplicate_records = sum(n - 1 for n in counts.values() if n > 1)
    rec = stack.files.record(watched)
    result.restarts = (rec.restarts if rec else 0) - restarts_before
    kill_ms = kill_at * 1000
    if fault in SCORING_PATH:
        result.resumed_s = _scoring_resumed(sorted(ts for _, ts, _ in collector.scores), kill_ms)
    # every hop, for the fault's window: wait until the workers have landed everything (or the drain is over)
    report = _audit_until_settled(kafka, warehouse, window_start, max(30.0, deadline - time.time()))
    result.audit_ok = report.ok
    result.audit_missing = {h.hop: h.missing for h in report.hops if h.missing}
    result.audit_doubled = {h.hop: h.doubled for h in report.hops if h.doubled and not h.replays_allowed}
    result.audit_replayed = {h.hop: h.doubled for h in report.hops if h.doubled and h.replays_allowed}
    result.audit_verdict = report.verdict()
    like = f"{tag}%"
    crm = warehouse.query(
        f"SELECT COUNT(DISTINCT Id) AS n, MIN(written_at) AS first_after FROM crm_leads WHERE Id LIKE '{like}'"
    )
    raw = warehouse.query(f"SELECT COUNT(*) AS n FROM crm_leads_raw WHERE Id LIKE '{like}'")
    scores = warehouse.query(f"SELECT COUNT(*) AS n FROM lead_scores WHERE Id LIKE '{like}'")
    result.crm_rows, result.warehouse_raw_rows = int(crm["n"][0]), int(raw["n"][0])
    result.warehouse_score_rows = int(scores["n"][0])
    if fault in (WRITEBACK, SINK):
        table, column = ("crm_leads", "written_at") if fault == WRITEBACK else ("crm_leads_raw", "_ingested_at")
        first = warehouse.query(
            f"SELECT MIN({column}) AS t FROM {table} WHERE Id LIKE '{like}' "
            f"AND {column} > TIMESTAMP_MILLIS({int(kill_ms)})"
        )["t"][0]
        result.resumed_s = round(pd.Timestamp(first).timestamp() - kill_at, 1) if pd.notna(first) else None
    log.info("%s: %s", fault, asdict(result))
    return result


def _audit_cell(r: FaultResult) -> str:
    if r.audit_ok:
        return "yes: 0 missing, 0 doubled"
    parts = [f"{n} missing in {hop}" for hop, n in r.audit_missing.items()]
    parts += [f"{n} doubled in {hop}" for hop, n in r.audit_doubled.items()]
    return "NO: " + ", ".join(parts)


def table(results: dict[str, Any]) -> str:
    """The fault table of docs/operations.md, from a results file."""
    run = results
    lines = [
        f"`{run['command']}` at `{run['commit'][:10]}`{' (tree with changes)' if run.get('tree_dirty') else ''}, "
        f"{run['started_at'][:10]}; machine probe {run['machine']['probe_s']} s, {run['machine']['cpus']} CPUs, "
        f"load at the end {', '.join(f'{x:.1f}' for x in run['machine'].get('load_at_end', []))}; "
        f"{run['settings']['rate']:.0f} leads/s for {run['settings']['seconds']:.0f} s per fault, the fault "
        f"{run['settings']['kill_after']:.0f} s in, checkpoints every {run['settings']['checkpoint_interval']}.",
        "",
        "| fault | leads sent / lost | Ids scored twice (bound: one checkpoint of input) | flow resumed after "
        "| part healthy after | restarts | CRM rows | warehouse raw / score rows | `lead-scoring audit`: every hop "
        "exactly once | who brings it back |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["results"]:
        label, who = FAULT_LABELS.get(r["fault"], (r["fault"], ""))
        resumed = "-" if r["resumed_s"] is None else f"{r['resumed_s']} s"
        healthy = "-" if r["healthy_again_s"] is None else f"{r['healthy_again_s']} s"
        restarts = r["restarts"] if r["restarts"] >= 0 else "(counts reset by the restart)"
        sent = f"{r['produced']:,}" + (f" + {r['hostile_sent']} hostile" if r.get("hostile_sent") else "")
        lines.append(
            f"| {label} | {sent} / **{r['lost']}** | {r['scored_twice']:,} ({r['duplicate_bound']:,}) | {resumed} "
            f"| {healthy} | {restarts} | {r['crm_rows']:,} | {r['warehouse_raw_rows']:,} / "
            f"{r['warehouse_score_rows']:,} | {_audit_cell(FaultResult(**r))} | {who} |"
        )
    return "\n".join(lines) + "\n"


def summary(results: dict[str, Any], path: str) -> str:
    """The README's reliability line, from a results file."""
    rows = results["results"]
    lost = sum(r["lost"] for r in rows)
    audited = sum(1 for r in rows if r["audit_ok"])
    resumed = [r["resumed_s"] for r in rows if r["resumed_s"] is not None]
    return (
        f"Measured by injecting {len(rows)} faults mid-stream on a private product (`benchmarks/faults.py`, "
        f"{results['started_at'][:10]}, commit `{results['commit'][:10]}`, results in `{path}`): "
        f"{', '.join(FAULT_LABELS.get(r['fault'], (r['fault'],))[0].split(' (')[0] for r in rows)}. "
        f"**{lost} leads lost** of {sum(r['produced'] for r in rows):,}; every hop (CRM, warehouse, ledger, "
        f"rejected_leads) held every record exactly once after {audited} of {len(rows)} faults; the flow resumed "
        f"by itself within {max(resumed):.0f} s at most; [docs/operations.md](docs/operations.md#it-heals-itself).\n"
    )


ROOT = Path(__file__).resolve().parents[1]
OPERATIONS = ROOT / "docs" / "operations.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- faults.py --docs: begin -->", "<!-- faults.py --docs: end -->"


def render_docs(results_path: Path) -> dict[Path, str]:
    """docs/operations.md and README.md with their fault sections rendered from `results_path`."""
    results = json.loads(results_path.read_text())
    name = str(results_path.resolve().relative_to(ROOT))
    return {
        OPERATIONS: replace_section(OPERATIONS.read_text(), BEGIN, END, f"**`{name}`**: {table(results)}"),
        README: replace_section(README.read_text(), BEGIN, END, summary(results, name)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faults", nargs="+", default=FAULTS, choices=FAULTS)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each stream")
    parser.add_argument("--kill-after", type=float, default=20.0, help="seconds into the stream")
    parser.add_argument("--drain", type=float, default=180.0, help="how long the stream may take to catch up")
    parser.add_argument("--checkpoint-interval", default="60 s", help="the pipeline's checkpoint interval")
    parser.add_argument("--out", default="benchmarks/results/faults.json")
    parser.add_argument("--docs", type=Path, metavar="RESULTS", help="only render RESULTS into the docs and README")
    args = parser.parse_args()
    if args.docs:
        for path, text in render_docs(args.docs).items():
            path.write_text(text)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    run = provenance(sys.argv)

    tmp = Path(tempfile.mkdtemp(prefix="faults-"))
    cfg = StackConfig.isolated(tmp)
    install(cfg)
    stack = local_stack(cfg)
    kafka = KafkaResource(bootstrap_servers=cfg.kafka_bootstrap)
    checkpoint_s = pd.Timedelta(args.checkpoint_interval).total_seconds()
    results: list[FaultResult] = []
    try:
        stack.up()  # engines and workers
        artifact = small_model(tmp / "artifacts", note="faults benchmark")
        ArtifactRepository(LocalBlobs(tmp / "artifacts"), Profile.LOCAL).set_production(artifact.version)
        stack.up([MODEL_SERVER], args={MODEL_SERVER: {"artifact": artifact.uri}})
        ensure_topics(kafka.admin(), TOPICS)
        settings = RenderSettings(
            Dialect.FLINK,
            artifact.version,
            f"{cfg.model_url}/v1/models/{cfg.model_name}:predict",
            kafka_bootstrap=cfg.kafka_bootstrap,
            checkpoint_interval=args.checkpoint_interval,
        )
        rollout(local_engine(cfg), render_pipeline(settings), verify_timeout_s=300)
        warehouse = DuckDBWarehouse(path=str(tmp / "warehouse" / "lead_scoring.duckdb"))
        for fault in args.faults:
            settle(stack)
            results.append(
                run_fault(
                    stack, kafka, warehouse, fault, args.rate, args.seconds, args.kill_after, args.drain, checkpoint_s
                )
            )
    finally:
        stack.down()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    run["machine"]["load_at_end"] = os.getloadavg()
    run["finished_at"] = pd.Timestamp.now(tz="UTC").isoformat()
    out.write_text(json.dumps({**run, "settings": vars(args), "results": [asdict(r) for r in results]}, indent=2))
    header = (
        "| fault | produced | lost | scored twice (bound) | flow resumed after | part healthy after | restarts "
        "| crm_leads rows | warehouse raw / score rows | audit: every hop exactly once |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    rows = [
        f"| {r.fault} | {r.produced:,} | {r.lost} | {r.scored_twice:,} ({r.duplicate_bound:,}) | "
        f"{'-' if r.resumed_s is None else f'{r.resumed_s} s'} | "
        f"{'-' if r.healthy_again_s is None else f'{r.healthy_again_s} s'} | {r.restarts} | {r.crm_rows:,} | "
        f"{r.warehouse_raw_rows:,} / {r.warehouse_score_rows:,} | {_audit_cell(r)} |"
        for r in results
    ]
    log.info("results (%s):\n%s", out, "\n".join([header, *rows]))


if __name__ == "__main__":
    main()
