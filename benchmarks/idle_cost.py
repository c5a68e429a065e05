"""What the product costs when nothing arrives, and with the demo trickle: CPU per process, as a share of one core.

A fresh private product (benchmarks/product.py) with the assets `scripts/up` launches and the Dagster UI (every
sensor at its real interval), then two windows in one run: `idle` (nothing produced, the demo generator off) and
`demo trickle` (`stack up demo-leads`, 5 leads/s, what `scripts/up` leaves running). Target (issue 30): each CRM
worker and the Dagster daemon ≤ 2 % of a core when idle.

    .venv/bin/python benchmarks/idle_cost.py --seconds 120     # results to benchmarks/results/idle_cost.json
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from common import CpuMeter, provenance
from product import PRODUCT_ASSETS, Product, private_product, process_pids, sensor_ticks

from lead_scoring.crm.service import DEMO_LEADS

log = logging.getLogger("idle_cost")

TARGET_SHARE = 0.02
WATCHED = ("writeback", "sink", "dagster-daemon")


def window(product: Product, label: str, seconds: float) -> dict[str, Any]:
    """CPU seconds and share of one core per process of the private product over `seconds`."""
    meter = CpuMeter(process_pids(product.home))
    started = time.time()
    time.sleep(seconds)
    cpu = meter.since(meter.start)
    elapsed = time.time() - started
    share = {name: round(v / elapsed, 4) for name, v in sorted(cpu.items(), key=lambda kv: -kv[1])}
    result = {
        "window": label,
        "seconds": round(elapsed, 1),
        "cpu_share_of_one_core": share,
        "sensor_ticks": sensor_ticks(product.ui_log, started, started + elapsed),
        "watched_within_target": {name: share.get(name, 0.0) <= TARGET_SHARE for name in WATCHED},
    }
    log.info("%s: %s", label, share)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--ui-nice", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/idle_cost.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    results: dict[str, Any] = {"provenance": provenance(sys.argv), "settings": vars(args), "windows": []}
    with private_product(args.ui_nice) as product:
        product.run("dg", "launch", "--assets", f"{PRODUCT_ASSETS} or group:crm", log_name="launch")
        product.open_ui()
        results["windows"].append(window(product, "idle", args.seconds))
        product.stack.up([DEMO_LEADS])
        results["windows"].append(window(product, "demo trickle (5 leads/s)", args.seconds))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    lines = ["| window | " + " | ".join(WATCHED) + " | top 5 (share of one core) |", "|---" * (len(WATCHED) + 2) + "|"]
    for w in results["windows"]:
        share = w["cpu_share_of_one_core"]
        top = ", ".join(f"{k} {v:.1%}" for k, v in list(share.items())[:5])
        lines.append(f"| {w['window']} | " + " | ".join(f"{share.get(n, 0.0):.1%}" for n in WATCHED) + f" | {top} |")
    log.info("results (%s):\n%s", out, "\n".join(lines))


if __name__ == "__main__":
    main()
