"""Two DuckDBWarehouse instances on one file in one process (a worker's, and the copy Dagster gives a run) take
turns instead of failing: DuckDB refuses a second in-process attach of an open file."""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import duckdb

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


HOLDER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
print("released", flush=True)
time.sleep(5)
"""


def test_another_process_holding_the_file_is_waited_for_by_polling(tmp_path: Path) -> None:
    """The sink and the writeback are two processes on one file: a connect that meets the other's lock keeps
    trying every few ms (not dagster-duckdb's doubling sleeps, which cost seconds per CRM row) and gets in."""
    path = str(tmp_path / "warehouse.duckdb")
    DuckDBWarehouse(path=path).execute("CREATE TABLE IF NOT EXISTS turns (who VARCHAR)")
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, path, "1.0"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        attempts: list[float] = []
        real_connect = duckdb.connect

        def counting_connect(*args, **kwargs):
            attempts.append(time.monotonic())
            return real_connect(*args, **kwargs)

        with mock.patch.object(duckdb, "connect", counting_connect):
            DuckDBWarehouse(path=path).execute("INSERT INTO turns VALUES ('sink')")
        assert holder.stdout.readline().strip() == "released"
        # it tried again and again while the other process held the file (dagster-duckdb: 4 tries in 1.5 s)
        assert len(attempts) > 10
        assert max(b - a for a, b in itertools.pairwise(attempts)) < 0.5
    finally:
        holder.kill()
        holder.wait(10)
    assert list(DuckDBWarehouse(path=path).query("SELECT who FROM turns")["who"]) == ["sink"]


def test_held_runs_a_batch_on_one_connection_and_other_threads_wait_for_it(tmp_path: Path) -> None:
    """A worker's batch (queries, inserts, the erasure checks) takes one turn at the file, not six."""
    path = str(tmp_path / "warehouse.duckdb")
    warehouse = DuckDBWarehouse(path=path)
    warehouse.execute("CREATE TABLE IF NOT EXISTS turns (who VARCHAR)")
    opened: list[float] = []
    real_connect = duckdb.connect

    def counting_connect(*args, **kwargs):
        opened.append(time.monotonic())
        return real_connect(*args, **kwargs)

    other_done: list[float] = []

    def other_thread() -> None:
        warehouse.execute("INSERT INTO turns VALUES ('echo thread')")
        other_done.append(time.monotonic())

    with mock.patch.object(duckdb, "connect", counting_connect):
        with warehouse.held():
            warehouse.execute("INSERT INTO turns VALUES ('batch 1')")
            thread = threading.Thread(target=other_thread)
            thread.start()
            warehouse.execute("INSERT INTO turns VALUES ('batch 2')")
            assert warehouse.query("SELECT COUNT(*) AS n FROM turns")["n"].iloc[0] == 2
            thread.join(0.3)
            assert thread.is_alive() and not other_done  # it waits for the held connection's turn to end
            held_until = time.monotonic()
        thread.join(10)
    assert len(opened) == 2  # the whole batch on one connection, then the other thread's own
    assert other_done and other_done[0] >= held_until
    assert sorted(warehouse.query("SELECT who FROM turns")["who"]) == ["batch 1", "batch 2", "echo thread"]
