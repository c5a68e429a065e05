"""Signals of the stack's processes: `stack up`/`down` poke the supervisor with SIGUSR1 on every change and
SIGTERM at the end, and every service must stop on SIGTERM.

A handler that took a lock deadlocked the supervisor once during a `stack down` (the main thread held that lock
when the signal came), leaving its stopped services as zombies and `down` waiting out its whole budget. And a
service started by a process that ignores SIGTERM used to ignore it too (ignored signals survive exec)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from lead_scoring.services import local_stack as make_stack
from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.flink import JOBMANAGER
from lead_scoring.stack.process import launch
from lead_scoring.stack.supervisor import Supervisor
from lead_scoring_tests.fixtures.stack import test_stack_config


def test_a_storm_of_wake_ups_then_a_stop_ends_the_supervisor(tmp_path: Path) -> None:
    stack = make_stack(test_stack_config(tmp_path))
    daemon = stack.ensure_supervisor()
    sent = 0
    until = time.monotonic() + 2.5  # the supervisor leaves by itself after 5 s with nothing wanted
    while time.monotonic() < until:
        os.kill(daemon.pid, signal.SIGUSR1)
        sent += 1
    assert daemon.is_running() and daemon.status() != psutil.STATUS_ZOMBIE, "the supervisor died of the wake-ups"
    daemon.send_signal(signal.SIGTERM)
    try:
        daemon.wait(timeout=10)
    except psutil.TimeoutExpired:
        daemon.kill()
        raise AssertionError(
            f"the supervisor did not stop within 10 s of SIGTERM after {sent} SIGUSR1s "
            f"(deadlocked in its signal handler?); log: {stack.files.log_path}"
        ) from None
    assert "supervisor stopped" in stack.files.log_path.read_text()


def test_a_service_stops_on_sigterm_even_when_its_launcher_ignores_it(tmp_path: Path) -> None:
    # What Dagster's in-process execution leaves behind in a process started in the background from a shell:
    # SIGINT ignored by the shell, SIGTERM mapped to SIGINT's disposition.
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        popen = launch([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "sleeper.log")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    popen.send_signal(signal.SIGTERM)
    try:
        code = popen.wait(timeout=10)
    except subprocess.TimeoutExpired:
        popen.kill()
        popen.wait()
        raise AssertionError("the service inherited its launcher's ignored SIGTERM") from None
    assert code == -signal.SIGTERM


class _RecordingHooks:
    def __init__(self) -> None:
        self.before_stop_calls: list[list[str]] = []

    def on_healthy(self, name: str, restarted: bool) -> None:
        return None

    def before_stop(self, names: Sequence[str]) -> None:
        self.before_stop_calls.append(list(names))


def test_services_stopped_because_nothing_wants_them_get_the_before_stop_hook(tmp_path: Path) -> None:
    # `stack down` writes an empty wish, then sends SIGTERM: a tick in between stopped the services through
    # reconcile() without the hook, so the statements were not savepointed and a reboot scored input again.
    hooks = _RecordingHooks()
    supervisor = Supervisor(Catalog(test_stack_config(tmp_path), hooks=hooks))
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        supervisor.procs[JOBMANAGER] = sleeper
        supervisor.files.write_desired({})
        supervisor.reconcile()
        assert hooks.before_stop_calls == [[JOBMANAGER]]
        assert JOBMANAGER not in supervisor.procs and sleeper.poll() is not None
        supervisor.reconcile()  # nothing left to stop: no hook call
        assert hooks.before_stop_calls == [[JOBMANAGER]]
    finally:
        sleeper.kill()
