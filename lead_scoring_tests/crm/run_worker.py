"""Run one CRM worker on test topics in its own process (so a test can SIGKILL / SIGTERM it).

python -m lead_scoring_tests.crm.run_worker NAME BOOTSTRAP WAREHOUSE GROUP RAW_TOPIC SCORE_TOPIC... [--batch N]
"""

from __future__ import annotations

import argparse
import logging
import sys

from lead_scoring.crm.batches import WorkerFailed
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.crm.workers import build_worker
from lead_scoring.settings import Profile
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.warehouse.resources import DuckDBWarehouse


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("bootstrap")
    parser.add_argument("warehouse")
    parser.add_argument("group")
    parser.add_argument("raw_topic")
    parser.add_argument("score_topics", nargs="+")
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--max-wait", type=float, default=0.2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    topics = args.score_topics if args.name == "writeback" else [args.raw_topic, *args.score_topics]
    worker = build_worker(
        args.name,
        profile=Profile.LOCAL,
        kafka=KafkaResource(bootstrap_servers=args.bootstrap),
        warehouse=DuckDBWarehouse(path=args.warehouse),
        crm=LocalCrm(),
        topics=topics,
        score_topics=args.score_topics,
        group_id=args.group,
        batch_size=args.batch,
        max_wait_s=args.max_wait,
    )
    worker.install_signal_handlers()
    try:
        worker.run()
    except WorkerFailed:
        logging.exception("worker failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
