"""TCP ports on this machine: free ones for tests and side-by-side stacks, and who holds a taken one."""

from __future__ import annotations

import contextlib
import socket

import psutil


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """`count` distinct ports that were free a moment ago (held open together so they differ)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    return free_ports(1, host)[0]


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on host:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the JVM servers do: a port whose last connection is in TIME_WAIT is free to listen on.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether something accepts connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout_s):
        return True
    return False


def port_owner(port: int) -> str:
    """'pid N (name: command ...)' of the process listening on `port`, for error messages."""
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({proc.name()}: {' '.join(proc.cmdline()[:3])[:80]})"
                return f"pid {conn.pid}"
    return "another process"
