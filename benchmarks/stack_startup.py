"""Measure the local stack: install time (fresh cache), cold and warm time to healthy, and total RSS.

    .venv/bin/python benchmarks/stack_startup.py            # cold + warm up, RSS (uses the .stack cache)
    .venv/bin/python benchmarks/stack_startup.py --install  # also a fresh install into a temporary cache

Runs on free ports in a temporary state dir, so a developer's own stack is not disturbed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

from lead_scoring.services import local_stack
from lead_scoring.stack.catalog import INFRASTRUCTURE as ENGINES
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import install
from lead_scoring.stack.service_status import total_rss
from lead_scoring.stack.stack import Stack
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource


def _up(stack: Stack) -> tuple[float, int]:
    started = time.monotonic()
    # The engines only: Kafka, JobManager, TaskManager, SQL Gateway (no model server or CRM workers).
    statuses = stack.up(ENGINES)
    elapsed = time.monotonic() - started
    bad = [s for s in statuses if s.state != "healthy"]
    if bad:
        raise SystemExit(f"not healthy: {bad}")
    time.sleep(5)  # let the JVMs settle after start-up before reading RSS
    return elapsed, total_rss(stack.status(ENGINES))


def _rss_with_jobs(stack: Stack, jobs: int) -> int:
    """RSS while `jobs` Kafka -> Flink SQL -> Kafka JSON statements run (the pipeline's steady state)."""
    cfg = stack.cfg
    flink = SqlGatewayFlink(url=cfg.sql_gateway_url, flink_rest_url=cfg.flink_rest_url, kafka=KafkaResource.local(cfg))
    job_ids = []
    with flink.session() as session:
        for i in range(jobs):
            for name, extra in (
                (f"src{i}", ",'scan.startup.mode'='earliest-offset','properties.group.id'='bench'"),
                (f"dst{i}", ""),
            ):
                session.execute(
                    f"CREATE TABLE {name} (Id STRING, n INT) WITH ('connector'='kafka','topic'='bench_{name}',"
                    f"'properties.bootstrap.servers'='{cfg.kafka_bootstrap}','format'='json'{extra})"
                )
            job_ids.append(session.execute(f"INSERT INTO dst{i} SELECT Id, n FROM src{i}").rows[0][0])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(flink.job_state(j) != "RUNNING" for j in job_ids):
        time.sleep(1)
    time.sleep(10)
    rss = total_rss(stack.status(ENGINES))
    for job_id in job_ids:
        flink.cancel_job(job_id)
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--install", action="store_true", help="also time a fresh install into an empty cache")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stack-bench-") as tmp:
        if args.install:
            cfg = StackConfig.isolated(Path(tmp) / "state", cache_root=Path(tmp) / "cache")
            started = time.monotonic()
            install(cfg)
            results["install_fresh_s"] = round(time.monotonic() - started, 1)
        cfg = StackConfig.isolated(Path(tmp) / "state")
        install(cfg)
        stack = local_stack(cfg)
        try:
            cold, rss = _up(stack)
            results["cold_up_s"] = round(cold, 1)
            results["rss_after_cold_up_gib"] = round(rss / 2**30, 2)
            stack.down()
            warm, rss = _up(stack)
            results["warm_up_s"] = round(warm, 1)
            results["rss_after_warm_up_gib"] = round(rss / 2**30, 2)
            results["rss_by_service_mib"] = {  # type: ignore[assignment]
                s.name: round((s.rss_bytes or 0) / 2**20) for s in stack.status(ENGINES)
            }
            results["rss_with_4_running_jobs_gib"] = round(_rss_with_jobs(stack, jobs=4) / 2**30, 2)
        finally:
            stack.down()
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
