"""The local profile's model server: a service of the local stack on 127.0.0.1, hot-swapped to each version."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from lead_scoring.serving.deployment import (
    DeploymentError,
    Expected,
    ModelDeployment,
    ModelServing,
    smoke_test_v2,
)
from lead_scoring.serving.service import (
    MODEL_SERVER,
    ModelServerError,
    ModelServerService,
    admin_token,
    load_challenger,
    served_version,
    swap_model,
    unload_challenger,
)
from lead_scoring.settings import DEFAULT_MODEL_NAME, Profile, challenger_model_name
from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import StackError
from lead_scoring.stack.ports import port_open, port_owner
from lead_scoring.stack.stack import Stack
from lead_scoring.storage.artifacts import ModelArtifact, repository_for_uri

logger = logging.getLogger(__name__)


def _store_of(uri: str) -> str:
    repo, _ = repository_for_uri(uri, Profile.LOCAL)  # this server runs in the local profile only
    return repo.blobs.uri("")


class LocalModelServer(ModelServing):
    """The model server as a service of the local stack on 127.0.0.1, hot-swapped in place to each new version.

    The stack's supervisor runs it (and restarts it if it dies, with the model last deployed). A new
    version in the same artifact store is hot-swapped (the server loads and verifies it while the old one
    keeps answering, then switches); if the swap is refused or the smoke test fails, the server is swapped
    back and the asset fails. A server not running is started; one on another store is restarted (and the
    old one restarted again on failure).
    """

    host: str = Field(default="127.0.0.1", description="bind address (loopback only in the local profile)")
    port: int = Field(description="HTTP port of the model server (the stack's LEAD_SCORING_MODEL_PORT)")
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="name in the V1/V2 URLs")
    ready_timeout_s: float = Field(default=120.0, description="how long a starting server may take to be ready")
    state_path: Optional[str] = Field(default=None, description="stack state folder; default: the local stack's")

    @classmethod
    def for_stack(cls, cfg: StackConfig) -> LocalModelServer:
        return cls(host=cfg.host, port=cfg.model_port, model_name=cfg.model_name)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def describe(self) -> str:
        return f"local model server {self.url}"

    def stack(self) -> Stack:
        """The stack whose supervisor runs this server (a private one under `state_path`, for tests)."""
        overrides: dict[str, Any] = {
            "host": self.host,
            "model_port": self.port,
            "model_name": self.model_name,
            "start_timeout_s": self.ready_timeout_s,
        }
        if self.state_path:
            overrides["state_root"] = Path(self.state_path)
        cfg = StackConfig.from_env(**overrides)
        return Stack(Catalog(cfg, extensions=[ModelServerService(cfg)]))

    def token(self) -> str:
        """The admin token the stack gave its model server (`serving.service.admin_token`)."""
        return admin_token(self.stack().cfg.state.parent)

    def read_state(self) -> dict[str, Any]:
        """pid, serving version and artifact of the server, as its supervisor and the server itself report."""
        stack = self.stack()
        record = stack.files.record(MODEL_SERVER)
        args = stack.files.desired().get(MODEL_SERVER, {})
        return {
            "pid": record.pid if record else None,
            "version": served_version(self.url, self.model_name),
            "artifact_uri": args.get("artifact"),
            "url": self.url,
        }

    def _start(self, stack: Stack, artifact_uri: str) -> None:
        if stack.files.record(MODEL_SERVER) is None and port_open(self.host, self.port):
            raise DeploymentError(
                f"port {self.port} on {self.host} is taken by a process that is not our model "
                f"server ({port_owner(self.port)}); stop it or configure another port"
            )
        try:
            stack.up([MODEL_SERVER], args={MODEL_SERVER: {"artifact": artifact_uri}})
        except StackError as exc:
            raise DeploymentError(str(exc)) from None

    def deploy(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        stack = self.stack()
        previous = served_version(self.url, self.model_name)
        serving_uri = stack.files.desired().get(MODEL_SERVER, {}).get("artifact")
        same_store = serving_uri is None or _store_of(serving_uri) == _store_of(artifact.uri)

        if previous is None:
            mode = "started"
            stack.down([MODEL_SERVER])  # ours but not answering: replace it
            self._start(stack, artifact.uri)
            try:
                score, latency = smoke_test_v2(self.url, self.model_name, expected)
            except DeploymentError:
                stack.down([MODEL_SERVER])
                raise
        elif same_store:
            mode = "hot-swap"
            try:
                swap_model(self.url, artifact.version, self.model_name, token=self.token())
            except ModelServerError as exc:
                raise DeploymentError(f"{exc}; version {previous} keeps serving") from None
            try:
                score, latency = smoke_test_v2(self.url, self.model_name, expected)
            except DeploymentError as exc:
                self._rollback_swap(previous)
                raise DeploymentError(f"{exc}; rolled back to {previous}") from None
            stack.set_args(MODEL_SERVER, artifact=artifact.uri)  # a restart after a crash serves this version
        else:
            # a server of another artifact store: restart on the new one; restart the old one on failure
            mode = "restarted"
            stack.down([MODEL_SERVER])
            try:
                self._start(stack, artifact.uri)
                score, latency = smoke_test_v2(self.url, self.model_name, expected)
            except DeploymentError as exc:
                stack.down([MODEL_SERVER])
                self._start(stack, str(serving_uri))
                raise DeploymentError(f"{exc}; restarted {previous}") from None
        logger.info("model %s serving at %s (%s, previous %s)", artifact.version, self.url, mode, previous)
        return ModelDeployment(
            url=self.url,
            model_name=self.model_name,
            version=artifact.version,
            previous_version=previous,
            smoke_score=score,
            smoke_latency_ms=round(latency, 2),
            mode=mode,
            details={"pid": self.read_state().get("pid"), "log": str(stack.log_path(MODEL_SERVER))},
        )

    @property
    def challenger_name(self) -> str:
        return challenger_model_name(self.model_name)

    def challenger_version(self) -> Optional[str]:
        return served_version(self.url, self.challenger_name)

    def deploy_challenger(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        """Load `artifact` into the running server as `<model_name>_challenger` (same artifact store as the
        champion), smoke-test it under that name, and remember it so a restarted server serves it again."""
        stack = self.stack()
        champion = served_version(self.url, self.model_name)
        if champion is None:
            raise DeploymentError(
                f"no champion is serving at {self.url}: deploy a model first "
                "(materialize model_deployment), then the challenger next to it"
            )
        serving_uri = stack.files.desired().get(MODEL_SERVER, {}).get("artifact")
        if serving_uri is not None and _store_of(serving_uri) != _store_of(artifact.uri):
            raise DeploymentError(
                f"the challenger {artifact.uri} is not in the artifact store the server loads "
                f"from ({_store_of(serving_uri)}); save it there (model_artifact) first"
            )
        previous = self.challenger_version()
        try:
            load_challenger(self.url, artifact.version, self.model_name, token=self.token())
        except ModelServerError as exc:
            raise DeploymentError(f"{exc}; champion {champion} keeps serving") from None
        try:
            score, latency = smoke_test_v2(self.url, self.challenger_name, expected)
        except DeploymentError as exc:
            try:
                if previous:
                    load_challenger(self.url, previous, self.model_name, token=self.token())
                else:
                    unload_challenger(self.url, self.model_name, token=self.token())
            except ModelServerError as undo:
                logger.error("could not restore the previous challenger %s: %s", previous, undo)
            raise DeploymentError(
                f"challenger {artifact.version}: {exc}; "
                f"{'challenger ' + previous if previous else 'no challenger'} serving"
            ) from None
        stack.set_args(MODEL_SERVER, challenger=artifact.version)  # a restarted server serves it again
        logger.info("challenger %s serving at %s next to champion %s", artifact.version, self.url, champion)
        return ModelDeployment(
            url=self.url,
            model_name=self.challenger_name,
            version=artifact.version,
            previous_version=previous,
            smoke_score=score,
            smoke_latency_ms=round(latency, 2),
            mode="challenger",
            details={"champion": champion},
        )

    def retire_challenger(self) -> Optional[str]:
        stack = self.stack()
        retired = None
        if served_version(self.url, self.model_name) is not None:
            try:
                retired = unload_challenger(self.url, self.model_name, token=self.token())
            except ModelServerError as exc:
                raise DeploymentError(str(exc)) from None
        stack.set_args(MODEL_SERVER, challenger=None)
        return retired

    def _rollback_swap(self, previous: str) -> None:
        try:
            swap_model(self.url, previous, self.model_name, token=self.token())
        except ModelServerError as exc:  # the bad version keeps serving: say so loudly
            logger.error("ROLLBACK FAILED: could not swap back to %s: %s", previous, exc)
            raise DeploymentError(f"rollback to {previous} failed too: {exc}") from None

    def stop(self) -> None:
        self.stack().down([MODEL_SERVER])
