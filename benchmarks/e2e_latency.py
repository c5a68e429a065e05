"""End-to-end latency of the streaming pipeline: produce on input_raw -> score record on lead_scores.

Latency per record = Kafka timestamp of the score record - Kafka timestamp of the input record (the
score's `source_ts`), so both ends are broker-visible times, not the benchmark's own clock.

    .venv/bin/python benchmarks/e2e_latency.py                 # private stack, 50/200/1000 leads/s x 60 s
    .venv/bin/python benchmarks/e2e_latency.py --stages --max-rate-search   # + per-hop split, 60 s search steps
    .venv/bin/python benchmarks/e2e_latency.py --rates 200 --batch-linger "2 ms"  # one knob against the default

It starts its own stack (free ports, temporary state, the shared jar cache), trains a small model,
starts the model server, rolls the pipeline out through the same `rollout()` the `flink_statements`
asset uses, runs a warm-up (reported apart), then drives each rate for `--seconds` and reports
p50/p95/p99/max, whether the rate was sustained (every record scored; the backlog not rising through
the window's second half and under 2 s of input at its end) and the task managers' GC time. Results go to benchmarks/results/.
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

import httpx
from common import small_model, synthetic_records

from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.services import local_stack
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

log = logging.getLogger("e2e_latency")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[idx]


def taskmanager_gc(flink_rest_url: str) -> dict[str, float]:
    """Cumulative GC counts and times (ms) of the task managers, from Flink's REST metrics."""
    names = [f"Status.JVM.GarbageCollector.{gc}.{m}" for gc in ("G1_Young_Generation", "G1_Old_Generation")
             for m in ("Count", "Time")]
    totals = dict.fromkeys(names, 0.0)
    for tm in httpx.get(f"{flink_rest_url}/taskmanagers", timeout=10).json()["taskmanagers"]:
        got = httpx.get(f"{flink_rest_url}/taskmanagers/{tm['id']}/metrics", params={"get": ",".join(names)},
                        timeout=10).json()
        for item in got:
            totals[item["id"]] += float(item["value"])
    return {k.removeprefix("Status.JVM.GarbageCollector."): v for k, v in totals.items()}


def job_vertices(flink_rest_url: str) -> dict[str, list[str]]:
    """Running job name -> its vertices (operator chains); records cross the network only between them."""
    out = {}
    for job in httpx.get(f"{flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]:
        if job["state"] == "RUNNING":
            detail = httpx.get(f"{flink_rest_url}/jobs/{job['jid']}", timeout=10).json()
            out[job["name"]] = [v["name"][:200] for v in detail["vertices"]]
    return out


def hop_summary(hops: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {name: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "max_ms": max(v) if v else float("nan")}
            for name, v in hops.items()}


def run_rate(kafka: Any, producer: Any, prefix: str, rate: float, seconds: float, template: list[dict[str, Any]],
             drain_s: float = 30.0, stages: bool = False) -> dict[str, Any]:
    """Produce Leads at `rate`/s for `seconds`; collect each one's latency from lead_scores.

    With `stages`, also note when each record is first seen on input_avro and on leads (this process's
    clock, which is the broker's: same machine) and the score's `scored_ts` (Flink's clock after
    ML_PREDICT), to split the latency into hops. Intermediate topics keep the input's Kafka timestamp,
    so their own timestamps cannot be used for this.
    """
    tag = uuid.uuid4().hex[:6]
    total = int(rate * seconds)
    latencies: dict[str, float] = {}
    score_times: dict[str, tuple[int, int, int]] = {}  # key -> (source_ts, scored_ts, kafka ts)
    seen: dict[str, dict[str, float]] = {"input_avro": {}, "leads": {}}
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
                score_times[key] = (value["source_ts"], value["scored_ts"], msg.timestamp()[1])

    def watch_intermediate() -> None:
        watcher = kafka.consumer(f"bench-stages-{tag}", **{"auto.offset.reset": "latest", "fetch.wait.max.ms": 5})
        watcher.subscribe([prefix + "input_avro", prefix + "leads"])
        while not done.is_set():
            msg = watcher.poll(0.2)
            if msg is None or msg.error():
                continue
            now_ms = time.time() * 1000
            key = (msg.key() or b"").decode()
            if key.startswith(f"B{tag}-"):
                seen[msg.topic()[len(prefix):]].setdefault(key, now_ms)
        watcher.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    watchers = []
    if stages:
        watchers.append(threading.Thread(target=watch_intermediate, daemon=True))
        watchers[0].start()
        time.sleep(3)  # let the watcher join its group
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
    for w in watchers:
        w.join(5)
    consumer.close()
    lat = list(latencies.values())
    # Kept up = the backlog (produced, not yet scored) stayed bounded: it did not rise by more than half a
    # second of input over the window's second half (least-squares slope, so one slow poll does not count),
    # and at the end it was under 2 s of input.
    half = [(t, b) for t, b in backlog_samples if t >= produced_in / 2]
    rise = (statistics.linear_regression([t for t, _ in half], [b for _, b in half]).slope * (produced_in / 2)
            if len(half) >= 2 else 0.0)
    growing = rise > rate * 0.5
    bounded = backlog_end <= rate * 2.0
    return {
        "rate": rate, "seconds": seconds, "produced": total, "achieved_produce_rate": round(total / produced_in, 1),
        "scored": len(lat), "lost_or_late": total - len(lat),
        "p50_ms": percentile(lat, 50), "p95_ms": percentile(lat, 95), "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"), "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "backlog_at_end_of_window": backlog_end, "backlog_rise_second_half": round(rise),
        "backlog_growing": growing,
        "sustained": (not growing) and bounded and len(lat) == total and total / produced_in >= 0.95 * rate,
        "backlog_per_second": [b for _, b in backlog_samples],
        # When the slow records were produced (seconds into the window, with counts): a periodic cause
        # (checkpoints, a timer) shows as a regular spacing, load as a spread.
        "over_250ms_by_second": _slow_by_second(latencies, rate, 250),
        **({"hops": stage_hops(latencies, score_times, seen)} if stages else {}),
    }


def _slow_by_second(latencies: dict[str, float], rate: float, threshold_ms: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for key, ms in latencies.items():
        if ms > threshold_ms:
            second = int(int(key.rsplit("-", 1)[1]) / rate)
            counts[second] = counts.get(second, 0) + 1
    return dict(sorted(counts.items()))


def stage_hops(latencies: dict[str, float], score_times: dict[str, tuple[int, int, int]],
               seen: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Per-hop latency, for all records and for the slowest 1% (where the tail comes from)."""
    def hops_of(keys: list[str]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"validate": [], "split": [], "predict": [], "score_sink": []}
        for k in keys:
            if k not in seen["input_avro"] or k not in seen["leads"]:
                continue
            src, scored, kts = score_times[k]
            out["validate"].append(seen["input_avro"][k] - src)
            out["split"].append(seen["leads"][k] - seen["input_avro"][k])
            out["predict"].append(scored - seen["leads"][k])
            out["score_sink"].append(kts - scored)
        return out

    keys = sorted(latencies, key=latencies.get)
    tail = keys[int(len(keys) * 0.99):]
    return {"all": hop_summary(hops_of(keys)), "slowest_1pct": hop_summary(hops_of(tail)),
            "observed": sum(1 for k in keys if k in seen["input_avro"] and k in seen["leads"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 200, 1000])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-rate-search", action="store_true", help="then step the rate up until not sustained")
    parser.add_argument("--search-seconds", type=float, default=60)
    parser.add_argument("--search-rates", type=float, nargs="+", default=[1000, 1250, 1500, 1750, 2000, 2500, 3000],
                        help="rates the search steps through, in order, until one is not sustained")
    parser.add_argument("--out", default="benchmarks/results/e2e_latency.json")
    parser.add_argument("--batch-linger", default="10 ms", help="kserve provider batch-linger")
    parser.add_argument("--producer-linger-ms", type=int, default=0, help="Flink Kafka sinks' linger.ms")
    parser.add_argument("--validate-parallelism", type=int, default=2)
    parser.add_argument("--checkpoint-interval", default="60 s", help="execution.checkpointing.interval of the jobs")
    parser.add_argument("--warmup-rate", type=float, default=200)
    parser.add_argument("--warmup-seconds", type=float, default=30)
    parser.add_argument("--stages", action="store_true",
                        help="also split the latency into hops (validate, split, predict, score sink)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="e2e-latency-"))
    cfg = StackConfig.isolated(tmp / "stack")
    install(cfg)
    stack = local_stack(cfg)
    server = None
    results: dict[str, Any] = {"runs": [], "settings": vars(args)}
    try:
        stack.up(ENGINES)
        artifact = small_model(tmp / "artifacts", note="e2e benchmark")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = ModelServerProcess(artifact.uri, port=port, log_path=tmp / "model-server.log").start()
        kafka = KafkaResource(bootstrap_servers=cfg.kafka_bootstrap)
        flink = SqlGatewayFlink(url=cfg.sql_gateway_url, flink_rest_url=cfg.flink_rest_url, kafka=kafka,
                                state_path=str(tmp / "streaming"), request_timeout_s=600, operation_timeout_s=600)
        prefix = "bench_"
        ensure_topics(kafka.admin(), TOPICS, prefix=prefix)
        settings = RenderSettings(Dialect.FLINK, artifact.version, f"{url}/v1/models/lead_scorer:predict",
                                  kafka_bootstrap=cfg.kafka_bootstrap, topic_prefix=prefix,
                                  model_batch_linger=args.batch_linger, producer_linger_ms=args.producer_linger_ms,
                                  validate_parallelism=args.validate_parallelism,
                                  checkpoint_interval=args.checkpoint_interval)
        started = time.monotonic()
        rollout(flink, render_pipeline(settings), verify_timeout_s=300)
        results["rollout_seconds"] = round(time.monotonic() - started, 1)
        results["job_vertices"] = job_vertices(cfg.flink_rest_url)
        log.info("operator chains per job (one = no network exchange, so no buffer timeout in the path): %s",
                 {job: len(v) for job, v in results["job_vertices"].items()})
        template = synthetic_records(500, seed=5)
        # Warm-up, reported apart: the first tens of seconds after a rollout run with cold JITs (C2
        # compiling on the same 2 cores) and cold connections, a start-up cost, not the steady state.
        # One long-lived, connected producer, like the CRM's source connector: a producer created per window
        # stamps its first records before it has a connection and topic metadata, which showed up as
        # ~550 ms for the first second of every window (docs/streaming.md).
        producer = kafka.producer(**{"linger.ms": 1})
        producer.list_topics(prefix + "input_raw", timeout=30)
        results["warmup"] = run_rate(kafka, producer, prefix, args.warmup_rate, args.warmup_seconds, template)
        log.info("warm-up %s", results["warmup"])
        for rate in args.rates:
            gc_before = taskmanager_gc(cfg.flink_rest_url)
            res = run_rate(kafka, producer, prefix, rate, args.seconds, template, stages=args.stages)
            gc_after = taskmanager_gc(cfg.flink_rest_url)
            res["taskmanager_gc"] = {k: gc_after[k] - gc_before[k] for k in gc_after}
            log.info("%s", res)
            results["runs"].append(res)
        if args.max_rate_search:
            best = None
            for rate in args.search_rates:
                res = run_rate(kafka, producer, prefix, rate, args.search_seconds, template)
                log.info("search %s", res)
                results.setdefault("search", []).append(res)
                if not res["sustained"]:
                    break
                best = rate
            results["max_sustained_rate"] = best
    finally:
        if server is not None:
            server.stop()
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
