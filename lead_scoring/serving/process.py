"""Start, probe, swap and stop the local model server process (used by `model_deployment` and `stack up`).

    pid = start_server(artifact_uri, host="127.0.0.1", port=8080, log_path=state_dir() / "serving" / "server.log")
    wait_ready("http://127.0.0.1:8080", timeout=60, pid=pid)

The process is `python -m lead_scoring.serving --artifact URI --host H --port P [--allow-swap]`, in its
own session (it survives the caller), stdout/stderr to `log_path`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from lead_scoring.serving.model import DEFAULT_MODEL_NAME


class ServerStartError(RuntimeError):
    """The server process exited or never became ready; the message carries its log tail."""


def start_server(artifact_uri: str, host: str = "127.0.0.1", port: int = 8080, log_path: str | Path | None = None,
                 model_name: str = DEFAULT_MODEL_NAME, allow_swap: bool = True,
                 env: dict[str, str] | None = None) -> int:
    """Spawn the model server for `artifact_uri` (a model version folder); returns its pid at once."""
    command = [sys.executable, "-m", "lead_scoring.serving", "--artifact", str(artifact_uri), "--host", host,
               "--port", str(port), "--model-name", model_name]
    if allow_swap:
        command.append("--allow-swap")
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env={**os.environ, **(env or {})})
    finally:
        if log_path:
            log.close()  # type: ignore[union-attr]
    return process.pid


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)  # reap our own exited child (no zombie)
        if finished == pid:
            return False
    except ChildProcessError:
        pass  # not our child: fall through to a signal-0 probe
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_tail(log_path: str | Path | None, lines: int = 20) -> str:
    if not log_path or not Path(log_path).exists():
        return ""
    return "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-lines:])


def wait_ready(url: str, timeout: float = 60.0, pid: int | None = None, log_path: str | Path | None = None,
               model_name: str = DEFAULT_MODEL_NAME) -> dict[str, Any]:
    """Poll `{url}/v2/models/{name}/ready` until 200; fail fast if `pid` exits. Returns the ready body."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if pid is not None and not pid_alive(pid):
                raise ServerStartError(f"model server (pid {pid}) exited before it was ready:\n{log_tail(log_path)}")
            try:
                response = client.get(f"{url}/v2/models/{model_name}/ready")
                if response.status_code == 200:
                    return response.json()
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            time.sleep(0.2)
    raise ServerStartError(f"model server at {url} not ready after {timeout:.0f}s ({last})\n{log_tail(log_path)}")


def stop_server(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the server (only this pid), then SIGKILL if it does not exit in time."""
    if not pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def swap_model(url: str, version: str, model_name: str = DEFAULT_MODEL_NAME, timeout: float = 120.0) -> dict[str, Any]:
    """Ask a running server (started with allow_swap) to hot-swap to `version` of its artifact store."""
    response = httpx.post(f"{url}/admin/models/{model_name}/swap", json={"version": version}, timeout=timeout)
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code in (404, 405) and "error" not in body:  # the route itself is absent
        raise ServerStartError(f"the model server at {url} has no hot-swap route: it was started without "
                               f"--allow-swap (e.g. by an older `stack up`); restart it with --allow-swap or stop it")
    if response.status_code != 200:
        raise ServerStartError(f"hot swap to {version} refused (HTTP {response.status_code}): "
                               f"{body.get('error', response.text[:300])}")
    return body


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
