"""What the SQL Gateway engine deployed, per deployment key: `<state>/streaming/<key>.json`.

A JobManager without HA forgets its jobs when it restarts, so the engine keeps, per statement, what it
submitted (script and properties), every job id it ran as and its last savepoint; `heal()` resubmits from
here. Rollout, heal and `stack down` meet in the same file, under a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

from lead_scoring.streaming.render import Dialect, Pipeline, RenderSettings, StatementRole, render_pipeline


@dataclass
class StatementRecord:
    role: str
    jobs: list[str] = field(default_factory=list)  # every job id this statement ran as, oldest first
    savepoint: Optional[str] = None  # where it was last stopped on purpose (hand-over, stack down)
    retired: bool = False  # stopped by a rollout that replaced it: not restored by heal()
    # what was submitted, so heal() and a rollback resubmit exactly that (whatever the code renders today)
    script: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)

    def submission(self, name: str) -> Optional[Submission]:
        return Submission(name, self.script, self.config) if self.script else None


@dataclass(frozen=True)
class Submission:
    """One statement as the SQL Gateway runs it: its session's script and properties (parallelism included)."""

    name: str
    script: list[str]
    config: dict[str, str]

    @classmethod
    def of(cls, pipeline: Pipeline, role: StatementRole) -> Submission:
        st = pipeline.statements[role]
        return cls(
            st.name,
            pipeline.session_script(role),
            {**pipeline.session_config, "pipeline.name": st.name, "parallelism.default": str(st.parallelism)},
        )


@dataclass
class DeploymentRecord:
    settings: dict[str, Any]
    statements: dict[str, StatementRecord] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Optional[DeploymentRecord]:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return cls(
            settings=data["settings"],
            statements={n: StatementRecord(**s) for n, s in data.get("statements", {}).items()},
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"settings": self.settings, "statements": {n: asdict(s) for n, s in self.statements.items()}}, indent=1
            )
        )
        tmp.replace(path)

    def render_settings(self) -> RenderSettings:
        props = tuple(tuple(kv) for kv in self.settings.get("kafka_properties", ()))
        return RenderSettings(
            **{**self.settings, "dialect": Dialect(self.settings["dialect"]), "kafka_properties": props}
        )

    def entry_for(self, pipeline: Pipeline, role: StatementRole) -> StatementRecord:
        """The statement of `role`, created if new, holding what `pipeline` submits for it."""
        submission = Submission.of(pipeline, role)
        entry = self.statements.setdefault(submission.name, StatementRecord(role=role.value))
        entry.script, entry.config = submission.script, submission.config
        return entry


def _settings_dict(settings: RenderSettings) -> dict[str, Any]:
    return {**asdict(settings), "dialect": settings.dialect.value}


class DeploymentRecords:
    """The records of every deployment key, one JSON file each in `folder`."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def read(self, key: str) -> Optional[DeploymentRecord]:
        return DeploymentRecord.read(self.path(key))

    @contextmanager
    def updating(self, key: str, settings: Optional[RenderSettings] = None) -> Iterator[DeploymentRecord]:
        """Read-modify-write of one key's record under a file lock (rollout, heal and stack down meet here)."""
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = DeploymentRecord.read(path) or DeploymentRecord(
                settings=_settings_dict(settings) if settings else {}
            )
            if settings is not None:
                record.settings = _settings_dict(settings)
            yield record
            record.write(path)


def submission_of(entry: StatementRecord, name: str, record: DeploymentRecord) -> Submission:
    """What `name` ran as; a record written before submissions were kept: today's rendering of its role."""
    submission = entry.submission(name)
    if submission is None:
        pipeline = render_pipeline(record.render_settings())
        current = Submission.of(pipeline, StatementRole(entry.role))
        submission = replace(current, name=name, config={**current.config, "pipeline.name": name})
        entry.script, entry.config = submission.script, submission.config
    return submission


def newest_snapshot(entry: StatementRecord, checkpoint_root: Optional[Path]) -> Optional[str]:
    """The newest of the statement's savepoint and its jobs' retained checkpoints (by completion time)."""
    candidates: list[tuple[float, str]] = []
    if entry.savepoint:
        path = Path(urlparse(entry.savepoint).path)
        meta = path / "_metadata"
        if meta.is_file():
            candidates.append((meta.stat().st_mtime, entry.savepoint))
    if checkpoint_root is not None:
        for job in entry.jobs:
            for chk in (checkpoint_root / job).glob("chk-*"):
                meta = chk / "_metadata"
                with contextlib.suppress(OSError):
                    if meta.is_file():
                        candidates.append((meta.stat().st_mtime, chk.as_uri()))
    return max(candidates)[1] if candidates else None
