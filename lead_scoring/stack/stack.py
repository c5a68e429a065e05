"""`Stack`: what the CLI, tests and resources call to start, stop and inspect a local stack.

It does not run services itself: it makes sure the stack's supervisor daemon runs (`supervisor.py`, through
`supervisor_client.py`), tells it which services are wanted, and reads back what the daemon records
(`service_status.py`). `up` waits until the services answer their health checks (`startup.py`) and, when one
fails during its start, stops what this call started and raises a `StackError` with the service's log tail, so
nothing is left half-running.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import signal
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.settings import owner_only_dir
from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.install import Layout, StackError, require_installed, require_java
from lead_scoring.stack.process import record_of, terminate
from lead_scoring.stack.service_status import ServiceStatus, adopted_extras, service_statuses
from lead_scoring.stack.startup import check_ports, wait_healthy
from lead_scoring.stack.supervisor_client import SUPERVISOR, SupervisorClient
from lead_scoring.stack.supervisor_files import SupervisorFiles

log = logging.getLogger(__name__)


class Stack:
    """The local stack rooted at `catalog.cfg.state`, with jars from `catalog.cfg.cache`."""

    def __init__(self, catalog: Catalog, supervisor_argv: Sequence[str] | None = None):
        self.catalog = catalog
        self.cfg = catalog.cfg
        self.layout = Layout(self.cfg.cache)
        self.files = SupervisorFiles(self.cfg)
        # How to start the daemon (the application's entry point knows the full catalog).
        argv = list(supervisor_argv or [sys.executable, "-m", "lead_scoring.cli", "stack", "supervise"])
        self.daemon = SupervisorClient(self.cfg, self.files, argv)

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
        return self.daemon.daemon()

    def ensure_supervisor(self) -> psutil.Process:
        """The running supervisor, started (detached; tied to this process in tests) if there is none."""
        return self.daemon.ensure()

    def set_args(self, name: str, **args: Any) -> None:
        """Change what a wanted service starts with next time (the model server's artifact after a swap)."""
        self.daemon.set_args(name, **args)

    # ---- up ---------------------------------------------------------------------------------------------

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
            check_ports(self.catalog, to_start)
        self.daemon.update_desired(add={n: (args or {}).get(n, {}) for n in names})
        self.daemon.ensure()
        try:
            unhealthy = wait_healthy(self.catalog, self.files, names, optional_wait_s)
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

    # ---- down -------------------------------------------------------------------------------------------

    def adopt(self, name: str, pid: int, url: str) -> None:
        """Record a process started outside `up` so that `status` lists it and `down` stops it first."""
        rec = record_of(psutil.Process(pid), name, url, state="running", adopted=True)
        rec.write(self.files.record_path(name))

    def adopted_extras(self) -> list[str]:
        """Names of adopted processes that are not stack services (e.g. a demo lead generator)."""
        return adopted_extras(self.catalog, self.files)

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
                self.daemon.update_desired(remove=targets)
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
        return service_statuses(self.catalog, self.files, services, health)

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
