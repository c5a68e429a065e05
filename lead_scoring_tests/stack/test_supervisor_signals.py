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
from pathlib import Path

import psutil

from lead_scoring.services import local_stack as make_stack
from lead_scoring.stack.process import launch
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
