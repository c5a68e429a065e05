"""The stack's supervisor: one small daemon that owns the services' processes and brings dead ones back.

`lead-scoring stack up` starts it (detached, or tied to its parent in tests) and tells it which services
are wanted; it starts them, and when one dies (kill -9, OOM, a crash) it restarts it after a backoff
(1 s, 2 s, 4 s ... up to `restart_backoff_max_s`; a minute of health resets it), counting restarts in the
service's record so `stack status` and the Dagster UI show them. A service that dies before it was ever
healthy on its first start is a configuration problem, not a crash: it is marked `failed` and not retried
(`stack up` reports it with its log tail). `stack down` stops it, which stops the services in reverse
order (after the application's `before_stop` hook, e.g. savepoints of the Flink statements).

Files under `<state>/stack/` (`supervisor_files.py`): `supervisor/{pid,config,desired}.json` (the daemon,
the config it runs with, the wanted services and their arguments) and `run/<service>.json` (one `ProcessRecord`
per wanted service; removed when it stops). Control is by file + signal: the client rewrites `desired.json`
and sends SIGUSR1; SIGTERM stops everything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import subprocess
import threading
import time
from typing import Any

import psutil

from lead_scoring.retry import backoff_delay
from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.process import ProcessRecord, describe_exit, launch, terminate
from lead_scoring.stack.supervisor_files import SupervisorFiles

log = logging.getLogger(__name__)

HEALTH_POLL_S = 1.0  # how often a started service is probed until it first answers healthy
HEALTHY_RESETS_BACKOFF_S = 60.0
TICK_S = 1.0
IDLE_EXIT_S = 5.0  # `stack down` of the last service: the supervisor goes too (no race with a new `up`)


class SignalWakeup:
    """A pipe Python's C-level signal handler writes to (`signal.set_wakeup_fd`): the loop sleeps on it, so a
    signal ends the sleep without the Python-level handler taking any lock (see `Supervisor._on_signal`)."""

    def __init__(self) -> None:
        self.read_fd, write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(write_fd, False)
        signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def sleep(self, seconds: float) -> None:
        """Until `seconds` pass or a signal arrives (SIGUSR1: the wanted services changed)."""
        readable, _, _ = select.select([self.read_fd], [], [], seconds)
        if readable:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.read_fd, 512):
                    pass


class Supervisor:
    """The daemon: reconcile the wanted services with the running processes, once a second."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.cfg = catalog.cfg
        self.files = SupervisorFiles(self.cfg)
        self.procs: dict[str, subprocess.Popen | psutil.Process] = {}
        self.failures: dict[str, int] = {}  # consecutive restarts without a healthy minute (the backoff exponent)
        self._last_probe: dict[str, float] = {}
        self._stop_requested = False
        self._hook_threads: list[threading.Thread] = []

    # ---- control --------------------------------------------------------------------------------------

    def _on_signal(self, signum: int, _frame: Any) -> None:
        # No lock may be taken here: the handler runs between two bytecodes of the main thread, which may hold
        # that very lock. (It did: `threading.Event.set()` from here, while the loop was inside the same Event's
        # wait/clear, deadlocked the supervisor during a `stack down`, its stopped services left as zombies.)
        # The wait is broken by the wakeup fd, which Python's C-level handler writes before this one runs.
        if signum != signal.SIGUSR1:
            self._stop_requested = True

    def run(self) -> None:
        wakeup = SignalWakeup()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1):
            signal.signal(sig, self._on_signal)
        me = psutil.Process()
        ProcessRecord(
            name="supervisor",
            pid=me.pid,
            create_time=me.create_time(),
            argv=me.cmdline(),
            state="running",
            started_at=time.time(),
        ).write(self.files.pid_file)
        log.info("supervisor up (pid %d) for %s", me.pid, self.cfg.state)
        self._adopt_running()
        idle_since: float | None = None
        try:
            while not self._stop_requested:
                self.reconcile()
                if self.files.desired() or self.procs:
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since > IDLE_EXIT_S:
                    log.info("nothing has been wanted for %.0f s; supervisor exiting", IDLE_EXIT_S)
                    break
                wakeup.sleep(TICK_S)
        finally:
            self.stop_all()
            self.files.pid_file.unlink(missing_ok=True)
            log.info("supervisor stopped")

    def _adopt_running(self) -> None:
        """Services left running by an earlier supervisor (killed, or restarted) are watched, not restarted."""
        for name, rec in self.files.records().items():
            proc = rec.process()
            if proc is not None and name in self.catalog:
                self.procs[name] = proc
                log.info("watching %s (pid %d) started by an earlier supervisor", name, proc.pid)

    # ---- the loop ---------------------------------------------------------------------------------------

    def reconcile(self) -> None:
        desired = self.files.desired()
        # `stack down` writes an empty wish before its SIGTERM: a tick between the two stops the services here,
        # so this path takes the same before-stop hook as stop_all (savepoints of the statements), or a reboot
        # would come back from checkpoints and score again what came after them.
        self._before_stop([n for n in self.catalog.order if n not in desired and n in self.procs])
        for name in reversed(self.catalog.order):
            if name not in desired and name in self.procs:
                self._stop(name)
            elif name not in desired:
                rec = self.files.record(name)
                if rec is not None and not rec.adopted:
                    self.files.record_path(name).unlink(missing_ok=True)
        for name in self.catalog.ordered(desired):
            try:
                self._tend(name, desired[name])
            except Exception as exc:  # a broken spec must not take the supervisor (and every service) down
                log.exception("%s: %s", name, exc)
                rec = self.files.record(name) or ProcessRecord(name=name)
                rec.state, rec.detail = "restarting", f"cannot start: {exc}"
                rec.retry_at = time.time() + self._delay(name)
                rec.write(self.files.record_path(name))

    def _tend(self, name: str, args: dict[str, Any]) -> None:
        factory = self.catalog[name]
        path = self.files.record_path(name)
        rec = self.files.record(name) or ProcessRecord(name=name, url=factory.url())
        proc = self.procs.get(name)
        alive = proc is not None and _alive(proc)
        now = time.time()
        if alive:
            if rec.healthy_at is None and now - self._last_probe.get(name, 0.0) >= HEALTH_POLL_S:
                self._last_probe[name] = now
                if factory.health()() is None:
                    restarted = rec.restarts > 0
                    rec.healthy_at, rec.state, rec.detail = now, "running", ""
                    rec.write(path)
                    log.info("%s is healthy%s", name, f" again (restart {rec.restarts})" if restarted else "")
                    self._run_hook(name, restarted)
            elif rec.healthy_at and now - rec.healthy_at > HEALTHY_RESETS_BACKOFF_S:
                self.failures[name] = 0
            return
        if proc is not None:  # it died
            exit_text = describe_exit(proc.poll()) if isinstance(proc, subprocess.Popen) else "gone"
            del self.procs[name]
            rec.last_exit = exit_text
            if rec.healthy_at is None and rec.restarts == 0:
                rec.state = "failed"
                rec.detail = f"exited during start ({exit_text}); see {self.files.service_log(name)}"
                log.error("%s exited during its first start (%s): not restarting", name, exit_text)
            else:
                delay = self._delay(name)
                rec.state, rec.retry_at = "restarting", now + delay
                rec.detail = f"died ({exit_text}); restart {rec.restarts + 1} in {delay:.0f} s"
                log.warning("%s died (%s); restarting in %.1f s", name, exit_text, delay)
            rec.pid = rec.create_time = None
            rec.write(path)
            return
        if rec.state == "failed":
            return
        if rec.state == "restarting" and rec.retry_at and now < rec.retry_at:
            return
        self._start(name, args, rec)

    def _delay(self, name: str) -> float:
        n = self.failures.get(name, 0)
        self.failures[name] = n + 1
        return backoff_delay(n, 1.0, self.cfg.restart_backoff_max_s)

    def _start(self, name: str, args: dict[str, Any], rec: ProcessRecord) -> None:
        spec = self.catalog[name].spec(args)
        path = self.files.record_path(name)
        if spec is None:
            rec.state, rec.detail = "waiting", "nothing to run yet (see the supervisor log)"
            rec.retry_at = time.time() + 30
            rec.write(path)
            return
        restarting = rec.state == "restarting"
        popen = launch(
            spec.argv,
            self.files.service_log(name),
            env=spec.env,
            cwd=spec.cwd,
            die_with_parent=self.cfg.die_with_parent,
            banner=f"supervisor: {'restarting' if restarting else 'starting'} {name}",
        )
        proc = psutil.Process(popen.pid)
        self.procs[name] = popen
        rec.url, rec.argv, rec.pid, rec.create_time = spec.url, spec.argv, popen.pid, proc.create_time()
        rec.started_at, rec.healthy_at, rec.retry_at = time.time(), None, None
        rec.restarts += 1 if restarting else 0
        rec.state, rec.detail = "starting", ""
        rec.write(path)
        log.info("%s %s (pid %d)", "restarted" if restarting else "started", name, popen.pid)

    def _run_hook(self, name: str, restarted: bool) -> None:
        def call() -> None:
            try:
                self.catalog.hooks.on_healthy(name, restarted)
            except Exception:  # a failing hook is reported; the next event tries again
                log.exception("hook after %s became healthy failed", name)

        thread = threading.Thread(target=call, name=f"hook-{name}", daemon=True)
        thread.start()
        self._hook_threads = [t for t in self._hook_threads if t.is_alive()] + [thread]

    # ---- stopping -------------------------------------------------------------------------------------

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        ended = terminate(proc, self.cfg.stop_timeout_s, name)
        log.info("stopped %s (%s)", name, ended or "was not running")
        self.files.record_path(name).unlink(missing_ok=True)
        self.failures.pop(name, None)

    def _before_stop(self, names: list[str]) -> None:
        if names:
            try:
                self.catalog.hooks.before_stop(names)
            except Exception:
                log.exception("before-stop hook failed; stopping anyway")

    def stop_all(self) -> None:
        self._before_stop([n for n in self.catalog.order if n in self.procs])
        for name in reversed(self.catalog.order):
            if name in self.procs:
                self._stop(name)
            else:
                rec = self.files.record(name)
                if rec is not None and not rec.adopted:
                    self.files.record_path(name).unlink(missing_ok=True)
        self.files.write_desired({})


def _alive(proc: subprocess.Popen | psutil.Process) -> bool:
    if isinstance(proc, subprocess.Popen):
        return proc.poll() is None
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
