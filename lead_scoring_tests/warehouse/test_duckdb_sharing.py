"""Two DuckDBWarehouse instances on one file in one process (a worker's, and the copy Dagster gives a run) take
turns instead of failing: DuckDB refuses a second in-process attach of an open file."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from lead_scoring.warehouse.resources import DuckDBWarehouse


def test_two_instances_on_one_file_take_turns(tmp_path: Path) -> None:
    path = str(tmp_path / "warehouse.duckdb")
    worker, run_copy = DuckDBWarehouse(path=path), DuckDBWarehouse(path=path)
    worker.execute("CREATE TABLE IF NOT EXISTS turns (who VARCHAR)")
    holding, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def hold() -> None:
        try:
            with worker.connect() as con:
                con.execute("INSERT INTO turns VALUES ('worker')")
                holding.set()
                release.wait(10)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)
            holding.set()

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    threading.Timer(0.5, release.set).start()
    started = time.monotonic()
    run_copy.execute("INSERT INTO turns VALUES ('run')")  # before: "Unique file handle conflict"
    waited = time.monotonic() - started
    thread.join(10)
    assert not errors, errors
    assert waited >= 0.3  # it waited for the worker's connection to close, and then wrote
    assert sorted(run_copy.query("SELECT who FROM turns")["who"]) == ["run", "worker"]
