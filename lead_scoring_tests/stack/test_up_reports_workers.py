"""`stack up` reports a CRM worker that is not healthy (which one, why) and returns, and `scripts/up` goes on
to the UI whatever a part's state: a stuck or dead worker once kept the product from opening (issue 29:
`not healthy after 120 s (sink: last heartbeat 29 s ago)`, and no UI)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from lead_scoring.crm.heartbeat import SINK
from lead_scoring.retry import wait_until
from lead_scoring.services import local_stack
from lead_scoring.settings import project_root
from lead_scoring.stack.install import StackError
from lead_scoring_tests.fixtures.stack import test_stack_config


def test_up_returns_with_a_worker_that_cannot_work_named_and_why(tmp_path: Path) -> None:
    # A real sink worker, on a stack whose Kafka is not running: it runs but cannot consume.
    stack = local_stack(test_stack_config(tmp_path, start_timeout_s=90.0))
    try:
        statuses = {s.name: s for s in stack.up([SINK], optional_wait_s=3.0)}
        sink = statuses[SINK]
        assert sink.state not in ("healthy", "running") and sink.pid
        assert "waiting for Kafka" in sink.detail or "no heartbeat yet" in sink.detail, sink.detail

        # killed: the supervisor restarts it; `up` in the meantime reports it instead of failing
        os.kill(sink.pid, signal.SIGKILL)
        wait_until(
            lambda: True if (stack.files.record(SINK) or None) and stack.files.record(SINK).pid != sink.pid else None,
            timeout_s=30,
            interval_s=0.1,
            what="the supervisor to see the sink die",
        )
        again = {s.name: s for s in stack.up([SINK], optional_wait_s=1.0)}
        assert again[SINK].state not in ("healthy", "running")
    finally:
        stack.down()


def test_without_optional_wait_an_unhealthy_worker_still_fails_up(tmp_path: Path) -> None:
    """Tests and benchmarks keep the strict start: every service asked for is healthy, or `up` raises."""
    stack = local_stack(test_stack_config(tmp_path, start_timeout_s=12.0))
    try:
        with pytest.raises(StackError, match="not healthy after 12 s \\(sink: "):
            stack.up([SINK])
    finally:
        stack.down()


UI_CALL = "lead-scoring ui --host 127.0.0.1 --port 3000"


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _checkout_with_recorders(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A checkout holding only scripts/up (bootstrap a no-op): its root, its .venv/bin for the stubs of our
    commands, and the file they record their calls in."""
    root = tmp_path / "checkout"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(project_root() / "scripts" / "up", root / "scripts" / "up")
    (root / "dagster.yaml").write_text("")
    bin_dir = root / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    calls = tmp_path / "calls.log"
    _stub(root / "scripts" / "bootstrap", f'echo "bootstrap $*" >> {calls}\nexit 0\n')
    return root, bin_dir, calls


@pytest.mark.parametrize("stack_up_exit", [0, 1])
def test_scripts_up_opens_the_ui_whatever_stack_up_and_the_assets_say(tmp_path: Path, stack_up_exit: int) -> None:
    """The script's control flow, with our own commands replaced by recorders (their behaviour is tested above
    and in their own modules): `stack up` reporting a worker (exit 0) or failing (exit 1), the product's assets
    failing: each is reported, and the last step still starts the UI."""
    root, bin_dir, calls = _checkout_with_recorders(tmp_path)
    _stub(
        bin_dir / "lead-scoring",
        f'echo "lead-scoring $*" >> {calls}\n'
        f'if [ "$1 $2" = "stack up" ] && [ -z "${{3:-}}" ]; then\n'
        f'  echo "sink is starting: stuck at input_raw[0]@41234 for 3 min: boom"\n'
        f"  exit {stack_up_exit}\nfi\n"
        f'if [ "$1 $2" = "product status" ]; then exit 1; fi\n'  # not deployed yet: the assets are launched
        f"exit 0\n",
    )
    _stub(bin_dir / "dg", f'echo "dg $*" >> {calls}\nexit 1\n')  # every asset run fails
    done = subprocess.run(
        ["bash", str(root / "scripts" / "up")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert [line for line in lines if line != UI_CALL and not line.startswith("bootstrap")][0] == (
        "lead-scoring stack up"
    )
    assert lines.count(UI_CALL) == 1, lines
    assert "stuck at input_raw[0]@41234" in done.stdout
    assert "opening the UI anyway; not working: " in done.stderr
    assert ("stack up" in done.stderr.split("not working: ")[1]) == bool(stack_up_exit)


def test_a_second_scripts_up_on_a_deployed_product_materializes_nothing_unless_asked(tmp_path: Path) -> None:
    """Deployed (`lead-scoring product status` exits 0): no `dg launch`, the UI at once; LEAD_SCORING_REBUILD=1
    launches the assets anyway."""
    root, bin_dir, calls = _checkout_with_recorders(tmp_path)
    _stub(bin_dir / "lead-scoring", f'echo "lead-scoring $*" >> {calls}\nexit 0\n')
    _stub(bin_dir / "dg", f'echo "dg $*" >> {calls}\nexit 0\n')
    for rebuild, launches in (("0", 0), ("1", 2)):
        calls.write_text("")
        done = subprocess.run(
            ["bash", str(root / "scripts" / "up")],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "HOME": str(tmp_path), "LEAD_SCORING_REBUILD": rebuild},
        )
        assert done.returncode == 0, done.stderr
        lines = calls.read_text().splitlines()
        assert sum(line.startswith("dg launch") for line in lines) == launches, lines
        assert ("lead-scoring product status" in lines) == (rebuild == "0")
        assert lines.count(UI_CALL) == 1, lines


def test_the_ui_loads_while_the_stack_comes_up_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    """`dg dev` takes ~40 s to load the definitions on 2 cores: it starts before `stack up`, not after everything
    (a re-run opened the UI after 62-73 s that way). Ctrl-C (SIGINT to the script) at any step stops it too."""
    root, bin_dir, calls = _checkout_with_recorders(tmp_path)
    stopped = tmp_path / "ui-stopped"
    _stub(
        bin_dir / "lead-scoring",
        f'echo "lead-scoring $*" >> {calls}\n'
        # the UI: runs until SIGTERM, as `lead-scoring ui` does
        f'if [ "$1" = "ui" ]; then trap "echo stopped > {stopped}; exit 0" TERM; sleep 600 & wait; exit 0; fi\n'
        # `stack up` passes only if the UI was started before it, then keeps the script busy until Ctrl-C
        f'if [ "$1 $2" = "stack up" ] && [ -z "${{3:-}}" ]; then\n'
        f'  for _ in $(seq 100); do grep -q "^{UI_CALL}$" {calls} && break; sleep 0.1; done\n'
        f'  grep -q "^{UI_CALL}$" {calls} || {{ echo "the UI was not started before stack up" >&2; exit 3; }}\n'
        f"  echo up-and-waiting; exec sleep 600\nfi\n"
        f"exit 0\n",
    )
    _stub(bin_dir / "dg", f'echo "dg $*" >> {calls}\nexit 0\n')
    up = subprocess.Popen(
        ["bash", str(root / "scripts" / "up")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HOME": str(tmp_path)},
        start_new_session=True,
    )
    try:
        assert up.stdout is not None
        assert up.stdout.readline().strip() == "up-and-waiting", up.stderr.read() if up.poll() is not None else ""
        os.killpg(up.pid, signal.SIGINT)  # Ctrl-C: SIGINT to the terminal's foreground process group
        assert up.wait(timeout=30) == 130
        wait_until(lambda: stopped.exists() or None, timeout_s=10, interval_s=0.1, what="the UI to get SIGTERM")
        assert calls.read_text().splitlines()[0] == "bootstrap python"  # the UI needs only the environment
    finally:
        if up.poll() is None:
            os.killpg(up.pid, signal.SIGKILL)


def test_a_failed_install_stops_the_ui_it_started_and_starts_nothing(tmp_path: Path) -> None:
    root, bin_dir, calls = _checkout_with_recorders(tmp_path)
    stopped = tmp_path / "ui-stopped"
    _stub(
        root / "scripts" / "bootstrap",
        f'echo "bootstrap $*" >> {calls}\n[ "${{1:-}}" = python ] && exit 0\n'
        # fails once the UI runs (and has set its trap)
        f'for _ in $(seq 100); do grep -q "^{UI_CALL}$" {calls} && break; sleep 0.1; done; sleep 0.5; exit 7\n',
    )
    _stub(
        bin_dir / "lead-scoring",
        f'echo "lead-scoring $*" >> {calls}\n'
        f'if [ "$1" = "ui" ]; then trap "echo stopped > {stopped}; exit 0" TERM; sleep 600 & wait; exit 0; fi\n'
        f"exit 0\n",
    )
    done = subprocess.run(
        ["bash", str(root / "scripts" / "up")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 1
    assert "the install failed" in done.stderr
    assert stopped.exists()
    assert not [line for line in calls.read_text().splitlines() if "stack" in line or "product" in line]
