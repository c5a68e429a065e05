"""Scale-out: the single-node stack against a multi-node topology on loopback, in the same run.

    .venv/bin/python benchmarks/scale_out.py                       # 1/1/1 vs 3 brokers / 2 TMs / 2 replicas
    .venv/bin/python benchmarks/scale_out.py --fixed-rate 1500 --search-rates 2000 3000 4000 5000
    # each compute node (TaskManager n + replica n) a machine of 0.25 CPU: wall-clock scaling, measured
    .venv/bin/python benchmarks/scale_out.py --node-cpus 0.25 --fixed-rate 200 --search-start 250
    # ... and a rate counts only with p99 <= 1 s, over windows that each span a checkpoint interval
    .venv/bin/python benchmarks/scale_out.py --node-cpus 0.4 --search-start 1000 --search-seconds 60 \
        --search-max-p99-ms 1000 [--search-retries 1]   # a failed window gets one more chance, both sides alike

Both topologies are started by the stack's own catalog (`StackConfig(kafka_brokers=, taskmanagers=,
model_replicas=)`: brokers, TaskManagers and model-server replicas are services of the supervisor) and
both are driven through the `cluster` profile's code path, exactly as a user with their own cluster
would: LEAD_SCORING_KAFKA_BOOTSTRAP_SERVERS / _SQL_GATEWAY_URL / _FLINK_REST_URL / _MODEL_ENDPOINTS /
_FLINK_PARALLELISM / _TOPIC_PARTITIONS are set, then `model_deployment` (ClusterModelServing: verifies
every replica serves the version), `streaming_topics` and `flink_statements` are materialized with the
profile's resources. The single node is "a cluster of one" (pipeline's own parallelism); the topology
runs every statement at parallelism = TaskManagers.

What it reports per topology:
* where Flink placed the statements' subtasks (per TaskManager, per job): a scale-out is only real if
  each statement runs on every TaskManager.
* CPU per record at one fixed rate both can sustain (`--fixed-rate`): CPU seconds (psutil, user + system)
  of every pipeline process (brokers, JobManager, TaskManagers, SQL Gateway, model servers) over the
  window / records scored. Its inverse is the throughput per CPU-second. The load generator (this
  process) is reported apart: it is the CRM's stand-in, not the pipeline. Also per tier: the compute tier
  (TaskManagers + model servers, what the topology doubles) apart from the Kafka tier (one broker against
  three with every partition replicated three times: a cost of replication, not of scaling out).
* the highest rate sustained (`--search-rates`, stepping up until one is not; or `--search-start`, growing
  by `--search-factor`, then bisecting), with p50/p99. Every measured window starts with no backlog: short
  probes at 50/s until one is scored within 500 ms (a failed window's backlog used to fail the next one).

On a 2-core machine both topologies share the same two cores, so unconstrained wall-clock throughput cannot
show what a second TaskManager and replica on their own machines add. `--node-cpus` makes it measurable:
compute node n (TaskManager n + model-server replica n) is put in a cgroup capped at that many CPUs, a
machine of that size, in both topologies; the topology has twice the nodes, so twice the CPU where the
scoring work is, and the max sustained rates are compared directly (`speedup_wall_clock`). The Kafka
brokers are not capped unless `--broker-cpus` is given (they are the cluster both share the rest of the
host with); the Flink control plane and the load generator never are. The nodes are capped after the
warm-up (`--cap-from-start` caps them before it), then settle under the cap for `--settle-seconds`: a node's
capacity is its steady state, not its first minutes of JIT compilation. Without `--node-cpus`, the
projection printed is `task managers x (single CPU per record / multi CPU per record)`, labelled as such.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
from common import (
    CpuBudgets,
    CpuMeter,
    flink_busy,
    flink_checkpoints,
    flink_placement,
    small_model,
    stall_runs,
    synthetic_records,
    taskmanager_gc,
)
from e2e_latency import run_rate

from lead_scoring.services import local_stack
from lead_scoring.serving.assets import model_deployment
from lead_scoring.serving.definitions import model_serving
from lead_scoring.serving.service import replica_name
from lead_scoring.settings import Profile
from lead_scoring.stack.catalog import infrastructure
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import taskmanager_name
from lead_scoring.stack.install import install
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.definitions import flink, kafka

log = logging.getLogger("scale_out")

PREFIX = "so_"
NAMES = "scale-out"


def topology_config(
    root: Path, brokers: int, taskmanagers: int, replicas: int, args: argparse.Namespace
) -> StackConfig:
    return StackConfig.isolated(
        root,
        kafka_brokers=brokers,
        taskmanagers=taskmanagers,
        model_replicas=replicas,
        kafka_replication_factor=args.replication_factor,
        start_timeout_s=300.0,
        # each TaskManager is sized as a node of its own: same memory and slots as the
        # single one
        taskmanager_memory=args.taskmanager_memory,
        task_slots=8,
    )


def cluster_env(cfg: StackConfig, parallelism: int | None, partitions: int) -> dict[str, str]:
    env = {
        "LEAD_SCORING_PROFILE": "cluster",
        "LEAD_SCORING_KAFKA_BOOTSTRAP_SERVERS": cfg.kafka_bootstrap,
        "LEAD_SCORING_SQL_GATEWAY_URL": cfg.sql_gateway_url,
        "LEAD_SCORING_FLINK_REST_URL": cfg.flink_rest_url,
        "LEAD_SCORING_MODEL_ENDPOINTS": ",".join(cfg.model_urls),
        "LEAD_SCORING_TOPIC_PARTITIONS": str(partitions),
    }
    if parallelism:
        env["LEAD_SCORING_FLINK_PARALLELISM"] = str(parallelism)
    return env


def deploy(cfg: StackConfig, store: Path, artifact: ModelArtifact) -> dict[str, Any]:
    """The cluster profile's own assets and resources (the environment is already set)."""
    resources: dict[str, Any] = {
        "kafka": kafka(Profile.CLUSTER),
        "flink": flink(Profile.CLUSTER),
        "model_serving": model_serving(Profile.CLUSTER),
        "model_store": LocalModelStore(root=str(store)),
    }

    @dg.asset(name="model_artifact")
    def the_artifact() -> ModelArtifact:
        return artifact

    result = dg.materialize_to_memory(
        [the_artifact, model_deployment, streaming_topics, flink_statements],
        resources=resources,
        run_config={
            "ops": {
                "streaming_topics": {"config": {"topic_prefix": PREFIX}},
                "flink_statements": {
                    "config": {
                        "topic_prefix": PREFIX,
                        "statement_prefix": NAMES,
                        "group_prefix": NAMES,
                        "verify_timeout_s": 300.0,
                    }
                },
            }
        },
    )
    deployment = result.output_for_node("model_deployment")
    md = result.asset_materializations_for_node("flink_statements")[0].metadata
    return {
        "deployment_mode": deployment.mode,
        "endpoints": deployment.url,
        "statements": md["statements"].value,
        "engine": md["engine"].value,
    }


def measure(
    name: str,
    brokers: int,
    taskmanagers: int,
    replicas: int,
    parallelism: int | None,
    args: argparse.Namespace,
    tmp: Path,
) -> dict[str, Any]:
    root = tmp / name
    cfg = topology_config(root, brokers, taskmanagers, replicas, args)
    install(cfg)
    store = root / "artifacts"  # the replicas' shared artifact store (<state root>/artifacts)
    artifact = small_model(store, note="scale-out benchmark")
    ArtifactRepository(LocalBlobs(store), Profile.LOCAL).set_production(artifact.version)
    stack = local_stack(cfg)
    out: dict[str, Any] = {
        "topology": name,
        "kafka_brokers": brokers,
        "taskmanagers": taskmanagers,
        "model_replicas": replicas,
        "replication_factor": cfg.replication_factor,
        "parallelism": parallelism or "pipeline defaults",
        "partitions": args.partitions,
        "runs": [],
    }
    previous_env = {k: os.environ.get(k) for k in cluster_env(cfg, parallelism, args.partitions)}
    budgets: CpuBudgets | None = None
    throttled: dict[str, float] = {}
    started = time.monotonic()
    try:
        stack.up([*infrastructure(cfg), *(replica_name(r) for r in range(1, replicas + 1))])
        out["stack_up_seconds"] = round(time.monotonic() - started, 1)
        os.environ.update(cluster_env(cfg, parallelism, args.partitions))
        t0 = time.monotonic()
        out["deployment"] = deploy(cfg, store, artifact)
        out["deploy_seconds"] = round(time.monotonic() - t0, 1)
        out["placement"] = flink_placement(cfg.flink_rest_url)
        log.info("[%s] subtasks per TaskManager: %s", name, out["placement"]["subtasks_per_taskmanager"])
        kafka_res = kafka(Profile.CLUSTER)
        pids = {s.name: s.pid for s in stack.status(health=False) if s.pid and s.name != "supervisor"}
        template = synthetic_records(500, seed=5)
        producer = kafka_res.producer(**{"linger.ms": args.input_linger_ms})
        producer.list_topics(PREFIX + "input_raw", timeout=30)

        def cap() -> None:
            nonlocal budgets, throttled
            budgets = CpuBudgets()
            out["cpu_budget"] = assign_nodes(budgets, pids, args)
            throttled = budgets.throttled_s()
            log.info("[%s] CPU budgets: %s", name, out["cpu_budget"])

        if args.node_cpus and args.cap_from_start:
            cap()
        out["warmup"] = _summary(run_rate(kafka_res, producer, PREFIX, args.warmup_rate, args.warmup_seconds, template))
        log.info("[%s] warm-up %s", name, out["warmup"])
        if args.node_cpus and not args.cap_from_start:
            # The JIT compiles Flink's and Kafka's hot paths in the first minute or two; under a 0.3-CPU quota
            # that one-off work takes minutes and leaves a backlog the measured windows then inherit. A node's
            # capacity is its steady state, so the nodes are capped once warm, then settle under the cap.
            cap()
            out["settle"] = _summary(
                run_rate(kafka_res, producer, PREFIX, args.warmup_rate, args.settle_seconds, template)
            )
            log.info("[%s] settled under the cap %s", name, out["settle"])
        meter = CpuMeter({**pids, "load generator": os.getpid()})

        def drained() -> dict[str, Any]:
            """Wait (up to DRAIN_MAX_S) until a short probe at a low rate is scored fast: a failed window leaves a
            backlog, and the next window must not inherit it (it did: a retry after a failure started seconds
            behind, and each failed step of the search failed the next one)."""
            deadline = time.monotonic() + DRAIN_MAX_S
            probes = 0
            while True:
                probes += 1
                probe = run_rate(kafka_res, producer, PREFIX, DRAIN_PROBE_RATE, DRAIN_PROBE_S, template, drain_s=20)
                clear = probe["scored"] == probe["produced"] and probe["p99_ms"] <= DRAIN_PROBE_MAX_P99_MS
                if clear or time.monotonic() > deadline:
                    return {"probes": probes, "clear": clear, "last_probe_p99_ms": probe["p99_ms"]}

        def window(rate: float, seconds: float) -> dict[str, Any]:
            """One measured window at `rate`, with how long each budgeted node was throttled during it, and
            what might stall the stream: its checkpoints and the TaskManagers' garbage collection."""
            before = drained()
            if before["probes"] > 1 or not before["clear"]:
                log.info("[%s] waited for the backlog before the window: %s", name, before)
            gc_before = taskmanager_gc(cfg.flink_rest_url)
            res = _with_efficiency(
                run_rate(
                    kafka_res, producer, PREFIX, rate, seconds, template, meter=meter, flink_rest_url=cfg.flink_rest_url
                )
            )
            res.update(_stall_diagnosis(res, cfg.flink_rest_url, gc_before))
            res["drained_before"] = before
            if budgets:
                now = budgets.throttled_s()
                res["throttled_s"] = {k: round(v - throttled.get(k, 0.0), 1) for k, v in now.items()}
                throttled.update(now)
            return res

        out["fixed"] = window(args.fixed_rate, args.fixed_seconds)
        log.info("[%s] fixed %s", name, _brief(out["fixed"]))

        def attempt(rate: float) -> bool:
            # A failed window is repeated up to --search-retries times (both topologies alike): near a capped
            # node's ceiling one stall decides a window, and the first failure would end the search for good.
            for tries in range(args.search_retries + 1):
                res = window(rate, args.search_seconds)
                res["attempt"] = tries + 1
                out["runs"].append(res)
                log.info("[%s] search (attempt %d) %s", name, tries + 1, _brief(res))
                # kept up (the backlog stayed bounded), and with --search-max-p99-ms also fast enough
                if res["sustained"] and (args.search_max_p99_ms is None or res["p99_ms"] <= args.search_max_p99_ms):
                    return True
            return False

        out["max_sustained_rate"] = search(attempt, args)
        out["flink_busy_after"] = flink_busy(cfg.flink_rest_url)
    finally:
        if budgets:
            budgets.close()
        for key, value in previous_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stack.down()
    return out


# Before each measured window: probes of DRAIN_PROBE_S at DRAIN_PROBE_RATE until one is scored within
# DRAIN_PROBE_MAX_P99_MS (so the window starts with no backlog), for at most DRAIN_MAX_S.
DRAIN_PROBE_RATE = 50.0
DRAIN_PROBE_S = 4.0
DRAIN_PROBE_MAX_P99_MS = 500.0
DRAIN_MAX_S = 240.0
PIPELINE_EXCLUDES = ("load generator",)
# process-name prefix -> tier; the rest (JobManager, SQL Gateway) is the control plane
TIERS = (("kafka", "kafka"), ("taskmanager", "taskmanagers"), ("model-server", "model servers"))


def assign_nodes(budgets: CpuBudgets, pids: dict[str, int], args: argparse.Namespace) -> dict[str, Any]:
    """The machines: compute node n runs TaskManager n and model-server replica n (`--node-cpus` each); with
    `--broker-cpus`, each broker is a machine of that size, else the Kafka cluster is not budgeted (it is the
    cluster both topologies share the rest of the host with). The Flink control plane (JobManager, SQL
    Gateway) and the load generator are never budgeted."""
    compute = {name(n): f"node-{n}" for n in range(1, 10) for name in (taskmanager_name, replica_name)}
    nodes: dict[str, list[str]] = {}
    for service, pid in pids.items():
        if service in compute:
            budgets.assign(compute[service], [pid], args.node_cpus)
            nodes.setdefault(compute[service], []).append(service)
        elif args.broker_cpus and service.startswith("kafka"):
            budgets.assign(service, [pid], args.broker_cpus)
            nodes[service] = [service]
    return {
        "cpus_per_compute_node": args.node_cpus,
        "cpus_per_broker": args.broker_cpus,
        "nodes": nodes,
        "not_budgeted": sorted(set(pids) - {s for v in nodes.values() for s in v}) + ["load generator"],
    }


def search(attempt: Callable[[float], bool], args: argparse.Namespace) -> float | None:
    """The highest rate sustained: the listed `--search-rates` in order until one is not sustained; or, with
    `--search-start`, rates growing by `--search-factor` until one fails, then `--search-bisect` bisections
    between the last sustained rate and the first failed one (so two topologies are compared to a few %)."""
    if not args.search_start:
        best = None
        for rate in args.search_rates:
            if not attempt(rate):
                break
            best = rate
        return best
    low, high = None, args.search_start
    while attempt(high):
        low, high = high, round(high * args.search_factor)
        if high > args.search_max:
            return low
    while low is None:  # not even the first rate: step down until one is sustained; high stays the lowest failed
        lower = round(high / args.search_factor)
        if lower < args.search_min:
            return None
        if attempt(lower):
            low = lower
        else:
            high = lower
    for _ in range(args.search_bisect):
        mid = round((low + high) / 2)
        if attempt(mid):
            low = mid
        else:
            high = mid
    return low


def _stall_diagnosis(
    res: dict[str, Any], flink_rest_url: str, gc_before: dict[str, dict[str, float]]
) -> dict[str, Any]:
    """The window's stalls (runs of seconds in which 90% of the records took over 250 ms, by when they were
    produced) next to its checkpoints (seconds into the window) and each TaskManager's GC time in it: a stall
    that starts at a checkpoint's trigger, or with a jump in old-generation GC time, names its cause."""
    start = res["started_at_ms"]
    checkpoints = [
        {**{k: v for k, v in c.items() if k != "trigger_ms"}, "at_s": round((c["trigger_ms"] - start) / 1000, 1)}
        for c in flink_checkpoints(flink_rest_url, start)
    ]
    gc_after = taskmanager_gc(flink_rest_url)
    gc = {
        tm: {k: round(v - gc_before.get(tm, {}).get(k, 0.0)) for k, v in metrics.items()}
        for tm, metrics in gc_after.items()
    }
    return {
        "stalls_s": stall_runs(res["over_250ms_by_second"], res["rate"]),
        "checkpoints": checkpoints,
        "gc_in_window": gc,
    }


def _tier(process: str) -> str:
    """Which tier of the cluster a process belongs to (`kafka-2` -> kafka, `taskmanager-2` -> taskmanagers)."""
    for prefix, tier in TIERS:
        if process.startswith(prefix):
            return tier
    return "control plane"


def _with_efficiency(res: dict[str, Any]) -> dict[str, Any]:
    cpu = res.get("cpu_s") or {}
    pipeline = sum(v for k, v in cpu.items() if k not in PIPELINE_EXCLUDES)
    res["pipeline_cpu_s"] = round(pipeline, 2)
    res["pipeline_cpu_ms_per_record"] = round(1000 * pipeline / max(1, res["scored"]), 4)
    res["records_per_pipeline_cpu_s"] = round(res["scored"] / pipeline, 1) if pipeline else None
    # Per tier: the compute tier (TaskManagers + model servers) is what a scale-out doubles; the Kafka tier
    # is the user's cluster, sized (and replicated) on its own, so its cost is reported apart, not hidden.
    tiers: dict[str, float] = {}
    for process, seconds in cpu.items():
        if process not in PIPELINE_EXCLUDES:
            tier = _tier(process)
            tiers[tier] = tiers.get(tier, 0.0) + seconds
    res["tier_cpu_ms_per_record"] = {t: round(1000 * v / max(1, res["scored"]), 4) for t, v in sorted(tiers.items())}
    compute = tiers.get("taskmanagers", 0.0) + tiers.get("model servers", 0.0)
    res["compute_tier_cpu_ms_per_record"] = round(1000 * compute / max(1, res["scored"]), 4)
    res.pop("backlog_per_second", None)
    return res


def _summary(res: dict[str, Any]) -> dict[str, Any]:
    return {k: res[k] for k in ("rate", "p50_ms", "p99_ms", "max_ms", "scored", "sustained")}


def _brief(res: dict[str, Any]) -> str:
    return (
        f"{res['rate']:.0f}/s: p50 {res['p50_ms']:.0f} p99 {res['p99_ms']:.0f} ms, scored {res['scored']}, "
        f"sustained {res['sustained']}, pipeline CPU {res['pipeline_cpu_s']} s "
        f"({res['pipeline_cpu_ms_per_record']} ms/record, {res['records_per_pipeline_cpu_s']} records/CPU-s), "
        f"per process {res['cpu_s']}"
        + (
            f"; stalls at {res['stalls_s']} s, checkpoints at "
            f"{sorted({c['at_s'] for c in res.get('checkpoints', [])})} s, GC {res.get('gc_in_window')}"
            if "stalls_s" in res
            else ""
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--brokers", type=int, default=3)
    parser.add_argument("--taskmanagers", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=None,
        help="of the multi-node topics (default: min(3, brokers)); the single node has one copy",
    )
    parser.add_argument("--partitions", type=int, default=4, help="partitions of the pipeline's topics (both)")
    parser.add_argument("--taskmanager-memory", default="1536m")
    parser.add_argument("--fixed-rate", type=float, default=1500)
    parser.add_argument("--fixed-seconds", type=float, default=45)
    parser.add_argument("--search-rates", type=float, nargs="*", default=[2000, 3000, 4000, 5000, 6000])
    parser.add_argument(
        "--search-start",
        type=float,
        default=None,
        help="search from this rate up by --search-factor, then bisect (instead of --search-rates)",
    )
    parser.add_argument("--search-factor", type=float, default=1.25)
    parser.add_argument("--search-bisect", type=int, default=2)
    parser.add_argument("--search-max", type=float, default=20000)
    parser.add_argument("--search-min", type=float, default=50)
    parser.add_argument("--search-seconds", type=float, default=30)
    parser.add_argument(
        "--search-max-p99-ms",
        type=float,
        default=None,
        help="a searched rate counts only if its p99 is at most this (e.g. 1000: the throughput "
        "target's p99 < 1 s); by default, only if the backlog stayed bounded",
    )
    parser.add_argument(
        "--search-retries",
        type=int,
        default=0,
        help="repeat a searched rate's window this many times when it fails; the rate counts if one "
        "of its windows passes (run 6 in docs/performance.md: one failed first step ended a "
        "search below its start)",
    )
    parser.add_argument(
        "--node-cpus",
        type=float,
        default=None,
        help="run TaskManager n and replica n as compute node n, capped at this many CPUs (a cgroup "
        "quota: a machine of that size), so wall-clock throughput shows the scaling",
    )
    parser.add_argument(
        "--broker-cpus",
        type=float,
        default=None,
        help="with --node-cpus: also cap each Kafka broker at this many CPUs (default: not capped)",
    )
    parser.add_argument("--warmup-rate", type=float, default=500)
    parser.add_argument("--warmup-seconds", type=float, default=30)
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=30,
        help="with --node-cpus: seconds at --warmup-rate after the nodes are capped, unmeasured",
    )
    parser.add_argument(
        "--cap-from-start",
        action="store_true",
        help="with --node-cpus: cap the nodes before the warm-up (JIT compilation then runs under "
        "the cap); by default they are capped once warm",
    )
    # 20 ms, not the latency benchmarks' 5: against three brokers a 5 ms producer's librdkafka broker threads
    # spun whenever the brokers answered slowly (cold, or the 2 cores full): 15 CPU s per 30 s at 1,500/s
    # against 4.6 at 20 ms, cold; 1.9-5.3 against 1.0, warm. That CPU was taken from the topology being measured.
    parser.add_argument(
        "--input-linger-ms",
        type=int,
        default=20,
        help="linger.ms of the load generator's producer (the CRM's stand-in)",
    )
    parser.add_argument("--only", choices=["single", "multi"], default=None)
    parser.add_argument("--out", default="benchmarks/results/scale_out.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="scale-out-"))
    os.environ["LEAD_SCORING_HOME"] = str(tmp / "home")  # deployment records etc. of this run only
    results: dict[str, Any] = {
        "settings": vars(args),
        "machine": {"cpus": os.cpu_count(), "load_at_start": os.getloadavg()},
        "topologies": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plan = [
        ("single", 1, 1, 1, None),
        (
            f"{args.brokers}b-{args.taskmanagers}tm-{args.replicas}r",
            args.brokers,
            args.taskmanagers,
            args.replicas,
            args.taskmanagers,
        ),
    ]
    if args.only:
        plan = [plan[0]] if args.only == "single" else [plan[1]]
    for name, brokers, tms, replicas, parallelism in plan:
        results["topologies"].append(measure(name, brokers, tms, replicas, parallelism, args, tmp))
        out.write_text(json.dumps(results, indent=2))
    results["machine"]["load_at_end"] = os.getloadavg()
    if len(results["topologies"]) == 2:
        single, multi = results["topologies"]
        s_cost, m_cost = single["fixed"]["pipeline_cpu_ms_per_record"], multi["fixed"]["pipeline_cpu_ms_per_record"]
        s_compute = single["fixed"]["compute_tier_cpu_ms_per_record"]
        m_compute = multi["fixed"]["compute_tier_cpu_ms_per_record"]
        results["comparison"] = {
            "fixed_rate": args.fixed_rate,
            "records_per_cpu_s": {
                "single": single["fixed"]["records_per_pipeline_cpu_s"],
                "multi": multi["fixed"]["records_per_pipeline_cpu_s"],
            },
            "efficiency_multi_vs_single": round(s_cost / m_cost, 3),
            "projected_speedup_with_own_cores": round(args.taskmanagers * s_cost / m_cost, 2),
            "tier_cpu_ms_per_record": {
                "single": single["fixed"]["tier_cpu_ms_per_record"],
                "multi": multi["fixed"]["tier_cpu_ms_per_record"],
            },
            "compute_tier_efficiency_multi_vs_single": round(s_compute / m_compute, 3),
            "compute_tier_projected_speedup": round(args.taskmanagers * s_compute / m_compute, 2),
            "max_sustained_wall_clock": {"single": single["max_sustained_rate"], "multi": multi["max_sustained_rate"]},
            "cpus_per_compute_node": args.node_cpus,
            "cpus_per_broker": args.broker_cpus,
        }
        if single["max_sustained_rate"] and multi["max_sustained_rate"]:
            results["comparison"]["speedup_wall_clock"] = round(
                multi["max_sustained_rate"] / single["max_sustained_rate"], 2
            )
    out.write_text(json.dumps(results, indent=2))
    lines = [f"{'topology':>14} {'fixed p99':>9} {'ms CPU/rec':>10} {'rec/CPU-s':>9} {'max sustained':>13}"]
    for t in results["topologies"]:
        lines.append(
            f"{t['topology']:>14} {t['fixed']['p99_ms']:>9.0f} "
            f"{t['fixed']['pipeline_cpu_ms_per_record']:>10.3f} "
            f"{t['fixed']['records_per_pipeline_cpu_s']:>9} {str(t['max_sustained_rate']):>13}"
        )
    if "speedup_wall_clock" in results.get("comparison", {}):
        budget = (
            f"each TaskManager + replica node capped at {args.node_cpus} CPU"
            + (f", each broker at {args.broker_cpus}" if args.broker_cpus else ", Kafka not capped")
            if args.node_cpus
            else "both on the same shared cores"
        )
        lines.append(
            f"max sustained rate, multi / single: {results['comparison']['speedup_wall_clock']}x (measured; {budget})"
        )
    if "comparison" in results:
        lines.append(
            f"throughput per CPU-second, multi / single: "
            f"{results['comparison']['efficiency_multi_vs_single']}; "
            f"projected speed-up with each TaskManager + replica on its own cores: "
            f"{results['comparison']['projected_speedup_with_own_cores']}x (a projection, not a measurement)"
        )
        c = results["comparison"]
        kafka_ms = [c["tier_cpu_ms_per_record"][t].get("kafka") for t in ("single", "multi")]
        lines.append(
            f"compute tier only (TaskManagers + model servers), per CPU-second, multi / single: "
            f"{c['compute_tier_efficiency_multi_vs_single']}; projected: "
            f"{c['compute_tier_projected_speedup']}x (a projection; the Kafka tier apart, CPU ms per "
            f"record single / multi: {kafka_ms[0]} / {kafka_ms[1]})"
        )
    log.info("results (%s):\n%s", out, "\n".join(lines))


if __name__ == "__main__":
    main()
