"""End-to-end latency and throughput of the streaming pipeline: produce on input_raw -> score record on lead_scores.

Latency per record = Kafka timestamp of the score record - Kafka timestamp of the input record (the
score's `source_ts`), so both ends are broker-visible times, not the benchmark's own clock.

    .venv/bin/python benchmarks/e2e_latency.py                 # private stack, 50/200/1000 leads/s x 60 s
    .venv/bin/python benchmarks/e2e_latency.py --stages --max-rate-search   # + per-hop split, search steps
    .venv/bin/python benchmarks/e2e_latency.py --rates 200 --batch-linger "2 ms"  # one knob against the default
    .venv/bin/python benchmarks/e2e_latency.py --rates 200 --max-rate-search \
        --variant before:model_batch_size=64,async_capacity=256 --variant after:   # before/after in ONE run

It starts its own stack (free ports, temporary state, the shared jar cache), trains a small model,
starts the model server, and per `--variant` (knobs of `RenderSettings`, default: one variant with the
defaults) rolls the pipeline out under its own topics through the same `rollout()` the `flink_statements`
asset uses, runs a warm-up (reported apart), then drives each rate for `--seconds` and reports
p50/p95/p99/max, whether the rate was sustained (every record scored; the backlog not rising through
the window's second half and under 2 s of input at its end), the CPU seconds of every process of the
stack over the window (psutil; the benchmark's own load generator reported apart), Flink's busy and
back-pressure per vertex late in the window (which vertex is the bottleneck) and the task managers' GC
time; then cancels the variant's jobs so the next one gets the cores. `--profile-dir` records the
TaskManager (JFR, `benchmarks/profile_summary.py`) and the model server (py-spy) during the `--rates`
windows. Results go to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import orjson
from common import CpuMeter, flink_busy, small_model, synthetic_records

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

log = logging.getLogger("e2e_latency")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[idx]


def taskmanager_gc(flink_rest_url: str) -> dict[str, float]:
    """Cumulative GC counts and times (ms) of the task managers, from Flink's REST metrics."""
    names = [
        f"Status.JVM.GarbageCollector.{gc}.{m}"
        for gc in ("G1_Young_Generation", "G1_Old_Generation")
        for m in ("Count", "Time")
    ]
    totals = dict.fromkeys(names, 0.0)
    for tm in httpx.get(f"{flink_rest_url}/taskmanagers", timeout=10).json()["taskmanagers"]:
        got = httpx.get(
            f"{flink_rest_url}/taskmanagers/{tm['id']}/metrics", params={"get": ",".join(names)}, timeout=10
        ).json()
        for item in got:
            totals[item["id"]] += float(item["value"])
    return {k.removeprefix("Status.JVM.GarbageCollector."): v for k, v in totals.items()}


def job_vertices(flink_rest_url: str) -> dict[str, list[str]]:
    """Running job name -> its vertices (operator chains); records cross the network only between them."""
    out = {}
    for job in httpx.get(f"{flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]:
        if job["state"] == "RUNNING":
            detail = httpx.get(f"{flink_rest_url}/jobs/{job['jid']}", timeout=10).json()
            out[job["name"]] = [v["name"][:1000] for v in detail["vertices"]]
    return out


def hop_summary(hops: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"p50_ms": percentile(v, 50), "p99_ms": percentile(v, 99), "max_ms": max(v) if v else float("nan")}
        for name, v in hops.items()
    }


def run_rate(
    kafka: Any,
    producer: Any,
    prefix: str,
    rate: float,
    seconds: float,
    template: list[dict[str, Any]],
    drain_s: float = 30.0,
    stages: bool = False,
    meter: CpuMeter | None = None,
    flink_rest_url: str | None = None,
    slow_ms: int = 250,
) -> dict[str, Any]:
    """Produce Leads at `rate`/s for `seconds`; collect each one's latency from lead_scores.

    With `stages`, also note when each record is first seen on input_avro and on leads (this process's
    clock, which is the broker's: same machine) and the score's `scored_ts` (Flink's clock after
    ML_PREDICT), to split the latency into hops. Intermediate topics keep the input's Kafka timestamp,
    so their own timestamps cannot be used for this.
    """
    tag = uuid.uuid4().hex[:6]
    total = int(rate * seconds)
    latencies: dict[str, float] = {}
    versions: Counter[str] = Counter()  # which model scored the window (a rollout's window must show the new one)
    score_times: dict[str, tuple[int, int, int]] = {}  # key -> (source_ts, scored_ts, kafka ts)
    seen: dict[str, dict[str, float]] = {"input_avro": {}, "leads": {}}
    done = threading.Event()
    # The latency is read from the score's Kafka timestamp, not from when this consumer sees it, so a long fetch
    # wait costs the measurement nothing and keeps this process (the CRM's stand-in) from polling every broker
    # 100 times a second: with 3 brokers that made it the machine's third-largest CPU user.
    consumer = kafka.consumer(
        f"bench-{tag}", **{"auto.offset.reset": "latest", "fetch.wait.max.ms": 100, "fetch.min.bytes": 65536}
    )
    consumer.subscribe([prefix + "lead_scores"])
    for _ in range(10):  # join the group before producing
        consumer.poll(0.3)

    key_prefix = f"B{tag}-".encode()

    def consume() -> None:
        # batched and orjson: at thousands of records/s a per-message poll + json.loads made this
        # process (not the pipeline) the bottleneck of the machine (1.5 cores at 3,000/s)
        while not done.is_set():
            for msg in consumer.consume(1000, timeout=0.2):
                if msg.error():
                    continue
                key = msg.key() or b""
                if key.startswith(key_prefix):
                    value = orjson.loads(msg.value())
                    kts = msg.timestamp()[1]
                    k = key.decode()
                    latencies[k] = kts - value["source_ts"]
                    versions[value.get("Lead_Score_Model__c") or "?"] += 1
                    if stages:
                        score_times[k] = (value["source_ts"], value["scored_ts"], kts)

    def watch_intermediate() -> None:
        watcher = kafka.consumer(f"bench-stages-{tag}", **{"auto.offset.reset": "latest", "fetch.wait.max.ms": 5})
        watcher.subscribe([prefix + "input_avro", prefix + "leads"])
        while not done.is_set():
            # a short timeout: consume() waits for the whole batch or the timeout, and the arrival time is
            # read after it returns (with 0.2 s, a slow stream's hops read up to 200 ms late)
            batch = watcher.consume(1000, timeout=0.01)
            now_ms = time.time() * 1000
            for msg in batch:
                if msg.error():
                    continue
                key = msg.key() or b""
                if key.startswith(key_prefix):
                    seen[msg.topic()[len(prefix) :]].setdefault(key.decode(), now_ms)
        watcher.close()

    # Every message is serialized before the window starts: the window itself only hands bytes to librdkafka.
    topic = prefix + "input_raw"
    messages = [
        (f"B{tag}-{i}".encode(), orjson.dumps(dict(template[i % len(template)], Id=f"B{tag}-{i}", _ObjectType="Lead")))
        for i in range(total)
    ]
    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    watchers = []
    if stages:
        watchers.append(threading.Thread(target=watch_intermediate, daemon=True))
        watchers[0].start()
        time.sleep(3)  # let the watcher join its group
    cpu_before = meter.read() if meter else {}
    started_at_ms = time.time() * 1000
    start = time.monotonic()
    backlog_samples = []
    busy: dict[str, Any] = {}
    sent = 0
    next_sample = 0.0
    busy_at = seconds * 0.8
    while sent < total:
        elapsed = time.monotonic() - start
        due = min(total, int(elapsed * rate) + 1)
        while sent < due:  # the records due by now, paced in 2 ms steps (not one sleep per record)
            key, value = messages[sent]
            try:
                producer.produce(topic, key=key, value=value)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        if elapsed >= next_sample:
            backlog_samples.append((elapsed, sent - len(latencies)))
            next_sample += 1.0
        if flink_rest_url and busy_at is not None and elapsed >= busy_at:  # Flink's per-vertex busy, late in the window
            busy_at = None
            threading.Thread(target=lambda: busy.update(flink_busy(flink_rest_url)), daemon=True).start()
        time.sleep(0.002)
    producer.flush(30)
    produced_in = time.monotonic() - start
    cpu = meter.since(cpu_before) if meter else {}
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
    rise = (
        statistics.linear_regression([t for t, _ in half], [b for _, b in half]).slope * (produced_in / 2)
        if len(half) >= 2
        else 0.0
    )
    growing = rise > rate * 0.5
    bounded = backlog_end <= rate * 2.0
    return {
        "rate": rate,
        "seconds": seconds,
        "started_at_ms": round(started_at_ms),
        "produced": total,
        "achieved_produce_rate": round(total / produced_in, 1),
        "scored": len(lat),
        "lost_or_late": total - len(lat),
        "model_versions": dict(versions),
        "p50_ms": percentile(lat, 50),
        "p95_ms": percentile(lat, 95),
        "p99_ms": percentile(lat, 99),
        "max_ms": max(lat) if lat else float("nan"),
        "mean_ms": round(statistics.fmean(lat), 1) if lat else None,
        "backlog_at_end_of_window": backlog_end,
        "backlog_rise_second_half": round(rise),
        "backlog_growing": growing,
        "sustained": (not growing) and bounded and len(lat) == total and total / produced_in >= 0.95 * rate,
        "backlog_per_second": [b for _, b in backlog_samples],
        # CPU seconds per process over the producing window (psutil), and per 1,000 records scored
        "cpu_s": cpu,
        "cpu_s_total": round(sum(cpu.values()), 1),
        "cpu_ms_per_record": round(1000 * sum(cpu.values()) / max(1, total), 3) if cpu else None,
        "flink_busy_ms_per_s": busy,
        # When the slow records were produced (seconds into the window, with counts): a periodic cause
        # (checkpoints, a timer) shows as a regular spacing, load as a spread.
        f"over_{slow_ms}ms_by_second": _slow_by_second(latencies, rate, slow_ms),
        **({"hops": stage_hops(latencies, score_times, seen)} if stages else {}),
    }


def _slow_by_second(latencies: dict[str, float], rate: float, threshold_ms: float) -> dict[int, int]:
    counts: dict[int, int] = {}
    for key, ms in latencies.items():
        if ms > threshold_ms:
            second = int(int(key.rsplit("-", 1)[1]) / rate)
            counts[second] = counts.get(second, 0) + 1
    return dict(sorted(counts.items()))


def stage_hops(
    latencies: dict[str, float], score_times: dict[str, tuple[int, int, int]], seen: dict[str, dict[str, float]]
) -> dict[str, Any]:
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
    tail = keys[int(len(keys) * 0.99) :]
    return {
        "all": hop_summary(hops_of(keys)),
        "slowest_1pct": hop_summary(hops_of(tail)),
        "observed": sum(1 for k in keys if k in seen["input_avro"] and k in seen["leads"]),
    }


VARIANT_KNOBS = {
    # RenderSettings fields a variant may set (`--variant name:knob=value,knob=value`)
    "model_batch_size": int,
    "model_batch_linger": str,
    "async_capacity": int,
    "producer_linger_ms": int,
    "validate_parallelism": int,
    "scoring_parallelism": int,
    "route_parallelism": int,
    "checkpoint_interval": str,
    "buffer_timeout": str,
    "object_reuse": lambda v: v.lower() in ("1", "true", "yes"),
}


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """'big:model_batch_size=256,async_capacity=1024' -> ('big', {...}); knobs of VARIANT_KNOBS only."""
    name, _, rest = text.partition(":")
    if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name):
        raise SystemExit(f"variant name {name!r}: lower-case letters, digits and '-' only (it names statements)")
    knobs: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key not in VARIANT_KNOBS:
            raise SystemExit(f"unknown knob {key!r} in --variant {text!r}; one of {sorted(VARIANT_KNOBS)}")
        knobs[key] = VARIANT_KNOBS[key](value)
    return name, knobs


def stack_pids(stack: Any, extra: dict[str, int]) -> dict[str, int]:
    pids = {s.name: s.pid for s in stack.status(health=False) if s.pid and s.name != "supervisor"}
    return {**pids, **extra, "benchmark": os.getpid()}


def start_profiles(
    args: argparse.Namespace, label: str, pids: dict[str, int], seconds: float
) -> list[subprocess.Popen]:
    """Diagnostics only (`--profile-dir`): JFR on the TaskManager(s), py-spy on the model server, for one window."""
    if not args.profile_dir:
        return []
    folder = Path(args.profile_dir)
    folder.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, pid in pids.items():
        if name.startswith("taskmanager"):
            subprocess.run(
                [
                    "jcmd",
                    str(pid),
                    "JFR.start",
                    f"duration={int(seconds)}s",
                    "settings=profile",
                    f"filename={folder / f'{label}-{name}.jfr'}",
                ],
                capture_output=True,
                check=False,
            )
        elif name.startswith("model-server"):
            py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=os.path.expanduser("~/.local/bin"))
            if py_spy is None:  # a diagnostic extra, not a dependency: the window is still measured
                log.warning("py-spy is not installed (pip install py-spy): the model server is not profiled")
                continue
            procs.append(
                subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--duration",
                        str(int(seconds)),
                        "--format",
                        "speedscope",
                        "--output",
                        str(folder / f"{label}-{name}.speedscope.json"),
                        "--nonblocking",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
    return procs


def measure_variant(
    name: str,
    knobs: dict[str, Any],
    args: argparse.Namespace,
    cfg: StackConfig,
    kafka: KafkaResource,
    flink: SqlGatewayFlink,
    version: str,
    endpoint: str,
    meter: CpuMeter,
    template: list[dict[str, Any]],
    round_no: int = 0,
) -> dict[str, Any]:
    """Roll one variant out under its own topics and statement names, warm it up, drive the rates, stop it."""
    prefix = f"bench_{name}_r{round_no}_".replace("-", "_")
    names = f"bench-{name}-r{round_no}"
    ensure_topics(kafka.admin(), TOPICS, prefix=prefix)
    base = dict(
        model_batch_linger=args.batch_linger,
        producer_linger_ms=args.producer_linger_ms,
        validate_parallelism=args.validate_parallelism,
        checkpoint_interval=args.checkpoint_interval,
    )
    settings = RenderSettings(
        Dialect.FLINK,
        version,
        endpoint,
        kafka_bootstrap=cfg.kafka_bootstrap,
        topic_prefix=prefix,
        statement_prefix=names,
        group_prefix=names,
        **{**base, **knobs},
    )
    out: dict[str, Any] = {
        "variant": name,
        "round": round_no,
        "load_at_start": os.getloadavg(),
        "knobs": knobs,
        "settings": {k: getattr(settings, k) for k in VARIANT_KNOBS if hasattr(settings, k)},
        "runs": [],
    }
    started = time.monotonic()
    rollout(flink, render_pipeline(settings), verify_timeout_s=300)
    out["rollout_seconds"] = round(time.monotonic() - started, 1)
    out["job_vertices"] = job_vertices(cfg.flink_rest_url)
    # Warm-up, reported apart: the first tens of seconds after a rollout run with cold JITs (C2
    # compiling on the same 2 cores) and cold connections, a start-up cost, not the steady state.
    # One long-lived, connected producer, like the CRM's source connector: a producer created per window
    # stamps its first records before it has a connection and topic metadata, which showed up as
    # ~550 ms for the first second of every window (docs/streaming.md).
    producer = kafka.producer(**{"linger.ms": args.input_linger_ms})
    producer.list_topics(prefix + "input_raw", timeout=30)
    try:
        out["warmup"] = run_rate(kafka, producer, prefix, args.warmup_rate, args.warmup_seconds, template)
        log.info("[%s] warm-up p50 %.0f p99 %.0f", name, out["warmup"]["p50_ms"], out["warmup"]["p99_ms"])
        for rate in args.rates:
            gc_before = taskmanager_gc(cfg.flink_rest_url)
            profilers = start_profiles(args, f"{name}-{rate:.0f}", meter.pids, args.seconds)
            res = run_rate(
                kafka,
                producer,
                prefix,
                rate,
                args.seconds,
                template,
                stages=args.stages,
                meter=meter,
                flink_rest_url=cfg.flink_rest_url,
            )
            gc_after = taskmanager_gc(cfg.flink_rest_url)
            res["taskmanager_gc"] = {k: gc_after[k] - gc_before[k] for k in gc_after}
            for proc in profilers:
                proc.wait(60)
            log.info("[%s] %s", name, _brief(res))
            out["runs"].append(res)
        if args.max_rate_search:
            best = None
            for rate in args.search_rates:
                res = run_rate(
                    kafka,
                    producer,
                    prefix,
                    rate,
                    args.search_seconds,
                    template,
                    meter=meter,
                    flink_rest_url=cfg.flink_rest_url,
                )
                log.info("[%s] search %s", name, _brief(res))
                out.setdefault("search", []).append(res)
                if not res["sustained"]:
                    break
                best = rate
            out["max_sustained_rate"] = best
    finally:
        producer.flush(10)
        for _job_name, jid in flink.running(names + "-").items():  # free the cores for the next variant
            flink.cancel_job(jid)
    return out


def _brief(res: dict[str, Any]) -> str:
    return (
        f"rate {res['rate']:.0f}/s: p50 {res['p50_ms']:.0f} p99 {res['p99_ms']:.0f} max {res['max_ms']:.0f} ms, "
        f"scored {res['scored']}/{res['produced']}, sustained {res['sustained']}, "
        f"cpu {res.get('cpu_s')} ({res.get('cpu_ms_per_record')} ms/record), busy {res.get('flink_busy_ms_per_s')}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="*", default=[50, 200, 1000])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--max-rate-search", action="store_true", help="then step the rate up until not sustained")
    parser.add_argument("--search-seconds", type=float, default=60)
    parser.add_argument(
        "--search-rates",
        type=float,
        nargs="+",
        default=[1000, 2000, 3000, 4000, 5000, 6000, 7000],
        help="rates the search steps through, in order, until one is not sustained",
    )
    parser.add_argument("--out", default="benchmarks/results/e2e_latency.json")
    parser.add_argument(
        "--batch-linger", default=RenderSettings.model_batch_linger, help="kserve provider batch-linger"
    )
    parser.add_argument(
        "--producer-linger-ms", type=int, default=RenderSettings.producer_linger_ms, help="Flink Kafka sinks' linger.ms"
    )
    parser.add_argument("--validate-parallelism", type=int, default=RenderSettings.validate_parallelism)
    parser.add_argument(
        "--checkpoint-interval",
        default=RenderSettings.checkpoint_interval,
        help="execution.checkpointing.interval of the jobs",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:KNOB=V,...",
        help=f"a pipeline variant to measure in the same run (repeatable; knobs: "
        f"{', '.join(VARIANT_KNOBS)}); default: one variant with the defaults",
    )
    parser.add_argument(
        "--input-linger-ms",
        type=int,
        default=5,
        help="linger.ms of the benchmark's own producer (the CRM source stand-in; 5 = the Kafka 4.x client default)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="measure every variant this many times, order alternating"
    )
    parser.add_argument(
        "--profile-dir",
        default=None,
        help="record JFR (TaskManager) and py-spy (model server) during each --rates window into DIR",
    )
    parser.add_argument("--warmup-rate", type=float, default=200)
    parser.add_argument("--warmup-seconds", type=float, default=30)
    parser.add_argument(
        "--stages", action="store_true", help="also split the latency into hops (validate, split, predict, score sink)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]

    out = Path(args.out)
    tmp = Path(tempfile.mkdtemp(prefix="e2e-latency-"))
    cfg = StackConfig.isolated(tmp / "stack")
    install(cfg)
    stack = local_stack(cfg)
    server = None
    results: dict[str, Any] = {
        "settings": vars(args),
        "machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()},
        "variants": [],
    }
    try:
        stack.up(ENGINES)
        artifact = small_model(tmp / "artifacts", note="e2e benchmark")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = ModelServerProcess(artifact.uri, port=port, log_path=tmp / "model-server.log").start()
        kafka = KafkaResource(bootstrap_servers=cfg.kafka_bootstrap)
        flink = SqlGatewayFlink(
            url=cfg.sql_gateway_url,
            flink_rest_url=cfg.flink_rest_url,
            kafka=kafka,
            state_path=str(tmp / "streaming"),
            request_timeout_s=600,
            operation_timeout_s=600,
        )
        meter = CpuMeter(stack_pids(stack, {"model-server": server.pid}))
        template = synthetic_records(500, seed=5)
        # Rounds alternate the order (A B, B A, ...): the machine's background load drifts, and a variant
        # measured always first or always last would carry that drift as its own effect.
        for round_no in range(args.rounds):
            order = variants if round_no % 2 == 0 else list(reversed(variants))
            for name, knobs in order:
                results["variants"].append(
                    measure_variant(
                        name,
                        knobs,
                        args,
                        cfg,
                        kafka,
                        flink,
                        artifact.version,
                        f"{url}/v1/models/lead_scorer:predict",
                        meter,
                        template,
                        round_no,
                    )
                )
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_text(json.dumps(results, indent=2))
    finally:
        if server is not None:
            server.stop()
        stack.down()
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2))
    header = (
        f"{'variant':>12} {'rate/s':>7} {'p50':>7} {'p95':>7} {'p99':>7} {'max':>7} {'scored':>7} "
        f"{'cpu ms/rec':>10} sustained"
    )
    lines = [header]
    for v in results["variants"]:
        for r in v["runs"] + v.get("search", []):
            lines.append(
                f"{v['variant']:>12} {r['rate']:>7.0f} {r['p50_ms']:>7.0f} {r['p95_ms']:>7.0f} "
                f"{r['p99_ms']:>7.0f} {r['max_ms']:>7.0f} {r['scored']:>7} "
                f"{r['cpu_ms_per_record'] or 0:>10.3f} {r['sustained']}"
            )
        lines.append(
            f"{v['variant']:>12} round {v['round']}: max sustained {v.get('max_sustained_rate')} "
            f"(load average at its start {v['load_at_start'][0]:.1f})"
        )
    log.info("results (%s):\n%s", out, "\n".join(lines))


if __name__ == "__main__":
    main()
