"""Where the stack's supervisor daemon and its clients meet: `<state>/supervisor/{pid,config,desired}.json`, the
lock on desired.json, `<state>/run/<service>.json` (one `ProcessRecord` per service) and `<state>/logs/`.

Kept apart from `supervisor.py` (the daemon) because both sides read it: the daemon, and `Stack`,
`supervisor_client`, `service_status` and `startup`, none of which runs the daemon's loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from lead_scoring.settings import owner_only_dir
from lead_scoring.stack.atomic import write_atomically
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.process import ProcessRecord


class SupervisorFiles:
    """Where the supervisor and its clients meet (one folder per stack state dir)."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg

    @property
    def dir(self) -> Path:
        return self.cfg.state / "supervisor"

    @property
    def run_dir(self) -> Path:
        return self.cfg.state / "run"

    @property
    def log_dir(self) -> Path:
        return self.cfg.state / "logs"

    @property
    def pid_file(self) -> Path:
        return self.dir / "pid.json"

    @property
    def config_file(self) -> Path:
        return self.dir / "config.json"

    @property
    def desired_file(self) -> Path:
        return self.dir / "desired.json"

    @property
    def log_path(self) -> Path:
        return self.log_dir / "supervisor.log"

    def record_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    def service_log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def record(self, name: str) -> ProcessRecord | None:
        return ProcessRecord.read(self.record_path(name))

    def records(self) -> dict[str, ProcessRecord]:
        if not self.run_dir.is_dir():
            return {}
        found = (ProcessRecord.read(p) for p in sorted(self.run_dir.glob("*.json")))
        return {r.name: r for r in found if r is not None}

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """One writer of desired.json at a time (two `stack up` calls, or up and a deployment)."""
        owner_only_dir(self.dir)
        with open(self.dir / "lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def desired(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.desired_file.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data.get("services", {}) if isinstance(data, dict) else {}

    def write_desired(self, services: dict[str, dict[str, Any]]) -> None:
        write_atomically(self.desired_file, json.dumps({"services": services}, indent=1))

    def daemon(self) -> psutil.Process | None:
        """The running supervisor of this state dir, if any."""
        rec = ProcessRecord.read(self.pid_file)
        return rec.process() if rec else None
