"""Latency in the user's flow: what the README tells a user to do, then leads the way a CRM source delivers them.

From a fresh private state (benchmarks/product.py): the stack up, the product's assets launched as `scripts/up`
launches them, `lead-scoring data import` of ../shared/data/x_education_leads_dev.csv, `dg launch --job
retraining_job` (so the champion is the model that real data selects), the demo trickle (`stack up
demo-leads`, 5 leads/s, unless --no-demo) and the Dagster UI with its sensors. Then real leads (the export's
rows, new Ids) arrive in three patterns, each measured on its own:

* `steady`: --rate leads/s for --seconds;
* `poll`: --poll-size leads at once every --poll-every s, --polls times (a Bulk API 2.0 source's poll);
* `burst`: --quiet-seconds with only the demo trickle, then --burst-size leads at --rate.

Each record is measured twice: to `lead_scores` (the score's Kafka timestamp - `source_ts`, the input's) and to
the CRM row the sales team sees (`crm_leads.written_at - source_ts`, read after the pattern drained). Per
pattern: p50/p95/p99/max both ways, the worst record of each second, each poll's last record to its last score
and CRM row, the Flink checkpoints triggered inside the window and where the CPU went (per process, per
TaskManager thread, per sensor tick). Targets (issue 30): steady and burst p99 <= 100 ms to lead_scores and
<= 1 s to the CRM row; each poll scored <= 2 s and in the CRM <= 3 s after its last record.

    .venv/bin/python benchmarks/user_flow.py                 # results to benchmarks/results/user_flow.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from common import CpuMeter, ThreadCpu, flink_checkpoints, provenance, replace_section
from e2e_latency import percentile
from product import PRODUCT_ASSETS, Product, champion, private_product, process_pids, sensor_ticks

from lead_scoring.crm.replay import load_events
from lead_scoring.crm.service import DEMO_LEADS
from lead_scoring.crm.synthetic import frame_records
from lead_scoring.retry import WaitTimeout, wait_until

log = logging.getLogger("user_flow")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "x_education_leads_dev.csv"
MAPPING = Path(__file__).resolve().parents[1] / "data" / "mappings" / "x_education.yaml"
TARGETS = {
    "steady": {"p99_scores_ms": 100, "p99_crm_ms": 1000},
    "burst": {"p99_scores_ms": 100, "p99_crm_ms": 1000},
    "poll": {"last_scored_ms": 2000, "last_in_crm_ms": 3000},
}


def real_leads(path: Path) -> list[dict[str, Any]]:
    """The export's leads as contract records, created events without the outcome (a new lead has none)."""
    events, _rejected = load_events(path, MAPPING)
    leads = []
    for record in frame_records(events):
        if record.get("_EventType") == "created":
            record.pop("IsConverted", None)
            leads.append(dict(record, _ObjectType="Lead"))
    return leads


class ScoreWatch:
    """Every score of keys starting with `prefix` on lead_scores: key -> (source_ts, score's Kafka timestamp)."""

    def __init__(self, product: Product, prefix: str):
        self.prefix = prefix.encode()
        self.seen: dict[str, tuple[int, int]] = {}
        self._done = threading.Event()
        self._consumer = product.kafka.consumer(
            f"user-flow-{uuid.uuid4().hex[:6]}", **{"auto.offset.reset": "latest", "fetch.wait.max.ms": 100}
        )
        self._consumer.subscribe(["lead_scores"])
        for _ in range(10):  # join the group before anything is produced
            self._consumer.poll(0.3)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            for msg in self._consumer.consume(1000, timeout=0.2):
                key = msg.key() or b""
                if not msg.error() and key.startswith(self.prefix):
                    self.seen.setdefault(key.decode(), (orjson.loads(msg.value())["source_ts"], msg.timestamp()[1]))

    def stop(self) -> None:
        self._done.set()
        self._thread.join(5)
        self._consumer.close()


def send(producer: Any, messages: list[tuple[bytes, bytes]], rate: float | None) -> None:
    """Produce `messages` at `rate`/s (paced in 2 ms steps) or, with None, all at once as a poll delivers them."""
    start, sent = time.monotonic(), 0
    while sent < len(messages):
        due = len(messages) if rate is None else min(len(messages), int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            key, value = messages[sent]
            try:
                producer.produce("input_raw", key=key, value=value)
            except BufferError:
                producer.poll(0.01)
                continue
            sent += 1
        producer.poll(0)
        if rate is not None:
            time.sleep(0.002)
    producer.flush(30)


def crm_rows(product: Product, prefix: str, n: int, timeout_s: float) -> dict[str, tuple[int, int]]:
    """Id -> (source_ts, written_at) in epoch ms of the CRM rows of `prefix`, once all `n` are there (or timeout)."""
    sql = (
        "SELECT Id, epoch_ms(source_ts) AS source_ms, epoch_ms(written_at) AS written_ms FROM crm_leads "
        f"WHERE STARTS_WITH(Id, '{prefix}')"
    )

    def rows() -> dict[str, tuple[int, int]]:
        frame = product.warehouse.query(sql)
        return {r.Id: (int(r.source_ms), int(r.written_ms)) for r in frame.itertuples()}

    try:
        return wait_until(
            lambda: got if len(got := rows()) >= n else None,
            timeout_s=timeout_s,
            interval_s=2,
            what=f"{n} CRM rows of {prefix}",
        )
    except WaitTimeout:
        return rows()


def summary(latencies: list[float]) -> dict[str, Any]:
    if not latencies:
        return {"n": 0}
    return {
        "n": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies),
    }


def worst_by_second(pairs: dict[str, tuple[int, int]], t0_ms: float) -> dict[int, float]:
    """Second of the window (by source_ts) -> the worst record produced in it."""
    worst: dict[int, float] = {}
    for source, done in pairs.values():
        second = max(0, int((source - t0_ms) // 1000))  # librdkafka's ms timestamps truncate: -0.x s is 0
        worst[second] = max(worst.get(second, 0.0), done - source)
    return dict(sorted(worst.items()))


def measure(
    product: Product,
    pattern: str,
    batches: list[list[dict[str, Any]]],
    rate: float | None,
    every_s: float,
    quiet_s: float,
    drain_s: float,
) -> dict[str, Any]:
    """Send `batches` (at `rate`, or each at once `every_s` apart) after `quiet_s`; both latencies per record."""
    prefix = f"UF{uuid.uuid4().hex[:5]}-{pattern}-"
    keyed = [
        [(f"{prefix}{b}-{i}".encode(), orjson.dumps(dict(r, Id=f"{prefix}{b}-{i}"))) for i, r in enumerate(batch)]
        for b, batch in enumerate(batches)
    ]
    total = sum(len(b) for b in keyed)
    watch = ScoreWatch(product, prefix)
    producer = product.kafka.producer(**{"linger.ms": 1})
    producer.list_topics("input_raw", timeout=30)
    pids = process_pids(product.home)
    meter = CpuMeter(pids)
    threads = ThreadCpu(pids["taskmanager"]) if "taskmanager" in pids else None
    if quiet_s:
        log.info("%s: %.0f s with only the demo trickle", pattern, quiet_s)
        time.sleep(quiet_s)
    cpu_start = meter.read()
    thread_start = threads.read() if threads else {}
    t0 = time.time()
    last_sent_ms: list[float] = []
    for i, batch in enumerate(keyed):
        if i:
            time.sleep(max(0.0, t0 + i * every_s - time.time()))
        send(producer, batch, rate)
        last_sent_ms.append(time.time() * 1000)
    t1 = time.time()
    try:
        wait_until(
            lambda: True if len(watch.seen) >= total else None,
            timeout_s=drain_s,
            interval_s=0.5,
            what=f"{total} scores of {pattern}",
        )
    except WaitTimeout:
        log.warning("%s: %d of %d scored after %.0f s", pattern, len(watch.seen), total, drain_s)
    watch.stop()
    t2 = time.time()
    cpu = meter.since(cpu_start)
    crm = crm_rows(product, prefix, total, drain_s)
    scores = watch.seen
    result: dict[str, Any] = {
        "pattern": pattern,
        "records": total,
        "window_s": round(t1 - t0, 1),
        "drained_after_s": round(t2 - t1, 1),
        "to_lead_scores": summary([done - src for src, done in scores.values()]),
        "to_crm_row": summary([done - src for src, done in crm.values()]),
        "scored": len(scores),
        "in_crm": len(crm),
        "worst_by_second_to_lead_scores": worst_by_second(scores, t0 * 1000),
        "worst_by_second_to_crm_row": worst_by_second(crm, t0 * 1000),
        "checkpoints": [
            {**c, "at_s": round(c["trigger_ms"] / 1000 - t0, 1)}
            for c in flink_checkpoints(product.cfg.flink_rest_url, t0 * 1000 - 1000)
            if c["trigger_ms"] <= t2 * 1000
        ],
        "cpu_seconds": dict(sorted(cpu.items(), key=lambda kv: -kv[1])),
        "cpu_share_of_one_core": {k: round(v / (t2 - t0), 3) for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])},
        "taskmanager_threads_cpu_seconds": threads.since(thread_start) if threads else {},
        "sensor_ticks": sensor_ticks(product.ui_log, t0, t2),
    }
    if len(batches) > 1 or rate is None:
        polls = []
        for b, sent_ms in enumerate(last_sent_ms):
            mine = f"{prefix}{b}-"
            scored = [done for k, (_, done) in scores.items() if k.startswith(mine)]
            written = [done for k, (_, done) in crm.items() if k.startswith(mine)]
            polls.append(
                {
                    "records": len(keyed[b]),
                    "scored": len(scored),
                    "in_crm": len(written),
                    "last_scored_ms": round(max(scored) - sent_ms) if scored else None,
                    "last_in_crm_ms": round(max(written) - sent_ms) if written else None,
                }
            )
        result["polls"] = polls
    log.info(
        "%s: to lead_scores %s; to the CRM row %s; CPU %s",
        pattern,
        result["to_lead_scores"],
        result["to_crm_row"],
        result["cpu_seconds"],
    )
    return result


def verdict(result: dict[str, Any]) -> dict[str, bool]:
    target = TARGETS[result["pattern"]]
    if result["pattern"] == "poll":
        return {
            name: all(p[name] is not None and p[name] <= bound for p in result["polls"])
            for name, bound in target.items()
        }
    return {
        "p99_scores_ms": result["to_lead_scores"].get("p99_ms", float("inf")) <= target["p99_scores_ms"],
        "p99_crm_ms": result["to_crm_row"].get("p99_ms", float("inf")) <= target["p99_crm_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--poll-size", type=int, default=2000)
    parser.add_argument("--poll-every", type=float, default=10.0)
    parser.add_argument("--polls", type=int, default=4)
    parser.add_argument("--quiet-seconds", type=float, default=60.0)
    parser.add_argument("--burst-size", type=int, default=1848)
    parser.add_argument("--drain-seconds", type=float, default=120.0)
    parser.add_argument("--no-demo", action="store_true", help="without the 5 leads/s demo trickle scripts/up starts")
    parser.add_argument("--ui-nice", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/user_flow.json")
    parser.add_argument(
        "--docs", type=Path, nargs="+", metavar="RESULTS", help="only render these results into docs/performance.md"
    )
    args = parser.parse_args()
    if args.docs:
        DOCS.write_text(render_docs(args.docs))
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if not args.data.exists():
        raise SystemExit(f"{args.data}: not found (the X Education export, ../shared/data beside the clone)")
    results: dict[str, Any] = {
        "provenance": provenance(sys.argv),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "steps": {},
    }
    leads = real_leads(args.data)

    def cycle(n: int) -> list[dict[str, Any]]:
        return [leads[i % len(leads)] for i in range(n)]

    with private_product(args.ui_nice) as product:
        for step, argv in [
            ("product assets", ("dg", "launch", "--assets", f"{PRODUCT_ASSETS} or group:crm")),
            ("reports", ("dg", "launch", "--assets", "group:monitoring or group:lifecycle")),
            ("data import", ("lead-scoring", "data", "import", str(args.data), "--mapping", str(MAPPING))),
            ("retraining_job", ("dg", "launch", "--job", "retraining_job")),
        ]:
            started = time.monotonic()
            product.run(*argv, check=step != "reports", log_name=step.replace(" ", "_"))
            results["steps"][step] = round(time.monotonic() - started, 1)
            log.info("%s: %.0f s", step, results["steps"][step])
        results["champion"] = champion(product.home)
        if not args.no_demo:
            product.stack.up([DEMO_LEADS])
        product.open_ui()
        results["patterns"] = [
            measure(product, "steady", [cycle(int(args.rate * args.seconds))], args.rate, 0.0, 0.0, args.drain_seconds),
            measure(
                product,
                "poll",
                [cycle(args.poll_size) for _ in range(args.polls)],
                None,
                args.poll_every,
                0.0,
                args.drain_seconds,
            ),
            measure(product, "burst", [cycle(args.burst_size)], args.rate, 0.0, args.quiet_seconds, args.drain_seconds),
        ]
    for result in results["patterns"]:
        result["meets_target"] = verdict(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())
    log.info("results (%s), steps %s, champion %s:\n%s", out, results["steps"], results["champion"], table(results))


def table(results: dict[str, Any]) -> str:
    """The results as the markdown table docs/performance.md shows (rendered by `--docs`, never typed by hand)."""
    p = results["provenance"]
    lines = [
        f"`{p['command']}` at `{p['commit'][:10]}`{' (tree with changes)' if p['tree_dirty'] else ''}, "
        f"{p['started_at'][:10]}, machine probe {p['machine']['probe_s']} s, {p['machine']['cpus']} CPUs; "
        f"champion {results['champion']}; setup {', '.join(f'{k} {v:.0f} s' for k, v in results['steps'].items())}",
        "",
        "| pattern | scored / sent | to lead_scores p50 / p99 / max (ms) | to the CRM row p50 / p99 / max (ms) "
        "| each poll: last scored / in the CRM (ms after its last record) | target met | CPU s (top 4) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results["patterns"]:
        s, c = r["to_lead_scores"], r["to_crm_row"]
        polls = ", ".join(f"{q['last_scored_ms']} / {q['last_in_crm_ms']}" for q in r.get("polls", [])) or "-"
        top = ", ".join(f"{k} {v}" for k, v in list(r["cpu_seconds"].items())[:4])
        met = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in r["meets_target"].items())
        lines.append(
            f"| {r['pattern']} | {r['scored']} / {r['records']} | {s.get('p50_ms', 0):.0f} / "
            f"{s.get('p99_ms', 0):.0f} / {s.get('max_ms', 0):.0f} | {c.get('p50_ms', 0):.0f} / "
            f"{c.get('p99_ms', 0):.0f} / {c.get('max_ms', 0):.0f} | {polls} | {met} | {top} |"
        )
    return "\n".join(lines)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BEGIN, END = "<!-- user_flow.py --docs: begin -->", "<!-- user_flow.py --docs: end -->"


def render_docs(results_paths: list[Path], docs: Path = DOCS) -> str:
    """docs/performance.md with the section between BEGIN and END replaced by the tables of `results_paths`."""
    root = docs.parents[1]
    tables = [
        f"**`{path.resolve().relative_to(root)}`**: {table(orjson.loads(path.read_bytes()))}\n"
        for path in results_paths
    ]
    return replace_section(docs.read_text(), BEGIN, END, "\n".join(tables))


if __name__ == "__main__":
    main()
