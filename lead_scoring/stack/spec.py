"""What the supervisor needs to know to run one service: how to start it and how to tell it is healthy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# None when healthy, else what is still missing ("no TaskManager registered yet").
HealthCheck = Callable[[], "str | None"]


@dataclass
class ServiceSpec:
    name: str
    url: str
    argv: list[str]
    health: HealthCheck
    ports: dict[int, str] = field(default_factory=dict)  # port -> the environment variable that moves it
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def http_json(url: str, timeout: float = 2.0) -> tuple[int, object]:
    resp = httpx.get(url, timeout=timeout)
    try:
        body: object = resp.json()
    except ValueError:
        body = resp.text
    return resp.status_code, body
