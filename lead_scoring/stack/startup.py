"""What `Stack.up` checks before and after it asks for services: their ports free, then every service healthy
(or, for the optional ones, given up on after a while and reported as they are).

Kept apart from `Stack` so that the rules of "up" (which failure stops the start, which is only reported) read
on their own.
"""

from __future__ import annotations

import logging
import time

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.stack.catalog import Catalog, blocks_start
from lead_scoring.stack.install import StackError
from lead_scoring.stack.ports import port_free, port_owner
from lead_scoring.stack.process import log_tail
from lead_scoring.stack.supervisor_files import SupervisorFiles

log = logging.getLogger(__name__)


def check_ports(catalog: Catalog, names: list[str]) -> None:
    """Raise StackError naming every port of `names` already in use, who holds it and the variable that moves it."""
    cfg = catalog.cfg
    problems = []
    for name in names:
        for port, env_var in catalog[name].ports().items():
            if not port_free(cfg.host, port):
                problems.append(
                    f"port {cfg.host}:{port} ({name}) is already in use by {port_owner(port)}: "
                    f"stop that process or set {env_var} to another port"
                )
    if problems:
        raise StackError("cannot start the stack:\n  " + "\n  ".join(problems))


def wait_healthy(
    catalog: Catalog, files: SupervisorFiles, names: list[str], optional_wait_s: float | None = None
) -> dict[str, str]:
    """Wait until `names` are healthy; return the optional ones still not healthy (name -> why) when
    `optional_wait_s` allows it, raise StackError for a blocking one."""
    cfg = catalog.cfg
    pending = list(names)
    waiting: dict[str, str] = {}
    optional = set() if optional_wait_s is None else {n for n in names if not blocks_start(catalog[n])}
    blocking_healthy_at: list[float] = []  # when the last blocking service became healthy

    def check() -> bool | None:
        for name in list(pending):
            rec = files.record(name)
            if rec is not None and rec.state in ("failed", "restarting"):
                detail = f" ({rec.last_exit})" if rec.last_exit else ""
                if name in optional:
                    waiting[name] = f"{rec.state}{detail}: {rec.detail or 'see its log'}"
                    continue
                log_path = files.service_log(name)
                raise StackError(
                    f"{name} exited during start{detail}. Last lines of {log_path}:\n"
                    f"{log_tail(log_path)}\nFix the cause above, then run `lead-scoring stack up` "
                    f"again (`lead-scoring stack logs {name}` shows the whole log)."
                )
            if rec is None or rec.pid is None:
                waiting[name] = rec.detail if rec and rec.detail else "not started yet"
                continue
            problem = catalog[name].health()()
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
        wait_until(check, timeout_s=cfg.start_timeout_s, interval_s=0.5, what="stack healthy")
    except WaitTimeout:
        if not optional.issuperset(pending):
            detail = "; ".join(f"{n}: {waiting.get(n, '?')}" for n in pending)
            raise StackError(
                f"not healthy after {cfg.start_timeout_s:.0f} s ({detail}). See `lead-scoring stack logs "
                f"SERVICE`; raise LEAD_SCORING_STACK_START_TIMEOUT on a slow machine."
            ) from None
    return {n: waiting.get(n, "?") for n in pending}
