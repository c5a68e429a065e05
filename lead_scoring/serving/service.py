"""The model server as a service of the local stack: what the supervisor starts, restarts and checks.

It serves the artifact it was last told to (`model_deployment` records it after every deployment and hot
swap), else the production version of the local artifact store, so a server restarted after a crash
comes back with the model that was serving, not an older one.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.settings import (
    ADMIN_TOKEN_ENV_VAR,
    DEFAULT_MODEL_NAME,
    Profile,
    challenger_model_name,
    owner_only_secret,
    security_settings,
    state_dir,
)
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.process import describe_exit, launch, log_tail, terminate
from lead_scoring.stack.spec import HealthCheck, ServiceSpec, http_json
from lead_scoring.storage.artifacts import ArtifactError, ArtifactRepository, LocalBlobs

log = logging.getLogger(__name__)

MODEL_SERVER = "model-server"
ADMIN_TOKEN_FILE = "model-admin-token"


def admin_token(home: Path | None = None) -> str:
    """The token of the model servers' admin routes: LEAD_SCORING_MODEL_ADMIN_TOKEN when set, else one generated
    once for this state folder (`<home>/secrets/model-admin-token`, 0600), which the local stack's servers and
    the local deployment both read. Never logged."""
    configured = security_settings().admin_token
    if configured is not None:
        return configured.get_secret_value()
    return owner_only_secret((home or state_dir()) / "secrets" / ADMIN_TOKEN_FILE)


def admin_headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token or admin_token()}"}


def replica_name(replica: int) -> str:
    """The stack service of model-server replica `replica` (1-based): `model-server`, `model-server-2`, ..."""
    return MODEL_SERVER if replica == 1 else f"{MODEL_SERVER}-{replica}"


def model_health(url: str, model_name: str) -> str | None:
    """None when the model (not just the server) is ready: a server whose model failed to load is not healthy."""
    try:
        code, body = http_json(f"{url}/v2/models/{model_name}/ready")
    except httpx.HTTPError as exc:
        return f"not answering ({exc.__class__.__name__})"
    return None if code == 200 else f"{model_name} not ready ({code}: {str(body)[:200]})"


def served_version(url: str, model_name: str) -> str | None:
    """The model version a server answers with, or None when it is not serving."""
    try:
        response = httpx.get(f"{url}/v2/models/{model_name}/ready", timeout=2.0)
    except httpx.HTTPError:
        return None
    return response.json().get("model_version") if response.status_code == 200 else None


def server_argv(
    artifact_uri: str,
    host: str,
    port: int,
    model_name: str = DEFAULT_MODEL_NAME,
    allow_swap: bool = True,
    challenger: str | None = None,
) -> list[str]:
    """The one command line of the model server (`python -m lead_scoring.serving`)."""
    argv = [
        sys.executable,
        "-m",
        "lead_scoring.serving",
        "--artifact",
        str(artifact_uri),
        "--host",
        host,
        "--port",
        str(port),
        "--model-name",
        model_name,
    ]
    if challenger:  # served next to the champion as <model_name>_challenger (shadow scoring)
        argv += ["--challenger", challenger]
    # --allow-swap: the local deployment hot-swaps new versions into the running server.
    return [*argv, "--allow-swap"] if allow_swap else argv


@dataclass
class ModelServerService:
    """`model-server` of the stack (`model-server-2`, ... : the other replicas of a multi-node topology)."""

    blocks_start: ClassVar[bool] = True
    cfg: StackConfig
    replica: int = 1

    @property
    def name(self) -> str:
        return replica_name(self.replica)

    @property
    def port(self) -> int:
        return self.cfg.replica_port(self.replica)

    def production_artifact(self) -> str | None:
        """LEAD_SCORING_MODEL_URI, else the production version of the local artifact store."""
        if self.cfg.model_artifact:
            return self.cfg.model_artifact
        root = self.cfg.state.parent / "artifacts"
        if not root.is_dir():
            return None
        repo = ArtifactRepository(LocalBlobs(root), Profile.LOCAL)  # the local stack's own store
        try:
            version = repo.production_version()
        except (OSError, ValueError, KeyError, ArtifactError):
            log.warning("could not read the production pointer under %s", root)
            return None
        return repo.artifact(version).uri if version else None

    def wanted(self) -> bool:
        return self.production_artifact() is not None

    def ports(self) -> dict[int, str]:
        return {self.port: "LEAD_SCORING_MODEL_PORT" if self.replica == 1 else "LEAD_SCORING_EXTRA_MODEL_PORTS"}

    def url(self) -> str:
        return self.cfg.replica_url(self.replica)

    def health(self) -> HealthCheck:
        url = self.url()
        return lambda: model_health(url, self.cfg.model_name)

    def spec(self, args: dict[str, Any]) -> ServiceSpec | None:
        uri = args.get("artifact") or self.production_artifact()
        if not uri:
            log.info("no model artifact yet: the model server waits for a deployment")
            return None
        return ServiceSpec(
            self.name,
            self.url(),
            server_argv(uri, self.cfg.host, self.port, self.cfg.model_name, challenger=args.get("challenger")),
            self.health(),
            env={ADMIN_TOKEN_ENV_VAR: admin_token(self.cfg.state.parent)},
        )

    def detail(self) -> str:
        version = served_version(self.url(), self.cfg.model_name)
        challenger = served_version(self.url(), challenger_model_name(self.cfg.model_name)) if version else None
        if not version:
            return ""
        return f"serving {version}" + (f", challenger {challenger}" if challenger else "")


class ModelServerError(RuntimeError):
    """A model server process exited or never became ready, or refused a hot swap; the message says why."""


class ModelServerProcess:
    """One model server child process, for tests and benchmarks that need a server of their own.

    Not a second supervisor: it starts and stops one process with the stack's primitives and restarts
    nothing (the stack's supervisor does that for `model-server`).
    """

    def __init__(
        self,
        artifact_uri: str,
        port: int,
        log_path: Path,
        host: str = "127.0.0.1",
        model_name: str = DEFAULT_MODEL_NAME,
        allow_swap: bool = True,
        env: dict[str, str] | None = None,
        challenger: str | None = None,
        token: str | None = None,
    ):
        self.argv = server_argv(artifact_uri, host, port, model_name, allow_swap, challenger)
        self.url = f"http://{host}:{port}"
        self.port = port
        self.model_name = model_name
        self.log_path = log_path
        # with --allow-swap: the admin token (default: this state folder's, which `swap_model` also uses)
        self.token = (token or admin_token()) if allow_swap else None
        self.env = {**({ADMIN_TOKEN_ENV_VAR: self.token} if self.token else {}), **(env or {})}
        self.popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def start(self, timeout_s: float = 120.0) -> ModelServerProcess:
        self.popen = launch(self.argv, self.log_path, env=self.env, banner=f"model server on {self.url}")
        popen = self.popen

        def ready() -> bool | None:
            if popen.poll() is not None:
                raise ModelServerError(
                    f"model server exited ({describe_exit(popen.returncode)}) before it was "
                    f"ready:\n{log_tail(self.log_path, 20)}"
                )
            return True if model_health(self.url, self.model_name) is None else None

        try:
            wait_until(
                ready,
                timeout_s=timeout_s,
                interval_s=0.2,
                what=f"model server at {self.url} ready",
                last_state=lambda: log_tail(self.log_path, 20),
            )
        except WaitTimeout as exc:
            self.stop()
            raise ModelServerError(str(exc)) from None
        return self

    def stop(self) -> None:
        terminate(self.popen, 10.0, "model server")

    def __enter__(self) -> ModelServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _refused_token(url: str, response: httpx.Response) -> None:
    if response.status_code == 401:
        raise ModelServerError(
            f"the model server at {url} refused the admin token (HTTP 401): give the caller "
            f"the server's {ADMIN_TOKEN_ENV_VAR} (locally both read "
            f"<state>/secrets/{ADMIN_TOKEN_FILE}; restart a server started before it existed)"
        )


def swap_model(
    url: str, version: str, model_name: str = DEFAULT_MODEL_NAME, timeout_s: float = 120.0, token: str | None = None
) -> dict[str, Any]:
    """Ask a running server (started with --allow-swap) to hot-swap to `version` of its artifact store.

    `token`: the server's admin token (default: `admin_token()`, the variable or this state folder's)."""
    response = httpx.post(
        f"{url}/admin/models/{model_name}/swap",
        json={"version": version},
        timeout=timeout_s,
        headers=admin_headers(token),
    )
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code in (404, 405) and "error" not in body:  # the route itself is absent
        raise ModelServerError(
            f"the model server at {url} has no hot-swap route: it was started without "
            f"--allow-swap (e.g. by an older `stack up`); restart it with --allow-swap or stop it"
        )
    _refused_token(url, response)
    if response.status_code != 200:
        raise ModelServerError(
            f"hot swap to {version} refused (HTTP {response.status_code}): {body.get('error', response.text[:300])}"
        )
    return body


def load_challenger(
    url: str, version: str, model_name: str = DEFAULT_MODEL_NAME, timeout_s: float = 120.0, token: str | None = None
) -> dict[str, Any]:
    """Ask a running server (started with --allow-swap) to serve `version` as `<model_name>_challenger`."""
    name = challenger_model_name(model_name)
    response = httpx.post(
        f"{url}/admin/models/{name}/load", json={"version": version}, timeout=timeout_s, headers=admin_headers(token)
    )
    _refused_token(url, response)
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.status_code in (404, 405) and "error" not in body:
        raise ModelServerError(
            f"the model server at {url} has no challenger route: it was started without "
            f"--allow-swap (e.g. by an older `stack up`); restart it (`lead-scoring stack down "
            f"model-server && lead-scoring stack up`)"
        )
    if response.status_code != 200:
        raise ModelServerError(
            f"challenger {version} refused (HTTP {response.status_code}): {body.get('error', response.text[:300])}"
        )
    return body


def unload_challenger(
    url: str, model_name: str = DEFAULT_MODEL_NAME, timeout_s: float = 30.0, token: str | None = None
) -> str | None:
    """Stop serving the challenger; returns the version that was served (None if none was)."""
    name = challenger_model_name(model_name)
    response = httpx.post(f"{url}/admin/models/{name}/unload", timeout=timeout_s, headers=admin_headers(token))
    _refused_token(url, response)
    if response.status_code != 200:
        raise ModelServerError(f"unloading the challenger refused (HTTP {response.status_code}): {response.text[:300]}")
    return response.json().get("unloaded")
