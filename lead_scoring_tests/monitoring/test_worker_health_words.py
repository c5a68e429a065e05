"""A worker's health in words, from hand-written heartbeat files (the contract `workers.MicroBatchWorker` writes):
the same words in `stack status` (the stack service's health check) and in the `workers_flowing` Dagster check."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import dagster as dg
import pytest

from lead_scoring.crm.health import ERROR_CHARS, format_age, stuck_text, worker_report
from lead_scoring.crm.heartbeat import SINK, WRITEBACK, heartbeat_path
from lead_scoring.crm.service import WorkerService
from lead_scoring.monitoring.hop_checks import workers_evaluation, workers_flowing
from lead_scoring.services import catalog
from lead_scoring.serving.service import MODEL_SERVER
from lead_scoring.stack.catalog import INFRASTRUCTURE, blocks_start
from lead_scoring_tests.fixtures.stack import test_stack_config

ERROR = "ValueError: could not decode the record: Expecting value: line 1 column 1 (char 0)"


def write_beat(root: Path, name: str, **fields: object) -> None:
    now = time.time()
    beat = {
        "pid": os.getpid(),
        "ts": now,
        "assigned_partitions": 3,
        "consumed": 1200,
        "group": f"lead-scoring-{name}",
        "state": "consuming",
        "since": now - 600,
        "detail": "",
        "outages": 0,
        "reconnects": 0,
        "stuck": None,
        "quarantined": 0,
        **fields,
    }
    path = heartbeat_path(name, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(beat))


def test_a_stuck_worker_says_where_since_when_and_why(tmp_path: Path) -> None:
    write_beat(
        tmp_path,
        SINK,
        stuck={"topic": "input_raw", "partition": 0, "offset": 41234, "since": time.time() - 185, "error": ERROR},
    )
    report = worker_report(SINK, tmp_path)
    assert report.problem == f"stuck at input_raw[0]@41234 for 3 min: {ERROR}"
    # `stack status` shows the service's health-check text as the row's detail
    cfg = test_stack_config(tmp_path)  # the stack's workers write their heartbeats under its state root
    assert WorkerService(cfg, SINK).health()() == report.problem


def test_a_stale_heartbeat_says_how_old_it_is_and_what_the_worker_did_last(tmp_path: Path) -> None:
    now = time.time()
    write_beat(
        tmp_path,
        SINK,
        ts=now - 29,
        state="retrying a write",
        detail="batch of 2000, attempt 7: IOException: database is locked",
    )
    problem = worker_report(SINK, tmp_path, now=now).problem
    assert problem == (
        "last heartbeat 29 s ago (last state: retrying a write: batch of 2000, attempt 7: "
        "IOException: database is locked)"
    )
    write_beat(
        tmp_path,
        WRITEBACK,
        ts=now - 40,
        stuck={"topic": "lead_scores", "partition": 2, "offset": 7, "since": now - 50, "error": "boom"},
    )
    assert (
        worker_report(WRITEBACK, tmp_path, now=now).problem
        == "stuck at lead_scores[2]@7 for 50 s: boom (last heartbeat 40 s ago)"
    )


def test_a_healthy_worker_s_status_detail_counts_what_it_quarantined(tmp_path: Path) -> None:
    write_beat(tmp_path, SINK, quarantined=3)
    service = WorkerService(test_stack_config(tmp_path), SINK)
    assert service.health()() is None
    assert service.detail().endswith("; quarantined 3")  # after the lag (unknown here: no broker)


def test_a_huge_error_is_cut_and_durations_read_as_an_operator_would() -> None:
    text = stuck_text({"topic": "input_raw", "partition": 1, "offset": 9, "since": 100.0, "error": "x" * 5000}, 160.0)
    assert text == "stuck at input_raw[1]@9 for 60 s: " + "x" * ERROR_CHARS + "..."
    assert [format_age(s) for s in (0, 42, 119, 185, 7199, 7500)] == [
        "0 s",
        "42 s",
        "119 s",
        "3 min",
        "119 min",
        "2 h 5 min",
    ]


@pytest.fixture
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path))
    return tmp_path


def test_workers_flowing_is_green_with_counts_and_red_with_the_same_words(state_home: Path) -> None:
    write_beat(state_home, SINK, consumed=5000, quarantined=3)
    write_beat(state_home, WRITEBACK, consumed=4000)
    green = workers_evaluation()
    assert green.passed
    assert green.description == "writeback: consumed 4,000, quarantined 0; sink: consumed 5,000, quarantined 3"
    assert green.metadata["quarantined_total"] == dg.MetadataValue.int(3)

    write_beat(
        state_home,
        SINK,
        consumed=5000,
        quarantined=3,
        stuck={"topic": "input_raw", "partition": 0, "offset": 41234, "since": time.time() - 185, "error": ERROR},
    )
    red = workers_evaluation()
    assert not red.passed and red.severity == dg.AssetCheckSeverity.ERROR
    assert red.description == f"sink: stuck at input_raw[0]@41234 for 3 min: {ERROR}"


def test_workers_flowing_is_red_when_a_worker_never_reported(state_home: Path) -> None:
    write_beat(state_home, WRITEBACK)
    red = workers_evaluation()
    assert not red.passed
    assert red.description.startswith("sink: no heartbeat yet at ")


def test_the_asset_check_reports_the_same_verdict(state_home: Path) -> None:
    # states that stay red however long the check takes to start (an ephemeral Dagster instance: seconds)
    write_beat(
        state_home,
        SINK,
        ts=time.time() - 60,
        stuck={"topic": "input_raw", "partition": 0, "offset": 41234, "since": time.time() - 185, "error": ERROR},
    )
    result = workers_flowing()
    assert not result.passed and result.severity == dg.AssetCheckSeverity.ERROR
    assert result.description.startswith("writeback: no heartbeat yet at ")
    assert f"; sink: stuck at input_raw[0]@41234 for 3 min: {ERROR} (last heartbeat " in result.description


def test_only_the_workers_may_be_unhealthy_when_stack_up_returns(tmp_path: Path) -> None:
    cfg = test_stack_config(tmp_path / "stack")
    assert not blocks_start(WorkerService(cfg, SINK))
    blocking = [n for n, f in catalog(cfg).factories.items() if blocks_start(f)]
    assert SINK not in blocking and WRITEBACK not in blocking
    assert {*INFRASTRUCTURE, MODEL_SERVER} <= set(blocking)
