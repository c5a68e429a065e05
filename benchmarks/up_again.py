"""`scripts/up` again, after hostile input: how long until the Dagster UI answers, on this checkout's product.

Issue 29's proof: once a hostile record stopped the sink for good and the next `scripts/up` never opened the UI.
This runs the README's command as a user does, on this checkout (its own ports, `.state`, `.dagster_home`):

1. `scripts/up` until the UI answers and the script is done (a first run on a fresh checkout materializes
   everything: minutes);
2. the structurally hostile payloads of `benchmarks/faults.py` into `input_raw`, mid-way through the demo trickle;
3. `scripts/up` twice more, each timed from its start until http://127.0.0.1:3000 answers and the script has
   printed the UI's address (stack up, product checked, demo leads on), then Ctrl-C (the stack keeps running);
4. `lead-scoring stack status`'s worker lines and `lead-scoring audit --since` of the window after each.

    .venv/bin/python benchmarks/up_again.py            # results: benchmarks/results/up_again.json

The first run's time is recorded too; it is not the figure this measures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from common import provenance
from confluent_kafka import Producer
from faults import hostile_payloads

from lead_scoring.stack.config import StackConfig
from lead_scoring.streaming.topics import INPUT_RAW

log = logging.getLogger("up_again")
ROOT = Path(__file__).resolve().parents[1]
UI = "http://127.0.0.1:3000"
READY_LINE = "Dagster UI: http://127.0.0.1:3000"  # scripts/up prints it once its steps are done


def _ui_answers() -> bool:
    try:
        return httpx.get(f"{UI}/server_info", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def run_up(label: str, timeout_s: float) -> dict[str, Any]:
    """Start `scripts/up`, time it until the UI answers and the script's steps are done (it printed the UI's
    address: the product is up), then stop it (Ctrl-C to its process group).

    The UI starts first, in the background, so it can answer while a first run still materializes: that is
    `ui_answered_s`; `ui_answered_s` alone would stop a first run half-way."""
    log_path = ROOT / "test-artifacts" / f"up_again_{label}.log"
    started = time.monotonic()
    with open(log_path, "w") as out:
        proc = subprocess.Popen(
            ["bash", "scripts/up"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        ui_s = ready_s = None
        while time.monotonic() - started < timeout_s and proc.poll() is None:
            if ui_s is None and _ui_answers():
                ui_s = round(time.monotonic() - started, 1)
            if ui_s is not None and READY_LINE in log_path.read_text(errors="replace"):
                ready_s = round(time.monotonic() - started, 1)
                break
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the UI stops, the stack keeps running
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    materialized = "not materializing again" not in log_path.read_text()
    log.info("%s: UI answered after %s s, product up after %s s (materialized: %s)", label, ui_s, ready_s, materialized)
    return {
        "run": label,
        "ui_answered_s": ui_s,
        "ready_s": ready_s,
        "materialized": materialized,
        "exit": proc.returncode,
    }


def send_hostile(cfg: StackConfig) -> int:
    producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap})
    payloads = hostile_payloads(f"UPAGAIN{int(time.time())}-")
    for key, value in payloads:
        producer.produce(INPUT_RAW, key=key, value=value)
    producer.flush(30)
    return len(payloads)


def status_lines() -> list[str]:
    done = subprocess.run(
        [".venv/bin/lead-scoring", "stack", "status"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    return [line for line in done.stdout.splitlines() if "writeback" in line or "sink" in line]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--timeout", type=float, default=1800.0, help="per scripts/up run")
    parser.add_argument("--out", default="benchmarks/results/up_again.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    run = provenance(sys.argv)
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    if _ui_answers():
        raise SystemExit(f"something already answers on {UI}: stop it first")
    os.environ.pop("LEAD_SCORING_REBUILD", None)
    runs = [run_up("first", args.timeout)]
    cfg = StackConfig.from_env()
    hostile_at = time.time()
    sent = send_hostile(cfg)
    log.info("%d hostile records sent to %s", sent, INPUT_RAW)
    time.sleep(10)  # the workers meet them before the next up
    for label in ("second", "third"):
        runs.append(run_up(label, args.timeout) | {"workers": status_lines()})
    audit = subprocess.run(
        [
            ".venv/bin/lead-scoring",
            "audit",
            "--since",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(hostile_at - 60)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = {
        **run,
        "hostile_sent": sent,
        "runs": runs,
        "audit_exit": audit.returncode,
        "audit_tail": audit.stdout.strip().splitlines()[-3:],
    }
    out = ROOT / args.out
    out.write_text(json.dumps(result, indent=2))
    log.info("results (%s): %s", out, json.dumps(runs))


if __name__ == "__main__":
    main()
