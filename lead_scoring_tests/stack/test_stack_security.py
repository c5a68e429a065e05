"""The local stack is private by default (issue 33): owner-only state, loopback unless allowed on purpose,
no jar submission through Flink's REST API, and downloads that must match their pinned hashes."""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import time
import zipfile
from pathlib import Path

import pytest

from lead_scoring.serving.service import ModelServerService
from lead_scoring.settings import ConfigurationError
from lead_scoring.stack import install as stack_install
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink_config import RETAINED_CHECKPOINT_MAX_AGE_S, FlinkConfig
from lead_scoring.stack.install import Layout, StackError, safe_member_path, verify_wheel
from lead_scoring.stack.process import launch
from lead_scoring.stack.supervisor_files import SupervisorFiles
from lead_scoring.streaming.topics import ERASURE_RETENTION_MS


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "kafka.example.com", "::"])
def test_a_non_loopback_stack_host_is_refused_unless_allowed(host: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LEAD_SCORING_ALLOW_NON_LOOPBACK", raising=False)
    monkeypatch.setenv("LEAD_SCORING_STACK_HOST", host)
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_STACK_HOST.*LEAD_SCORING_ALLOW_NON_LOOPBACK=1"):
        StackConfig.from_env(state_root=tmp_path)
    monkeypatch.setenv("LEAD_SCORING_ALLOW_NON_LOOPBACK", "1")
    assert StackConfig.from_env(state_root=tmp_path).host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_need_nothing(host: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("LEAD_SCORING_ALLOW_NON_LOOPBACK", raising=False)
    assert StackConfig.from_env(host=host, state_root=tmp_path).host == host


def test_flink_rest_jar_submission_is_off(tmp_path: Path) -> None:
    cfg = StackConfig.from_env(state_root=tmp_path)
    conf = FlinkConfig(cfg).write() / "config.yaml"
    assert "\nweb.submit.enable: False\n" in conf.read_text()


def test_state_folders_are_owner_only_and_services_write_owner_only_files(tmp_path: Path) -> None:
    home = tmp_path / "fresh" / "home"
    cfg = StackConfig.from_env(state_root=home)
    files = SupervisorFiles(cfg)
    with files.locked():
        pass
    assert mode(home) == 0o700 and mode(cfg.state) == 0o700 and mode(files.dir) == 0o700
    # the model server service gets its admin token from an owner-only file under the state folder
    token_file = home / "secrets" / "model-admin-token"
    spec_env = ModelServerService(cfg.replace(model_artifact=str(tmp_path / "models" / "m1"))).spec({}).env
    assert spec_env["LEAD_SCORING_MODEL_ADMIN_TOKEN"] == token_file.read_text() and mode(token_file) == 0o600
    # a service (here: a Python child) creating files and folders gets 0600 / 0700, as Kafka's segments do
    script = "import os; open('segment.log', 'w').close(); os.mkdir('partition-0')"
    popen = launch([sys.executable, "-c", script], cfg.state / "logs" / "child.log", cwd=cfg.state)
    assert popen.wait(30) == 0
    assert mode(cfg.state / "segment.log") == 0o600 and mode(cfg.state / "partition-0") == 0o700


def test_a_wheel_with_another_hash_is_refused_and_deleted(tmp_path: Path, monkeypatch) -> None:
    wheel = tmp_path / "apache_flink_libraries-9.9.9-py2.py3-none-any.whl"
    wheel.write_bytes(b"not the wheel PyPI publishes")
    with pytest.raises(StackError, match="no pinned sha256"):
        verify_wheel(wheel, "9.9.9")
    monkeypatch.setitem(stack_install.FLINK_WHEEL_SHA256, "9.9.9", hashlib.sha256(b"the real one").hexdigest())
    with pytest.raises(StackError, match="not the pinned .*stack install"):
        verify_wheel(wheel, "9.9.9")
    assert not wheel.exists()
    wheel.write_bytes(b"the real one")
    assert verify_wheel(wheel, "9.9.9") == wheel
    assert stack_install.FLINK_WHEEL_SHA256[stack_install.FLINK_VERSION]  # the version we run is pinned


@pytest.mark.parametrize(
    "name",
    [
        "pyflink/lib/../../../evil.jar",
        "pyflink/lib/sub/../../../../evil.jar",
        "pyflink/bin/..\\..\\evil.sh",
        "pyflink/lib/c:evil.jar",
    ],
)
def test_unpacking_refuses_members_that_escape_the_flink_home(name: str, tmp_path: Path) -> None:
    layout = Layout(tmp_path / "cache", build_id="b")
    wheel = tmp_path / "evil.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(name, b"#!/bin/sh\necho owned\n")
    with pytest.raises(StackError, match="unsafe member path|outside"):
        stack_install._unpack_flink(layout, wheel)
    assert not list(tmp_path.rglob("evil*.jar")) and not list(tmp_path.rglob("evil.sh"))
    with pytest.raises(StackError):
        safe_member_path(tmp_path, name.split("/")[1:], wheel)


def test_maven_checks_checksums(monkeypatch, tmp_path: Path) -> None:
    seen: list[list[str]] = []
    monkeypatch.setattr(stack_install.shutil, "which", lambda name: "/usr/bin/mvn")
    monkeypatch.setattr(stack_install, "_run", lambda cmd, what, fix: seen.append(cmd))
    stack_install._maven(Layout(tmp_path, build_id="b"), tmp_path / "lib")
    assert "--strict-checksums" in seen[0]


def test_retained_checkpoints_of_jobs_stopped_past_the_erasure_bound_are_pruned_at_up(tmp_path: Path) -> None:
    flink = FlinkConfig(StackConfig.from_env(state_root=tmp_path))
    old, live = flink.checkpoint_dir / "a", flink.checkpoint_dir / "b"
    for job in (old, live):
        (job / "chk-7").mkdir(parents=True)
        (job / "chk-7" / "_metadata").write_bytes(b"state with lead Ids")
    stale = time.time() - RETAINED_CHECKPOINT_MAX_AGE_S - 3600
    for path in (old, old / "chk-7", old / "chk-7" / "_metadata"):
        os.utime(path, (stale, stale))
    flink.write()
    assert not old.exists() and (live / "chk-7" / "_metadata").exists()
    assert RETAINED_CHECKPOINT_MAX_AGE_S * 1000 == ERASURE_RETENTION_MS  # the same promise as Kafka's
