"""The stack's status table: one `ServiceStatus` per service (and the supervisor, and adopted extras), read from
the supervisor's records and, unless told not to, from each service's health check.

Kept apart from `Stack` (up, down) because it only reads: sensors call it every tick (`health=False`: the records
alone, cheap), the CLI prints it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import psutil

from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.process import rss_bytes
from lead_scoring.stack.supervisor_client import SUPERVISOR
from lead_scoring.stack.supervisor_files import SupervisorFiles


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


def adopted_extras(catalog: Catalog, files: SupervisorFiles) -> list[str]:
    """Names of adopted processes that are not stack services (e.g. a demo lead generator)."""
    return [n for n, r in files.records().items() if r.adopted and n not in catalog]


def service_statuses(
    catalog: Catalog, files: SupervisorFiles, services: Iterable[str] | None = None, health: bool = True
) -> list[ServiceStatus]:
    """One row per service of `services` (None: all, plus the supervisor and the adopted extras first)."""
    names = catalog.ordered(services) if services is not None else catalog.order
    records = files.records()
    out: list[ServiceStatus] = []
    if services is None:
        out.append(_supervisor_row(files))
        for name in adopted_extras(catalog, files):
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
        factory = catalog[name]
        if rec is None:
            if factory.wanted():
                out.append(ServiceStatus(name, factory.url(), None, "stopped"))
            continue
        proc = rec.process()
        base = dict(url=rec.url or factory.url(), restarts=rec.restarts, last_exit=rec.last_exit)
        if proc is None:
            state = rec.state if rec.state in ("restarting", "failed", "waiting") else "dead"
            detail = rec.detail or f"exited; see {files.service_log(name)}"
            out.append(ServiceStatus(name, pid=rec.pid, state=state, detail=detail, **base))
            continue
        if not health:
            out.append(
                ServiceStatus(name, pid=proc.pid, state=rec.state, rss_bytes=rss_bytes(proc), detail=rec.detail, **base)
            )
            continue
        problem = factory.health()()
        detail = factory.detail() if problem is None else problem
        state = "healthy" if problem is None else ("starting" if rec.state == "starting" else "unhealthy")
        out.append(ServiceStatus(name, pid=proc.pid, state=state, rss_bytes=rss_bytes(proc), detail=detail, **base))
    return out


def _supervisor_row(files: SupervisorFiles) -> ServiceStatus:
    daemon = files.daemon()
    wanted = files.desired()
    return ServiceStatus(
        SUPERVISOR,
        str(files.dir),
        daemon.pid if daemon else None,
        "running" if daemon else ("dead" if wanted else "stopped"),
        rss_bytes=rss_bytes(daemon),
        detail="restarts dead services"
        if daemon
        else ("NOT RUNNING: nothing restarts dead services; run `lead-scoring stack up`" if wanted else ""),
    )


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
