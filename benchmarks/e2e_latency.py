"""End-to-end latency of the streaming pipeline: produce on input_raw -> score record on lead_scores.

Latency per record = Kafka timestamp of the score record - Kafka timestamp of the input record (the
score's `source_ts`), so both ends are broker-visible times, not the benchmark's own clock.

    .venv/bin/python benchmarks/e2e_latency.py                 # private stack, 50/200/1000 leads/s x 60 s
    .venv/bin/python benchmarks/e2e_latency.py --seconds 20 --rates 50 200 --max-rate-search

It starts its own stack (free ports, temporary state, the shared jar cache), trains a small model,
starts the model server, rolls the pipeline out through the same `rollout()` the `flink_statements`
asset uses, then drives each rate for `--seconds` and reports p50/p95/p99/max and whether the rate was
sustained (backlog at the end of the window not growing). Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

log = logging.getLogger("e2e_latency")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[idx]


def run_rate(kafka: Any, prefix: str, rate: float, seconds: float, template: list[dict[str, Any]],
             drain_s: float = 30.0) -> dict[str, Any]:
    """Produce Leads at `rate`/s for `seconds`; collect each one's latency from lead_scores."""
    tag = uuid.uuid4().hex[:6]
    total = int(rate * seconds)
    latencies: dict[str, float] = {}
    done = threading.Event()
    consumer = kafka.consumer(f"bench-{tag}", **{"auto.offset.reset": "latest", "fetch.wait.max.ms": 10})
    consumer.subscribe([prefix + "lead_scores"])
    for _ in range(10):  # join the group before producing
        consumer.poll(0.3)

    def consume() -> None:
        while not done.is_set():
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            key = (msg.key() or b"").decode()
            if key.startswith(f"B{tag}-"):
                value = json.loads(msg.value())
                latencies[key] = msg.timestamp()[1] - value["source_ts"]

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = kafka.producer(**{"linger.ms": 1})
    start = time.monotonic()
    backlog_samples = []
    for i in range(total):
        rec = dict(template[i % len(template)], Id=f"B{tag}-{i}", _ObjectType="Lead")
        producer.produce(prefix + "input_raw", key=rec["Id"].encode(), value=json.dumps(rec).encode())
        producer.poll(0)
        target = start + (i + 1) / rate
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        if i % max(1, int(rate)) == 0:
            backlog_samples.append((time.monotonic() - start, i + 1 - len(latencies)))
    producer.flush(30)
    produced_in = time.monotonic() - start
    backlog_end = total - len(latencies)
    deadline = time.monotonic() + drain_s
    while len(latencies) < total and time.monotonic() < deadline:
        time.sleep(0.2)
    done.set()
    reader.join(5)
    consumer.close()
    lat = list(latencies.values())
    half = [b for t, b in backlog_samples if t >= produced_in / 2]
    growing = len(half) >= 2 and half[-1] > max(rate * 1.0, half[0] * 1.5)
    return {
        "rate": rate, "seconds": seconds, "produced": total, "achieved_produce_rate": round(total / produced_in, 1),
        "scored": len(lat), "lost_or_late": total - len(lat),
        "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"), "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "backlog_at_end_of_window": backlog_end, "backlog_growing": growing,
        "sustained": (not growing) and len(lat) == total and total / produced_in >= 0.95 * rate,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-rate-search", action="store_true", help="then step the rate up until not sustained")
    parser.add_argument("--search-seconds", type=float, default=30)
    parser.add_argument("--out", default="benchmarks/results/e2e_latency.json")
    parser.add_argument("--batch-linger", default="2 ms", help="kserve provider batch-linger")
    parser.add_argument("--producer-linger-ms", type=int, default=0, help="Flink Kafka sinks' linger.ms")
    parser.add_argument("--validate-parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-interval", default="60 s", help="execution.checkpointing.interval of the jobs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    from lead_scoring.serving.process import free_port, start_server, stop_server, wait_ready
    from lead_scoring.stack.install import install
    from lead_scoring.stack.services import Stack
    from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
    from lead_scoring.streaming.admin import ensure_topics
    from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline
    from lead_scoring.streaming.resources import FlinkSqlGatewayResource, KafkaResource
    from lead_scoring.streaming.rollout import LocalFlinkEngine, rollout
    from lead_scoring.streaming.topics import TOPICS
    from lead_scoring_tests.fixtures.stack import test_stack_config
    from lead_scoring_tests.serving.records import fit_model
    from lead_scoring_tests.streaming.test_pipeline_stack import records

    tmp = Path(tempfile.mkdtemp(prefix="e2e-latency-"))
    cfg = test_stack_config(tmp / "stack")
    install(cfg)
    stack = Stack(cfg)
    pid = None
    results: dict[str, Any] = {"runs": [], "settings": vars(args)}
    try:
        stack.up()
        repo = ArtifactRepository(LocalBlobs(tmp / "artifacts"))
        artifact = repo.save(fit_model(n=300), manifest={"trained_on": "e2e benchmark"})
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        pid = start_server(artifact.uri, port=port, log_path=tmp / "model-server.log")
        wait_ready(url, timeout=120, pid=pid)
        kafka = KafkaResource(bootstrap_servers=cfg.kafka_bootstrap)
        flink = FlinkSqlGatewayResource(url=cfg.sql_gateway_url, flink_rest_url=cfg.flink_rest_url,
                                        request_timeout_s=600)
        prefix = "bench_"
        ensure_topics(kafka.admin(), TOPICS, prefix=prefix)
        settings = RenderSettings(Dialect.FLINK, artifact.version, f"{url}/v1/models/lead_scorer:predict",
                                  kafka_bootstrap=cfg.kafka_bootstrap, topic_prefix=prefix,
                                  model_batch_linger=args.batch_linger, producer_linger_ms=args.producer_linger_ms,
                                  validate_parallelism=args.validate_parallelism,
                                  checkpoint_interval=args.checkpoint_interval)
        started = time.monotonic()
        rollout(LocalFlinkEngine(flink, kafka, timeout_s=600), render_pipeline(settings), verify_timeout_s=300)
        results["rollout_seconds"] = round(time.monotonic() - started, 1)
        template = records(500, seed=5)
        run_rate(kafka, prefix, 20, 5, template)  # warm-up: JIT, connections, first checkpoint
        for rate in args.rates:
            res = run_rate(kafka, prefix, rate, args.seconds, template)
            log.info("%s", res)
            results["runs"].append(res)
        if args.max_rate_search:
            best = None
            for rate in (100, 150, 200, 300, 400, 600, 800, 1000, 1500, 2000):
                res = run_rate(kafka, prefix, rate, args.search_seconds, template)
                log.info("search %s", res)
                results.setdefault("search", []).append(res)
                if not res["sustained"]:
                    break
                best = rate
            results["max_sustained_rate"] = best
    finally:
        if pid:
            stop_server(pid)
        stack.down()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    header = f"{'rate/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'scored':>7} sustained"
    lines = [header] + [f"{r['rate']:>7.0f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} {r['p99_ms']:>7.0f} "
                        f"{r['max_ms']:>7.0f} {r['scored']:>7} {r['sustained']}" for r in results["runs"]]
    log.info("results (%s):\n%s", out, "\n".join(lines))


if __name__ == "__main__":
    main()
