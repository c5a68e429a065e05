"""Starting, finding and stopping processes: the primitives the stack's supervisor is built on.

Every process the project starts (services of the stack, the supervisor itself, test helpers) goes
through `launch`; every stop through `terminate`, which never raises on a process that is already
gone or defunct. A process is identified by pid AND create time, so a recycled pid is never mistaken
for ours.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from lead_scoring.stack.atomic import write_atomically

log = logging.getLogger(__name__)


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when its parent dies (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


# Reset in every launched service: an ignored signal survives exec, and a caller may have SIGTERM ignored without
# knowing it. Dagster's in-process execution maps SIGTERM to SIGINT's disposition, which is "ignore" in anything
# started in the background from a shell (`cmd &`): services launched afterwards ignored `stack down`'s SIGTERM.
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def _reset_stop_signals() -> None:
    """In a child, between fork and exec: the stop signals at their defaults, whatever the parent ignored."""
    for sig in _STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def _child_setup(die_with_parent: bool) -> Callable[[], None]:
    def setup() -> None:
        # Owner-only files for every service (Kafka segments, checkpoints, DuckDB, logs): 0600 / 0700.
        os.umask(0o077)
        _reset_stop_signals()
        if die_with_parent and sys.platform == "linux":
            _die_with_parent()

    return setup


def launch(
    argv: list[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
    banner: str = "",
) -> subprocess.Popen:
    """Start `argv` in its own session (it outlives the caller, killable as a group), output to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as out:
        if banner:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {banner}\n".encode())
            out.flush()
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_child_setup(die_with_parent),
        )


def find(pid: int | None, create_time: float | None) -> psutil.Process | None:
    """The live process with this pid and create time, or None (gone, a zombie, or a recycled pid)."""
    if not pid:
        return None
    try:
        proc = psutil.Process(int(pid))
        if create_time is not None and abs(proc.create_time() - float(create_time)) > 1.0:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.Error, ValueError):
        return None


def terminate(proc: psutil.Process | subprocess.Popen | None, timeout_s: float, name: str = "") -> str | None:
    """SIGTERM, then SIGKILL after `timeout_s`; reaps our own children. Returns how it ended, never raises."""
    if proc is None:
        return None
    pid = proc.pid
    try:
        target = proc if isinstance(proc, psutil.Process) else psutil.Process(pid)
        target.send_signal(signal.SIGTERM)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return _reap(proc)
    except psutil.Error as exc:
        log.warning("could not signal %s (pid %d): %s", name or "process", pid, exc)
        return None
    if _wait(proc, timeout_s):
        return _reap(proc) or "terminated"
    log.warning("%s (pid %d) did not stop within %.0f s; killing it", name or "process", pid, timeout_s)
    with contextlib.suppress(psutil.Error, ProcessLookupError):
        target.kill()
    _wait(proc, 10.0)
    return _reap(proc) or "killed"


def _wait(proc: psutil.Process | subprocess.Popen, timeout_s: float) -> bool:
    try:
        if isinstance(proc, subprocess.Popen):
            proc.wait(timeout=timeout_s)
        else:
            proc.wait(timeout=timeout_s)
        return True
    except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
        # A defunct (zombie) process of another parent never 'exits' for us: it is gone in every sense we need.
        with contextlib.suppress(psutil.Error):
            if psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE:
                return True
        return False
    except psutil.NoSuchProcess:
        return True


def _reap(proc: psutil.Process | subprocess.Popen) -> str | None:
    if isinstance(proc, subprocess.Popen):
        code = proc.poll()
        return describe_exit(code) if code is not None else None
    return None


def describe_exit(code: int | None) -> str:
    """'exit 1', 'SIGKILL' ... for a Popen return code."""
    if code is None:
        return "running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return signal.Signals(-code).name
        return f"signal {-code}"
    return f"exit {code}"


def rss_bytes(proc: psutil.Process | None) -> int | None:
    if proc is None:
        return None
    with contextlib.suppress(psutil.Error):
        return proc.memory_info().rss
    return None


def log_tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return "(no log)"
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64 * 1024))
        return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])


@dataclass
class ProcessRecord:
    """What the supervisor knows of one service, kept in `<state>/run/<name>.json`."""

    name: str
    url: str = ""
    pid: int | None = None
    create_time: float | None = None
    argv: list[str] = field(default_factory=list)
    # starting | running | restarting (waiting out a backoff) | failed (died before it was ever healthy) | stopped
    state: str = "stopped"
    restarts: int = 0
    last_exit: str | None = None
    started_at: float | None = None
    healthy_at: float | None = None  # first time it answered its health check since this start
    retry_at: float | None = None  # restarting: when the next attempt is due
    adopted: bool = False  # started outside the supervisor (stack adopt): listed and stopped, never restarted
    detail: str = ""

    def process(self) -> psutil.Process | None:
        return find(self.pid, self.create_time)

    @classmethod
    def read(cls, path: Path) -> ProcessRecord | None:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known.setdefault("name", path.stem)
        return cls(**known)

    def write(self, path: Path) -> None:
        write_atomically(path, json.dumps(asdict(self)))


def record_of(proc: psutil.Process, name: str, url: str, **extra: Any) -> ProcessRecord:
    return ProcessRecord(
        name=name,
        url=url,
        pid=proc.pid,
        create_time=proc.create_time(),
        argv=proc.cmdline(),
        started_at=time.time(),
        **extra,
    )


def _foreground_child(niceness: int) -> Callable[[], None]:
    def prepare() -> None:
        # A child of a script started with `&` inherits SIGINT ignored; the UI must see Ctrl-C again.
        _reset_stop_signals()
        if niceness:
            os.nice(niceness)

    return prepare


def run_interruptible(argv: list[str], *, niceness: int = 0, stop_timeout_s: float = 8.0) -> int:
    """Run `argv` in its own process group in the foreground; on SIGINT/SIGTERM pass SIGINT on and, if it has
    not finished within `stop_timeout_s`, kill the whole group (it and every process it started).

    For programs whose own shutdown waits for work in flight (Dagster's dev server waits for sensor ticks):
    the user's Ctrl-C is answered within the timeout, whatever they are doing.
    """
    popen = subprocess.Popen(argv, start_new_session=True, preexec_fn=_foreground_child(niceness))
    stopping = {"at": 0.0}

    def forward(signum: int, _frame: Any) -> None:
        if not stopping["at"]:
            stopping["at"] = time.monotonic()
            log.info("stopping %s (%s)", argv[0], signal.Signals(signum).name)
            with contextlib.suppress(ProcessLookupError):
                popen.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return popen.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                if stopping["at"] and time.monotonic() - stopping["at"] > stop_timeout_s:
                    log.warning(
                        "%s did not stop within %.0f s of the signal; killing its processes", argv[0], stop_timeout_s
                    )
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(popen.pid, signal.SIGKILL)
                    return popen.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
