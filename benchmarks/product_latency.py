"""End-to-end latency of the PRODUCT as `scripts/up` leaves it, not of the pipeline alone.

On a private stack (free ports, temporary state), it starts what `scripts/up` starts: the supervised stack
(Kafka, Flink, SQL Gateway, model server, both CRM workers), the assets materialized through `dg launch`
(training -> gated model -> deployment -> Flink rollout), and `lead-scoring ui` (Dagster webserver, daemon
and code server, every sensor at its real interval, niced as scripts/up runs it). Then, in one run:

* `product`: leads at --rate on input_raw -> score on lead_scores, with everything running;
* `dagster paused`: the same window with the Dagster processes stopped (SIGSTOP), the cost of orchestration;
  --rounds alternates the two (product, paused, product, paused, ...) after --warmup-seconds of traffic, so
  neither side is the first window after start;
* `first after start`: measured before those, the first --seconds of traffic the stack sees (a cold JVM: the
  JIT compiles the hot paths while it scores);
* `after rollout` (--rollout): the first --rollout-window seconds after another model version took over
  (two champions are trained before any traffic; `champion_revert` swaps between them).

For each window: p50/p95/p99/max, when the records over 100 ms were produced, and where the CPU went: seconds
per process (psutil), per TaskManager thread (GC, JIT, Flink tasks) and, from the daemon's log, how long each
sensor's ticks took. Results to benchmarks/results/product_latency.json.

    .venv/bin/python benchmarks/product_latency.py                         # 200/s, 60 s windows
    .venv/bin/python benchmarks/product_latency.py --rate 200 --rollout    # + the cold spike after a rollout
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from common import CpuMeter, ThreadCpu, synthetic_records
from e2e_latency import run_rate
from product import PRODUCT_ASSETS, Product, champion, private_product, process_pids, processes, sensor_ticks

from lead_scoring.retry import wait_until
from lead_scoring.streaming.kafka import KafkaResource

log = logging.getLogger("product_latency")


def window(
    kafka: KafkaResource,
    producer: Any,
    rate: float,
    seconds: float,
    template: list[dict[str, Any]],
    label: str,
    root: Path,
) -> dict[str, Any]:
    pids = process_pids(root)
    meter = CpuMeter({**pids, "benchmark": os.getpid()})
    threads = ThreadCpu(pids["taskmanager"]) if "taskmanager" in pids else None
    t0 = time.time()
    result = run_rate(kafka, producer, "", rate, seconds, template, slow_ms=100)
    t1 = time.time()
    result["mode"] = label
    cpu = meter.since(meter.start)
    # Processes started during the window (e.g. `dg dev` restarting its code server after a pause) count with
    # all their CPU, under the same label: the meter only knows the pids of the window's start.
    known = set(pids.values())
    for name, group in processes(root).items():
        for proc in group:
            if proc.pid not in known:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    cpu[name] = round(cpu.get(name, 0.0) + times.user + times.system, 2)
                    result.setdefault("started_during_window", []).append(name)
    result["cpu_seconds"] = dict(sorted(cpu.items()))
    result["cpu_share"] = {k: round(v / (t1 - t0), 3) for k, v in result["cpu_seconds"].items()}
    result["taskmanager_threads_cpu_seconds"] = threads.since(threads.start) if threads else {}
    result["sensor_ticks"] = sensor_ticks(root / "ui.log", t0, t1)
    log.info(
        "%s: p50 %.0f, p99 %.0f, max %.0f ms; CPU %s; TaskManager threads %s; ticks %s; >100 ms by second %s",
        label,
        result["p50_ms"],
        result["p99_ms"],
        result["max_ms"],
        result["cpu_seconds"],
        result["taskmanager_threads_cpu_seconds"],
        result["sensor_ticks"],
        result["over_100ms_by_second"],
    )
    return result


def _launch_failed(launch: subprocess.Popen, log_path: Path) -> None:
    if launch.poll() is not None:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"the rollout launch ended (exit {launch.returncode}) without a new champion:\n{tail}")
    return None


def measure_product(product: Product, args: argparse.Namespace, results: dict[str, Any]) -> None:
    """What scripts/up materializes, the UI, then the windows of `args` into `results["windows"]`."""
    tmp = product.home
    # what scripts/up materializes (the demo generator stays off: the benchmark is the only producer)
    launches = [(f"{PRODUCT_ASSETS} or group:crm", True)]
    if args.rollout:  # a second champion before any traffic, so there is a good version to roll out to
        launches.append((PRODUCT_ASSETS, True))
    for selection, check in [*launches, ("group:monitoring or group:lifecycle", False)]:
        product.run("dg", "launch", "--assets", selection, check=check, log_name="launch")
    product.open_ui()
    kafka = product.kafka
    producer = kafka.producer(**{"linger.ms": 1})
    producer.list_topics("input_raw", timeout=30)
    template = synthetic_records(500, seed=5)
    # The first traffic after start meets a cold JVM (the JIT compiles the hot paths, C2 threads show in the
    # TaskManager's thread split): measured on its own, then more warm-up before the alternated windows.
    results["windows"].append(window(kafka, producer, args.rate, args.seconds, template, "first after start", tmp))
    if args.warmup_seconds:
        results["warmup"] = run_rate(kafka, producer, "", args.rate, args.warmup_seconds, template)
    for _ in range(args.rounds):
        results["windows"].append(window(kafka, producer, args.rate, args.seconds, template, "product", tmp))
        product.signal_dagster(signal.SIGSTOP)
        try:
            results["windows"].append(window(kafka, producer, args.rate, args.seconds, template, "dagster paused", tmp))
        finally:
            product.signal_dagster(signal.SIGCONT)
    if args.rollout:
        # The other good version takes over (`champion_revert`: hot swap into the model server, then the
        # rollout's check), as after a retraining or a promotion. Not a retraining here: the benchmark's own
        # synthetic leads are in the warehouse by now and the quality gate rightly refuses what they train.
        # The window opens the moment the production pointer moves, while the launch still finishes.
        before = champion(tmp)
        launch_log = tmp / "rollout.log"
        bin_dir = Path(sys.executable).parent
        with open(launch_log, "wb") as launch_out:
            revert = {"ops": {"champion_revert": {"config": {"to_previous": True}}}}
            launch = subprocess.Popen(
                [str(bin_dir / "dg"), "launch", "--assets", "champion_revert", "--config-json", json.dumps(revert)],
                env=product.env,
                stdout=launch_out,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: True if champion(tmp) != before else _launch_failed(launch, launch_log),
            timeout_s=900,
            interval_s=0.2,
            what="a new champion version",
        )
        results["rollout"] = {"from": before, "to": champion(tmp)}
        results["windows"].append(
            window(kafka, producer, args.rate, args.rollout_window, template, "after rollout", tmp)
        )
        scored_by = results["windows"][-1]["model_versions"]
        log.info("rollout %s -> %s; the window was scored by %s", before, results["rollout"]["to"], scored_by)
        if launch.wait(600) != 0:
            raise SystemExit(f"the rollout launch failed (exit {launch.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument(
        "--warmup-seconds",
        type=float,
        default=60.0,
        help="more traffic at --rate after the first window, before the alternated ones",
    )
    parser.add_argument("--rounds", type=int, default=2, help="product / dagster-paused window pairs, alternated")
    parser.add_argument("--rollout", action="store_true", help="also measure the window after a model rollout")
    parser.add_argument("--rollout-window", type=float, default=30.0)
    parser.add_argument("--ui-nice", type=int, default=10, help="niceness of the Dagster processes (scripts/up: 10)")
    parser.add_argument("--out", default="benchmarks/results/product_latency.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    results: dict[str, Any] = {"settings": vars(args), "windows": []}
    with private_product(args.ui_nice) as product:
        measure_product(product, args, results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    lines = [
        "| window | p50 | p95 | p99 | max | scored | CPU s (top 5) | TaskManager threads CPU s (top 4) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for w in results["windows"]:
        top = sorted(w["cpu_seconds"].items(), key=lambda kv: -kv[1])[:5]
        threads = list(w["taskmanager_threads_cpu_seconds"].items())[:4]
        lines.append(
            f"| {w['mode']} | {w['p50_ms']:.0f} | {w['p95_ms']:.0f} | {w['p99_ms']:.0f} | {w['max_ms']:.0f} "
            f"| {w['scored']}/{w['produced']} | {', '.join(f'{k} {v}' for k, v in top)} "
            f"| {', '.join(f'{k} {v}' for k, v in threads)} |"
        )
    log.info("results (%s):\n%s", out, "\n".join(lines))


if __name__ == "__main__":
    main()
