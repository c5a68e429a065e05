"""The jar cache: one folder per build, serialised installs, old folders pruned unless in use."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lead_scoring.stack import install as stack_install
from lead_scoring.stack.install import Layout, _install_lock, build_id, install, is_installed, prune_builds


def test_build_id_follows_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    real = build_id()
    assert real == build_id() and len(real) == 12
    base = stack_install._fingerprint()
    monkeypatch.setattr(stack_install, "_fingerprint", lambda: {**base, "model_provider_sha256": "changed"})
    assert build_id() != real
    assert Layout(Path("/c")).lib == Path("/c/lib") / build_id()


def _build(root: Path, name: str, age_s: float) -> Path:
    folder = root / "lib" / name
    (folder / "kafka").mkdir(parents=True)
    (folder / "kafka" / "kafka.jar").write_bytes(b"jar")
    stamp = time.time() - age_s
    os.utime(folder, (stamp, stamp))
    return folder


def test_prune_keeps_the_current_the_newest_and_those_in_use(tmp_path: Path) -> None:
    layout = Layout(tmp_path, build_id="current00000")
    current = _build(tmp_path, layout.build_id, 500)
    newest_old = _build(tmp_path, "aaaaaaaaaaaa", 10)
    in_use = _build(tmp_path, "bbbbbbbbbbbb", 300)
    unused = _build(tmp_path, "cccccccccccc", 200)
    partial = _build(tmp_path, "dddddddddddd.partial", 400)  # another install's work in progress
    # A process whose command line names a jar of `in_use`, as our JVMs' classpaths do.
    holder = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", str(in_use / "kafka" / "kafka.jar")]
    )
    try:
        deadline = time.monotonic() + 10  # until exec: a just-forked child still shows pytest's command line
        while str(in_use).encode() not in Path(f"/proc/{holder.pid}/cmdline").read_bytes():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        removed = prune_builds(layout, keep=1)
    finally:
        holder.kill()
        holder.wait()
    assert removed == [unused]
    assert current.is_dir() and newest_old.is_dir() and in_use.is_dir() and partial.is_dir()
    assert not unused.exists()


def test_installs_into_one_cache_are_serialised(tmp_path: Path) -> None:
    spans: list[tuple[str, float, float]] = []

    def hold(name: str) -> None:
        with _install_lock(tmp_path):
            start = time.monotonic()
            time.sleep(0.5)
            spans.append((name, start, time.monotonic()))

    threads = [threading.Thread(target=hold, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(spans) == 2
    (_, _, first_end), (_, second_start, _) = sorted(spans, key=lambda s: s[1])
    assert second_start >= first_end


@pytest.mark.stack
def test_running_stack_uses_its_build_folder_and_reinstall_is_a_no_op(local_stack) -> None:
    layout = Layout(local_stack.cfg.cache)
    assert is_installed(layout)
    recorded = (layout.manifest).read_text()
    folder = layout.lib.stat().st_ino
    assert install(local_stack.cfg).lib == layout.lib
    assert layout.lib.stat().st_ino == folder  # not rebuilt and renamed into place
    assert layout.manifest.read_text() == recorded
    # The running engines name this build's jars, so a later install for another checkout leaves them be.
    assert str(layout.lib) + os.sep in stack_install._paths_in_use(layout.builds)
