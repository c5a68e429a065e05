"""`Stack`: what the CLI, tests and resources call to start, stop and inspect a local stack.

It does not run services itself: it makes sure the stack's supervisor daemon runs (`supervisor.py`),
tells it which services are wanted, and reads back what the daemon records. `up` waits until the services
answer their health checks and, when one fails during its start, stops what this call started and raises
a `StackError` with the service's log tail, so nothing is left half-running.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.settings import owner_only_dir
from lead_scoring.stack.catalog import Catalog, blocks_start
from lead_scoring.stack.install import Layout, StackError, require_installed, require_java
from lead_scoring.stack.ports import port_free, port_owner
from lead_scoring.stack.process import launch, log_tail, record_of, rss_bytes, terminate
from lead_scoring.stack.supervisor import SupervisorFiles

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"


@dataclass
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    state: str  # healthy | unhealthy | starting | restarting | failed | waiting | stopped | dead | running | exited
    rss_bytes: int | None = None
    detail: str = ""
    restarts: int = 0
    last_exit: str | None = None


class Stack:
    """The local stack rooted at `catalog.cfg.state`, with jars from `catalog.cfg.cache`."""

    def __init__(self, catalog: Catalog, supervisor_argv: Sequence[str] | None = None):
        self.catalog = catalog
        self.cfg = catalog.cfg
        self.layout = Layout(self.cfg.cache)
        self.files = SupervisorFiles(self.cfg)
        # How to start the daemon (the application's entry point knows the full catalog).
        self.supervisor_argv = list(supervisor_argv or [sys.executable, "-m", "lead_scoring.cli", "stack", "supervise"])

    # ---- folders ----------------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.files.run_dir

    @property
    def log_dir(self) -> Path:
        return self.files.log_dir

    @property
    def flink_dir(self) -> Path:
        return self.cfg.state / "flink"

    @property
    def flink_conf_dir(self) -> Path:
        return self.flink_dir / "conf"

    def log_path(self, name: str) -> Path:
        return self.files.log_path if name == SUPERVISOR else self.files.service_log(name)

    # ---- the daemon -------------------------------------------------------------------------------------

    def supervisor(self) -> psutil.Process | None:
        return self.files.daemon()

    def ensure_supervisor(self) -> psutil.Process:
        """The running supervisor, started (detached; tied to this process in tests) if there is none."""
        running = self.supervisor()
        if running is not None:
            return running
        owner_only_dir(self.files.dir)
        # The daemon runs with this exact config (tests' free ports and temp dirs included).
        config = self.cfg.replace(state_root=self.cfg.state.parent, cache_root=self.cfg.cache)
        self.files.config_file.write_text(config.model_dump_json(indent=1))
        popen = launch(
            [*self.supervisor_argv, "--config", str(self.files.config_file)],
            self.files.log_path,
            die_with_parent=self.cfg.die_with_parent,
            banner="starting the supervisor",
        )
        try:
            return wait_until(
                self.supervisor,
                timeout_s=30,
                interval_s=0.1,
                what="the stack supervisor to start",
                last_state=lambda: log_tail(self.files.log_path, 10),
            )
        except WaitTimeout as exc:
            terminate(popen, 5, SUPERVISOR)
            raise StackError(f"{exc}\nsee {self.files.log_path}") from None

    def _signal_supervisor(self, sig: int = signal.SIGUSR1) -> bool:
        daemon = self.supervisor()
        if daemon is None:
            return False
        try:
            daemon.send_signal(sig)
        except psutil.Error:
            return False
        return True

    def _update_desired(self, add: dict[str, dict[str, Any]] | None = None, remove: Iterable[str] = ()) -> None:
        with self.files.locked():
            desired = self.files.desired()
            for name, args in (add or {}).items():
                desired[name] = args
                rec = self.files.record(name)
                if rec is not None and rec.state == "failed":  # asked again: try again
                    self.files.record_path(name).unlink(missing_ok=True)
            for name in remove:
                desired.pop(name, None)
            self.files.write_desired(desired)
        self._signal_supervisor()

    def set_args(self, name: str, **args: Any) -> None:
        """Change what a wanted service starts with next time (the model server's artifact after a swap)."""
        with self.files.locked():
            desired = self.files.desired()
            if name in desired:
                desired[name] = {**desired[name], **args}
                self.files.write_desired(desired)

    # ---- up ---------------------------------------------------------------------------------------------

    def _check_ports(self, names: list[str]) -> None:
        problems = []
        for name in names:
            for port, env_var in self.catalog[name].ports().items():
                if not port_free(self.cfg.host, port):
                    problems.append(
                        f"port {self.cfg.host}:{port} ({name}) is already in use by {port_owner(port)}: "
                        f"stop that process or set {env_var} to another port"
                    )
        if problems:
            raise StackError("cannot start the stack:\n  " + "\n  ".join(problems))

    def up(
        self,
        services: Iterable[str] | None = None,
        args: dict[str, dict[str, Any]] | None = None,
        *,
        optional_wait_s: float | None = None,
    ) -> list[ServiceStatus]:
        """Start what is not running, wait until everything asked for is healthy, return the status table.

        On any failure the services started by this call are stopped again; services that were already
        running are left alone.

        `optional_wait_s`: once every service that blocks the start (`catalog.blocks_start`: the engines, the
        model server) is healthy, wait at most this much longer for the others (the CRM workers), then return
        with them in the table as they are (a stuck or dead worker says why) instead of failing: what
        `lead-scoring stack up` and `scripts/up` do, so a worker never keeps the product from opening.
        None: every service must be healthy within the start timeout (tests, benchmarks).
        """
        names = self.catalog.ordered(services) if services is not None else self.catalog.defaults()
        unknown = set(services or ()) - set(self.catalog.order)
        if unknown:
            raise StackError(
                f"unknown service(s) {', '.join(sorted(unknown))}; one of: {', '.join(self.catalog.order)}"
            )
        require_java()
        require_installed(self.layout)
        owner_only_dir(self.cfg.state.parent)  # the state folder holds PII (Kafka segments) and keys
        owner_only_dir(self.cfg.state)
        running = {n for n in names if self._live(n)}
        to_start = [n for n in names if n not in running]
        t0 = time.monotonic()
        if to_start:
            self._check_ports(to_start)
        self._update_desired(add={n: (args or {}).get(n, {}) for n in names})
        self.ensure_supervisor()
        try:
            unhealthy = self._wait_healthy(names, optional_wait_s)
        except BaseException:
            if to_start:
                log.error("stopping what this `up` started: %s", ", ".join(to_start))
                self.down(to_start)
            raise
        if unhealthy:
            log.warning(
                "up, but not healthy: %s (reported, not waited for: the supervisor and `lead-scoring "
                "stack status` keep watching)",
                "; ".join(f"{n}: {why}" for n, why in unhealthy.items()),
            )
        elif to_start:
            log.info("stack healthy %.1f s after start", time.monotonic() - t0)
        return self.status(names)

    def _wait_healthy(self, names: list[str], optional_wait_s: float | None = None) -> dict[str, str]:
        """Wait until `names` are healthy; return the optional ones still not healthy (name -> why) when
        `optional_wait_s` allows it, raise StackError for a blocking one."""
        pending = list(names)
        waiting: dict[str, str] = {}
        optional = set() if optional_wait_s is None else {n for n in names if not blocks_start(self.catalog[n])}
        blocking_healthy_at: list[float] = []  # when the last blocking service became healthy

        def check() -> bool | None:
            for name in list(pending):
                rec = self.files.record(name)
                if rec is not None and rec.state in ("failed", "restarting"):
                    detail = f" ({rec.last_exit})" if rec.last_exit else ""
                    if name in optional:
                        waiting[name] = f"{rec.state}{detail}: {rec.detail or 'see its log'}"
                        continue
                    raise StackError(
                        f"{name} exited during start{detail}. Last lines of {self.log_path(name)}:\n"
                        f"{log_tail(self.log_path(name))}\nFix the cause above, then run `lead-scoring stack up` "
                        f"again (`lead-scoring stack logs {name}` shows the whole log)."
                    )
                if rec is None or rec.pid is None:
                    waiting[name] = rec.detail if rec and rec.detail else "not started yet"
                    continue
                problem = self.catalog[name].health()()
                if problem is None:
                    log.info("%s is healthy", name)
                    pending.remove(name)
                    waiting.pop(name, None)
                else:
                    waiting[name] = problem
            if not pending:
                return True
            if optional_wait_s is not None and optional.issuperset(pending):
                if not blocking_healthy_at:
                    blocking_healthy_at.append(time.monotonic())
                if time.monotonic() - blocking_healthy_at[0] >= optional_wait_s:
                    return True
            return None

        try:
            wait_until(check, timeout_s=self.cfg.start_timeout_s, interval_s=0.5, what="stack healthy")
        except WaitTimeout:
            if not optional.issuperset(pending):
                detail = "; ".join(f"{n}: {waiting.get(n, '?')}" for n in pending)
                raise StackError(
                    f"not healthy after {self.cfg.start_timeout_s:.0f} s ({detail}). See `lead-scoring stack logs "
                    f"SERVICE`; raise LEAD_SCORING_STACK_START_TIMEOUT on a slow machine."
                ) from None
        return {n: waiting.get(n, "?") for n in pending}

    # ---- down -------------------------------------------------------------------------------------------

    def adopt(self, name: str, pid: int, url: str) -> None:
        """Record a process started outside `up` so that `status` lists it and `down` stops it first."""
        rec = record_of(psutil.Process(pid), name, url, state="running", adopted=True)
        rec.write(self.files.record_path(name))

    def adopted_extras(self) -> list[str]:
        """Names of adopted processes that are not stack services (e.g. a demo lead generator)."""
        return [n for n, r in self.files.records().items() if r.adopted and n not in self.catalog]

    def down(self, services: Iterable[str] | None = None) -> list[str]:
        """Stop services (all: the supervisor too). Never raises on a process that is already gone.

        Adopted extras go first: they are Kafka clients (a producer stopped after the broker would wait
        for acknowledgements that cannot come)."""
        wanted = None if services is None else set(services)
        stopped: list[str] = []
        for name in self.adopted_extras():
            if wanted is None or name in wanted:
                rec = self.files.record(name)
                if rec is not None and terminate(rec.process(), self.cfg.stop_timeout_s, name) is not None:
                    stopped.append(name)
                self.files.record_path(name).unlink(missing_ok=True)
        live_before = {n for n in self.catalog.order if self._live(n)}
        targets = self.catalog.ordered(wanted) if wanted is not None else self.catalog.order
        daemon = self.supervisor()
        if daemon is not None:
            if wanted is None:
                with self.files.locked():
                    self.files.write_desired({})
                daemon.send_signal(signal.SIGTERM)
                budget = self.cfg.stop_timeout_s * (len(live_before) + 1) + 60
                with contextlib.suppress(WaitTimeout, psutil.TimeoutExpired):
                    daemon.wait(timeout=budget)
            else:
                self._update_desired(remove=targets)
                with contextlib.suppress(WaitTimeout, psutil.TimeoutExpired):
                    wait_until(
                        lambda: True if not any(self._live(n) for n in targets) else None,
                        timeout_s=self.cfg.stop_timeout_s * (len(targets) + 1) + 10,
                        interval_s=0.2,
                        what="services stopped",
                    )
                    if not self.files.desired():  # the last wanted service went: so does its supervisor
                        daemon.send_signal(signal.SIGTERM)
                        daemon.wait(timeout=30)
        # Whatever is still recorded (no supervisor, or it was killed): stop it here, in reverse order.
        for name in reversed(targets):
            rec = self.files.record(name)
            if rec is not None:
                terminate(rec.process(), self.cfg.stop_timeout_s, name)
                self.files.record_path(name).unlink(missing_ok=True)
        stopped += [n for n in reversed(self.catalog.order) if n in live_before and n in targets]
        return stopped

    def restart(self, services: Iterable[str]) -> list[ServiceStatus]:
        names = list(services)
        self.down(names)
        return self.up(names)

    def reset(self) -> None:
        """Stop everything this stack started, then delete its runtime data (not the jar cache)."""
        self.down()
        if self.cfg.state.exists():
            shutil.rmtree(self.cfg.state)
        log.info("wiped %s", self.cfg.state)

    # ---- status -----------------------------------------------------------------------------------------

    def _live(self, name: str) -> bool:
        rec = self.files.record(name)
        return rec is not None and rec.process() is not None

    def status(self, services: Iterable[str] | None = None, health: bool = True) -> list[ServiceStatus]:
        """One row per service (and the supervisor); `health=False`: from the records alone (cheap, for sensors)."""
        names = self.catalog.ordered(services) if services is not None else self.catalog.order
        records = self.files.records()
        out: list[ServiceStatus] = []
        if services is None:
            daemon = self.supervisor()
            wanted = self.files.desired()
            out.append(
                ServiceStatus(
                    SUPERVISOR,
                    str(self.files.dir),
                    daemon.pid if daemon else None,
                    "running" if daemon else ("dead" if wanted else "stopped"),
                    rss_bytes=rss_bytes(daemon),
                    detail="restarts dead services"
                    if daemon
                    else ("NOT RUNNING: nothing restarts dead services; run `lead-scoring stack up`" if wanted else ""),
                )
            )
            for name in self.adopted_extras():
                rec = records[name]
                proc = rec.process()
                out.append(
                    ServiceStatus(
                        name,
                        rec.url,
                        proc.pid if proc else rec.pid,
                        "running" if proc else "exited",
                        rss_bytes=rss_bytes(proc),
                    )
                )
        for name in names:
            rec = records.get(name)
            factory = self.catalog[name]
            if rec is None:
                if factory.wanted():
                    out.append(ServiceStatus(name, factory.url(), None, "stopped"))
                continue
            proc = rec.process()
            base = dict(url=rec.url or factory.url(), restarts=rec.restarts, last_exit=rec.last_exit)
            if proc is None:
                state = rec.state if rec.state in ("restarting", "failed", "waiting") else "dead"
                detail = rec.detail or f"exited; see {self.log_path(name)}"
                out.append(ServiceStatus(name, pid=rec.pid, state=state, detail=detail, **base))
                continue
            if not health:
                out.append(
                    ServiceStatus(
                        name, pid=proc.pid, state=rec.state, rss_bytes=rss_bytes(proc), detail=rec.detail, **base
                    )
                )
                continue
            problem = factory.health()()
            detail = factory.detail() if problem is None else problem
            state = "healthy" if problem is None else ("starting" if rec.state == "starting" else "unhealthy")
            out.append(ServiceStatus(name, pid=proc.pid, state=state, rss_bytes=rss_bytes(proc), detail=detail, **base))
        return out

    def follow_log(self, name: str, lines: int = 50, follow: bool = False) -> Iterator[str]:
        """The last `lines` lines of a service's log, then (with follow) new lines as they come."""
        path = self.log_path(name)
        if not path.is_file():
            raise StackError(f"no log for {name} at {path}; has `lead-scoring stack up` run with this state dir?")
        with open(path, errors="replace") as fh:
            yield from fh.readlines()[-lines:]
            while follow:
                line = fh.readline()
                if line:
                    yield line
                else:
                    time.sleep(0.3)


def total_rss(statuses: Iterable[ServiceStatus]) -> int:
    return sum(s.rss_bytes or 0 for s in statuses)


def pid_alive(pid: int | None) -> bool:
    """Whether `pid` names a live, non-zombie process (for callers that only kept a pid)."""
    if not pid:
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


__all__ = ["ServiceStatus", "Stack", "StackError", "pid_alive", "total_rss"]
