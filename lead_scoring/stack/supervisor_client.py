"""The client side of the supervisor's file + signal protocol (`stack/supervisor.py`): start the daemon when none
runs, rewrite which services are wanted, and wake it.

Kept apart from `Stack` (up, down, status) so that everything the client writes for the daemon is in one place,
next to nothing else.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Sequence
from typing import Any

import psutil

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.settings import owner_only_dir
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import StackError
from lead_scoring.stack.process import launch, log_tail, terminate
from lead_scoring.stack.supervisor_files import SupervisorFiles

SUPERVISOR = "supervisor"


class SupervisorClient:
    """Talks to the supervisor of the stack configured by `cfg`; `argv` starts the daemon (the application's entry
    point knows the full catalog)."""

    def __init__(self, cfg: StackConfig, files: SupervisorFiles, argv: Sequence[str]):
        self.cfg = cfg
        self.files = files
        self.argv = list(argv)

    def daemon(self) -> psutil.Process | None:
        return self.files.daemon()

    def ensure(self) -> psutil.Process:
        """The running supervisor, started (detached; tied to this process in tests) if there is none."""
        running = self.daemon()
        if running is not None:
            return running
        owner_only_dir(self.files.dir)
        # The daemon runs with this exact config (tests' free ports and temp dirs included).
        config = self.cfg.replace(state_root=self.cfg.state.parent, cache_root=self.cfg.cache)
        self.files.config_file.write_text(config.model_dump_json(indent=1))
        popen = launch(
            [*self.argv, "--config", str(self.files.config_file)],
            self.files.log_path,
            die_with_parent=self.cfg.die_with_parent,
            banner="starting the supervisor",
        )
        try:
            return wait_until(
                self.daemon,
                timeout_s=30,
                interval_s=0.1,
                what="the stack supervisor to start",
                last_state=lambda: log_tail(self.files.log_path, 10),
            )
        except WaitTimeout as exc:
            terminate(popen, 5, SUPERVISOR)
            raise StackError(f"{exc}\nsee {self.files.log_path}") from None

    def wake(self, sig: int = signal.SIGUSR1) -> bool:
        """Tell the daemon to read `desired.json` again (SIGUSR1); False when no daemon runs."""
        daemon = self.daemon()
        if daemon is None:
            return False
        try:
            daemon.send_signal(sig)
        except psutil.Error:
            return False
        return True

    def update_desired(self, add: dict[str, dict[str, Any]] | None = None, remove: Iterable[str] = ()) -> None:
        """Want the services of `add` (with their arguments) and no longer those of `remove`, then wake the daemon."""
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
        self.wake()

    def set_args(self, name: str, **args: Any) -> None:
        """Change what a wanted service starts with next time (the model server's artifact after a swap)."""
        with self.files.locked():
            desired = self.files.desired()
            if name in desired:
                desired[name] = {**desired[name], **args}
                self.files.write_desired(desired)
