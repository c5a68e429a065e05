"""Bad situations: a clear message naming cause and fix, and nothing left half-running.

These do not use the session stack: each builds its own Stack on fresh ports and a temporary state dir.
"""

from __future__ import annotations

import socket
from pathlib import Path

import psutil
import pytest

from lead_scoring.services import local_stack as make_stack
from lead_scoring.stack import kafka as stack_kafka
from lead_scoring.stack.flink import JOBMANAGER, SQL_GATEWAY
from lead_scoring.stack.install import StackError
from lead_scoring.stack.stack import Stack
from lead_scoring_tests.fixtures.stack import test_stack_config


def _no_processes_left(stack: Stack) -> None:
    assert not stack.run_dir.exists() or not list(stack.run_dir.glob("*.json"))
    assert all(s.state == "stopped" for s in stack.status()), stack.status()


def test_java_missing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(StackError, match=r"Java not found on PATH.*openjdk-17"):
        make_stack(test_stack_config(tmp_path)).up()


def test_java_too_old_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    java = fake_bin / "java"
    java.write_text("#!/bin/sh\necho '    java.specification.version = 11' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:/usr/bin:/bin")
    with pytest.raises(StackError, match=r"Java 11 found, the stack needs 17\+"):
        make_stack(test_stack_config(tmp_path)).up()


def test_missing_jars_point_at_install(tmp_path: Path) -> None:
    cfg = test_stack_config(tmp_path / "state").replace(cache_root=tmp_path / "empty-cache")
    with pytest.raises(StackError, match=r"stack jars missing .*run `lead-scoring stack install` first"):
        make_stack(cfg).up()


@pytest.mark.stack
def test_port_in_use_is_named_and_nothing_starts(tmp_path: Path) -> None:
    cfg = test_stack_config(tmp_path)
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind(("127.0.0.1", cfg.sql_gateway_port))
    squatter.listen()
    try:
        stack = make_stack(cfg)
        with pytest.raises(StackError) as err:
            stack.up([JOBMANAGER, SQL_GATEWAY])
        message = str(err.value)
        assert f"port 127.0.0.1:{cfg.sql_gateway_port} (sql-gateway) is already in use" in message
        assert "LEAD_SCORING_SQL_GATEWAY_PORT" in message
        _no_processes_left(stack)
    finally:
        squatter.close()


@pytest.mark.stack
def test_service_dying_during_start_stops_the_others(tmp_path: Path) -> None:
    # An impossible heap size makes the gateway JVM exit at once, after the JobManager was started.
    cfg = test_stack_config(tmp_path).replace(sql_gateway_heap="5q")
    stack = make_stack(cfg)
    with pytest.raises(StackError) as err:
        stack.up([JOBMANAGER, SQL_GATEWAY])
    message = str(err.value)
    assert "sql-gateway exited during start" in message
    assert "Invalid" in message and "heap size" in message  # the JVM's own words, from the log tail
    assert "lead-scoring stack logs sql-gateway" in message
    _no_processes_left(stack)
    # Nothing of ours still runs with this state dir on its command line.
    for proc in psutil.process_iter(["cmdline"]):
        assert str(stack.flink_conf_dir) not in " ".join(proc.info["cmdline"] or []), proc


@pytest.mark.stack
def test_test_stacks_die_with_the_process_that_started_them(tmp_path: Path) -> None:
    """A test session killed with SIGKILL (no teardown, no atexit) leaves no JVM behind."""
    import json
    import subprocess
    import sys
    import time

    cfg = test_stack_config(tmp_path)
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from lead_scoring.services import local_stack\n"
        "from lead_scoring.stack.config import StackConfig\n"
        f"cfg = StackConfig.from_env(kafka_port={cfg.kafka_port}, kafka_controller_port={cfg.kafka_controller_port},"
        f" die_with_parent=True, state_root=Path({str(tmp_path)!r}))\n"
        "local_stack(cfg).up(['kafka'])\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    record = json.loads((tmp_path / "stack" / "run" / "kafka.json").read_text())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and psutil.pid_exists(record["pid"]):
        try:
            if psutil.Process(record["pid"]).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.5)
    assert not psutil.pid_exists(record["pid"]) or psutil.Process(record["pid"]).status() == psutil.STATUS_ZOMBIE


def test_adopted_generator_is_listed_and_stopped_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/up's demo generator: `stack adopt` records it, `status` lists it, `down` stops it."""
    import subprocess
    import sys

    from typer.testing import CliRunner

    from lead_scoring.cli import app

    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path))
    generator = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        runner = CliRunner()
        adopted = runner.invoke(
            app, ["stack", "adopt", "leads-generate", str(generator.pid), "--what", "kafka input_raw"]
        )
        assert adopted.exit_code == 0, adopted.output
        refused = runner.invoke(app, ["stack", "adopt", "kafka", str(generator.pid)])
        assert refused.exit_code == 2 and "is a stack service" in refused.output

        stack = make_stack(test_stack_config(tmp_path))
        listed = {s.name: s for s in stack.status()}
        assert listed["leads-generate"].state == "running" and listed["leads-generate"].pid == generator.pid
        assert listed["leads-generate"].url == "kafka input_raw"

        down = runner.invoke(app, ["stack", "down"])
        assert down.exit_code == 0, down.output
        assert "stopped: leads-generate" in down.output
        generator.wait(timeout=10)  # gone (down's psutil wait already reaped it, so no exit status here)
        assert not psutil.pid_exists(generator.pid)
        assert "leads-generate" not in {s.name for s in stack.status()}
    finally:
        generator.kill()
        generator.wait()


def test_kafka_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """kafka-storage reads `-t -...` as a missing argument; 1 in 64 random ids used to start with "-"."""
    import base64
    import uuid

    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # base64url "-AAA...": the case that failed
    fresh = iter([dash_first, uuid.UUID(int=12345)])
    monkeypatch.setattr(stack_kafka.uuid, "uuid4", lambda: next(fresh))
    assert base64.urlsafe_b64encode(dash_first.bytes).decode().startswith("-")
    cluster_id = stack_kafka.new_cluster_id()
    assert not cluster_id.startswith("-") and len(cluster_id) == 22
    assert base64.urlsafe_b64decode(cluster_id + "==") == uuid.UUID(int=12345).bytes
