"""Full re-score throughput, end to end: N open leads in the warehouse -> all scored by the new champion on lead_scores.

    .venv/bin/python benchmarks/rescore.py                    # 200,000 leads (Leads + Contacts)
    .venv/bin/python benchmarks/rescore.py --leads 1000000    # if the machine allows

It starts its own stack (free ports, temporary state, the shared jar cache), trains the new champion, starts
the model server, rolls the pipeline out through the same `rollout()` the assets use, loads N open synthetic
leads into a DuckDB warehouse (`crm_leads_raw`, `_source = 'stream'`), warms the pipeline up with a few
thousand live leads (not measured), then runs the same `promotion.rescore.rescore()` the `full_rescore` asset and
`lead-scoring scores rescore` run, while a consumer counts the scores of that run on lead_scores / contact_scores
(model version = the champion's, source_ts = the run's Kafka timestamp).

Figures: produce rate (warehouse pages -> input_raw, acknowledged; paced by `--max-in-flight`), scored rate
(first request produced -> last score of the run seen), and the extrapolation to 1,000,000 leads (the scored
rate is the bottleneck, and the whole run is linear in N: each warehouse page costs the same, the pipeline
has no per-run state but the de-duplication's, which expires). Results go to benchmarks/results/rescore.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from common import small_model, synthetic_records

from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.promotion.rescore import rescore, start_or_resume
from lead_scoring.services import local_stack
from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.stack.catalog import INFRASTRUCTURE as ENGINES
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import install
from lead_scoring.stack.ports import free_port
from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline
from lead_scoring.streaming.rollout import rollout
from lead_scoring.streaming.topics import TOPICS
from lead_scoring.warehouse.resources import DuckDBWarehouse

log = logging.getLogger("rescore")
PREFIX = "bench_"


class ScoreCounter(threading.Thread):
    """Counts the run's scores (version, source_ts) on the score topics; notes when each count was reached."""

    def __init__(self, kafka: KafkaResource, topics: list[str]):
        super().__init__(daemon=True)
        self.kafka, self.topics = kafka, topics
        self.version: str | None = None
        self.source_ms: int | None = None
        self.ids: set[str] = set()
        self.duplicates = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self.other = 0
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = self.kafka.consumer(f"rescore-bench-{uuid.uuid4().hex[:6]}", **{"fetch.max.bytes": 52_428_800})
        consumer.subscribe(self.topics)
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(num_messages=5000, timeout=0.2):
                    if msg.error():
                        continue
                    score = orjson.loads(msg.value())
                    if score.get("Lead_Score_Model__c") != self.version or score.get("source_ts") != self.source_ms:
                        self.other += 1
                        continue
                    if score["Id"] in self.ids:
                        self.duplicates += 1
                        continue
                    self.ids.add(score["Id"])
                    now = time.monotonic()
                    self.first_at = self.first_at or now
                    self.last_at = now
        finally:
            consumer.close()


def load_open_leads(warehouse: DuckDBWarehouse, n: int, seed: int) -> int:
    """N synthetic Leads and Contacts, all open (no outcome yet), as the sink would have landed them."""
    started = time.monotonic()
    done = 0
    for start in range(0, n, 250_000):
        frame = generate_leads(min(250_000, n - start), seed=seed + start)
        frame["Id"] = [f"R{start + i:09d}" for i in range(len(frame))]
        frame["IsConverted"] = None
        frame["_EventType"] = "created"
        done += warehouse.append(
            "crm_leads_raw", frame.assign(_source="stream", _ingested_at=pd.Timestamp.now(tz="UTC"))
        )
    log.info("loaded %d open leads into %s in %.1f s", done, warehouse.describe(), time.monotonic() - started)
    return done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=200_000)
    parser.add_argument("--chunk-size", type=int, default=20_000)
    parser.add_argument("--max-in-flight", type=int, default=50_000)
    parser.add_argument(
        "--warmup", type=int, default=5_000, help="live leads through the pipeline first (not measured)"
    )
    parser.add_argument("--timeout-s", type=float, default=3600)
    parser.add_argument("--out", default="benchmarks/results/rescore.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="rescore-bench-"))
    cfg = StackConfig.isolated(tmp / "stack")
    install(cfg)
    stack = local_stack(cfg)
    server = None
    results: dict[str, Any] = {"settings": vars(args)}
    try:
        stack.up(ENGINES)
        champion = small_model(tmp / "artifacts", note="rescore benchmark champion", seed=2)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = ModelServerProcess(champion.uri, port=port, log_path=tmp / "model-server.log").start()
        kafka = KafkaResource(bootstrap_servers=cfg.kafka_bootstrap)
        flink = SqlGatewayFlink(
            url=cfg.sql_gateway_url,
            flink_rest_url=cfg.flink_rest_url,
            kafka=kafka,
            state_path=str(tmp / "streaming"),
            request_timeout_s=600,
            operation_timeout_s=600,
        )
        ensure_topics(kafka.admin(), TOPICS, prefix=PREFIX)
        settings = RenderSettings(
            Dialect.FLINK,
            champion.version,
            f"{url}/v1/models/lead_scorer:predict",
            kafka_bootstrap=cfg.kafka_bootstrap,
            topic_prefix=PREFIX,
        )
        rollout(flink, render_pipeline(settings), verify_timeout_s=300)

        warehouse = DuckDBWarehouse(path=str(tmp / "warehouse.duckdb"))
        results["loaded"] = load_open_leads(warehouse, args.leads, seed=11)

        counter = ScoreCounter(kafka, [PREFIX + "lead_scores", PREFIX + "contact_scores"])
        counter.version = champion.version
        counter.start()
        if args.warmup:  # cold JITs and connections: a start-up cost, not the re-score's
            producer = kafka.producer()
            for record in synthetic_records(args.warmup, seed=3):
                producer.produce(PREFIX + "input_raw", key=record["Id"].encode(), value=orjson.dumps(record))
                producer.poll(0)
            producer.flush(60)
            time.sleep(20)

        run = start_or_resume(warehouse, f"bench-{champion.version}", champion.version)
        counter.source_ms = run.source_ms
        log.info("re-scoring %d open records with %s", run.total, champion.version)
        started = time.monotonic()
        run = rescore(
            warehouse,
            kafka,
            run,
            topic=PREFIX + "input_raw",
            score_topics=(PREFIX + "lead_scores", PREFIX + "contact_scores"),
            chunk_size=args.chunk_size,
            max_in_flight=args.max_in_flight,
            on_progress=lambda p: log.info(
                "produced %d/%d (%.0f/s), %d scored", p.run.produced, p.run.total, p.produce_rate, len(counter.ids)
            ),
        )
        produce_s = time.monotonic() - started
        deadline = time.monotonic() + args.timeout_s
        while len(counter.ids) < run.total and time.monotonic() < deadline:
            time.sleep(1)
        counter.stop.set()
        counter.join(30)
        scored_s = (counter.last_at or time.monotonic()) - started
        scored = len(counter.ids)
        # a second call for the same run: idempotent, nothing produced
        again = rescore(
            warehouse, kafka, start_or_resume(warehouse, run.run_id, champion.version), topic=PREFIX + "input_raw"
        )
        results.update(
            {
                "leads": run.total,
                "produced": run.produced,
                "scored": scored,
                "scored_twice": counter.duplicates,
                "produce_seconds": round(produce_s, 1),
                "produce_rate_per_s": round(run.produced / produce_s, 1),
                "scored_seconds": round(scored_s, 1),
                "scored_rate_per_s": round(scored / scored_s, 1) if scored_s else 0.0,
                "rerun_produced": again.produced - run.produced,
                "rerun_status": again.status,
            }
        )
        rate = results["scored_rate_per_s"]
        results["extrapolated_1m_seconds"] = round(1_000_000 / rate, 1) if rate else None
        results["target"] = {"rate_per_s": 2000, "one_million_seconds": 600}
    finally:
        if server is not None:
            server.stop()
        stack.down()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    log.info("results (%s): %s", out, json.dumps({k: v for k, v in results.items() if k != "settings"}))
    if "scored_rate_per_s" in results:
        log.info(
            "%d leads: produced at %.0f/s, scored at %.0f/s (%d of %d, %d twice); 1,000,000 leads ~ %.0f s "
            "(%.1f min) at that rate",
            results["leads"],
            results["produce_rate_per_s"],
            results["scored_rate_per_s"],
            results["scored"],
            results["leads"],
            results["scored_twice"],
            results["extrapolated_1m_seconds"] or 0,
            (results["extrapolated_1m_seconds"] or 0) / 60,
        )


if __name__ == "__main__":
    main()
