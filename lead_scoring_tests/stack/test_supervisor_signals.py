"""The supervisor's signal handling: `stack up`/`down` poke it with SIGUSR1 on every change and SIGTERM at the end.

A handler that took a lock deadlocked it once during a `stack down` (the main thread held that lock when the
signal came), leaving its stopped services as zombies and `down` waiting out its whole budget."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import psutil

from lead_scoring.services import local_stack as make_stack
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
        raise AssertionError(f"the supervisor did not stop within 10 s of SIGTERM after {sent} SIGUSR1s "
                             f"(deadlocked in its signal handler?); log: {stack.files.log_path}") from None
    assert "supervisor stopped" in stack.files.log_path.read_text()
