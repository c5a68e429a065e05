"""Where the model is served: a local server process (local profile), the user's own model-server replicas
(cluster profile) or a Vertex AI endpoint (gcp).

Both implement `ModelServing.deploy(artifact, expected)`: put the new version in service, send a known
record through the served endpoint and check the answer (version and score), and leave the previous
version serving if any step fails (`DeploymentError` says which step and why).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from lead_scoring.contract.samples import SMOKE_RECORD
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
from lead_scoring.settings import DEFAULT_MODEL_NAME, MANIFEST_PIN_ENV_VAR, ClusterSettings, challenger_model_name
from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import StackError
from lead_scoring.stack.ports import port_open, port_owner
from lead_scoring.stack.stack import Stack
from lead_scoring.storage.artifacts import SIGNATURE_FIELD, ModelArtifact, manifest_digest, repository_for_uri

logger = logging.getLogger(__name__)

# Vertex AI custom-container contract (the image reads these through AIP_* variables)
VERTEX_PREDICT_ROUTE = "/predict"
VERTEX_HEALTH_ROUTE = "/health"
VERTEX_PORT = 8080


class DeploymentError(RuntimeError):
    """The new version is not serving; the previous one (if any) still is. The message says why."""


@dataclass(frozen=True)
class Expected:
    """What the served endpoint must answer for `SMOKE_RECORD`."""

    version: str
    score: int
    record: dict[str, Any] = field(default_factory=lambda: dict(SMOKE_RECORD))


@dataclass(frozen=True)
class ModelDeployment:
    """A model version in service: what `model_deployment` outputs and `flink_statements` points the stream at."""

    url: str  # the server's base URL (local) or the endpoint's :predict URL (Vertex AI)
    model_name: str
    version: str
    previous_version: Optional[str]
    smoke_score: int
    smoke_latency_ms: float
    mode: str  # started | hot-swap | restarted | vertex-canary
    details: dict[str, Any] = field(default_factory=dict)


def check_prediction(prediction: Any, expected: Expected, where: str) -> int:
    """Compare one served prediction with the expectation; returns the score."""
    if not isinstance(prediction, dict) or "score" not in prediction:
        raise DeploymentError(f"{where}: smoke test got no score: {str(prediction)[:300]}")
    if isinstance(prediction["score"], float) and prediction["score"].is_integer():
        prediction = {**prediction, "score": int(prediction["score"])}  # Vertex AI: numbers arrive as doubles
    if prediction.get("model_version") != expected.version:
        raise DeploymentError(
            f"{where}: smoke test answered by version {prediction.get('model_version')!r}, "
            f"expected {expected.version!r}"
        )
    if prediction["score"] != expected.score:
        raise DeploymentError(
            f"{where}: smoke test score {prediction['score']} != {expected.score} computed from the artifact"
        )
    if not isinstance(prediction.get("reasons"), list):
        raise DeploymentError(f"{where}: smoke test answer has no reasons list")
    return int(prediction["score"])


def smoke_test_v2(url: str, model_name: str, expected: Expected, timeout: float = 10.0) -> tuple[int, float]:
    """Send the known record exactly as Flink's triton provider does; returns (score, latency ms)."""
    body = {
        "inputs": [{"name": "RECORD", "datatype": "BYTES", "shape": [1], "data": [json.dumps(expected.record)]}],
        "outputs": [{"name": "SCORE"}],
    }
    start = time.perf_counter()
    try:
        response = httpx.post(f"{url}/v2/models/{model_name}/versions/latest/infer", json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        raise DeploymentError(f"smoke test could not reach {url}: {type(exc).__name__}: {exc}") from None
    latency_ms = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise DeploymentError(f"smoke test got HTTP {response.status_code}: {response.text[:300]}")
    try:
        prediction = json.loads(response.json()["outputs"][0]["data"][0])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise DeploymentError(f"smoke test could not read the V2 answer ({exc}): {response.text[:300]}") from None
    return check_prediction(prediction, expected, url), latency_ms


class ModelServing(dg.ConfigurableResource, ABC):
    """Puts a model artifact in service: a local server (LocalModelServer) or a Vertex AI endpoint."""

    @abstractmethod
    def deploy(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        """Serve `artifact`, smoke-test it against `expected`; on any failure the previous version keeps serving."""

    @abstractmethod
    def describe(self) -> str:
        """Where it serves, for logs and metadata."""

    @abstractmethod
    def deploy_challenger(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        """Serve `artifact` as the challenger next to the champion (shadow scoring), smoke-tested; the champion
        is never touched, and a failed challenger leaves the previous one (if any) serving."""

    @abstractmethod
    def retire_challenger(self) -> Optional[str]:
        """Stop serving the challenger; returns its version (None when none was served). Idempotent."""

    @abstractmethod
    def challenger_version(self) -> Optional[str]:
        """The version served as challenger now, or None."""


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


class ClusterModelServing(ModelServing):
    """Model-server replicas the user runs (the `cluster` profile): we start nothing, we deploy to them.

    Every replica runs our server with `--allow-swap` on one shared artifact store (a gs:// bucket, or a
    folder every replica sees). A deployment hot-swaps each replica in turn to the new version through its
    admin route (the replica loads and verifies the artifact while the old version keeps answering), then
    sends the smoke record to it; a replica already serving the version is only smoke-tested. If any
    replica refuses the swap, cannot be reached or answers wrong, the replicas swapped so far are swapped
    back and `DeploymentError` names the replica: the old version keeps serving everywhere. The deployment's
    `url` lists every replica (comma-separated), so the rendered CREATE MODEL reaches all of them.
    """

    endpoints: str = Field(
        description="comma-separated base URLs of the model-server replicas (LEAD_SCORING_MODEL_ENDPOINTS)"
    )
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="name in the V1/V2 URLs")
    swap_timeout_s: float = Field(default=120.0, description="how long one replica may take to load a version")

    @classmethod
    def from_settings(cls, settings: ClusterSettings) -> ClusterModelServing:
        return cls(endpoints=",".join(settings.endpoints))

    @property
    def urls(self) -> list[str]:
        urls = [e.strip().rstrip("/") for e in self.endpoints.split(",") if e.strip()]
        if not urls:
            raise DeploymentError(
                "no model-server replica configured: set LEAD_SCORING_MODEL_ENDPOINTS to their "
                "base URLs, comma-separated (e.g. http://10.0.0.5:8080,http://10.0.0.6:8080)"
            )
        return urls

    def describe(self) -> str:
        return f"{len(self.urls)} model-server replica(s) {', '.join(self.urls)}"

    def read_state(self) -> dict[str, Optional[str]]:
        """The version each replica serves (None: not answering)."""
        return {url: served_version(url, self.model_name) for url in self.urls}

    def deploy(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        before = self.read_state()
        down = [url for url, version in before.items() if version is None]
        if down:
            raise DeploymentError(
                f"model-server replica(s) {', '.join(down)} not serving {self.model_name}; "
                f"nothing was changed (start them, or fix LEAD_SCORING_MODEL_ENDPOINTS)"
            )
        swapped: list[str] = []
        smoke: dict[str, dict[str, Any]] = {}
        try:
            for url in self.urls:
                if before[url] != artifact.version:
                    try:
                        swap_model(url, artifact.version, self.model_name, timeout_s=self.swap_timeout_s)
                    except (ModelServerError, httpx.HTTPError) as exc:
                        raise DeploymentError(f"replica {url}: {exc}") from None
                    swapped.append(url)
                score, latency = smoke_test_v2(url, self.model_name, expected)
                smoke[url] = {"score": score, "latency_ms": round(latency, 2), "previous": before[url]}
        except DeploymentError as exc:
            failed = self._roll_back(swapped, before)
            raise DeploymentError(
                f"{exc}; "
                + (f"swapped back {', '.join(swapped)}" if not failed else f"ROLLBACK FAILED on {', '.join(failed)}")
            ) from None
        previous = sorted({v for v in before.values() if v and v != artifact.version})
        first = smoke[self.urls[0]]
        logger.info("model %s serving on %d replica(s) (swapped %d)", artifact.version, len(self.urls), len(swapped))
        return ModelDeployment(
            url=",".join(self.urls),
            model_name=self.model_name,
            version=artifact.version,
            previous_version=previous[0] if len(previous) == 1 else (",".join(previous) or None),
            smoke_score=first["score"],
            smoke_latency_ms=first["latency_ms"],
            mode="cluster-swap" if swapped else "cluster-verified",
            details={"replicas": smoke, "swapped": swapped},
        )

    # ---- the challenger, on every replica (shadow scoring) ------------------------------------------

    @property
    def challenger_name(self) -> str:
        return challenger_model_name(self.model_name)

    def challenger_version(self) -> Optional[str]:
        versions = {served_version(url, self.challenger_name) for url in self.urls}
        if len(versions) > 1:
            logger.warning("replicas serve different challengers: %s", sorted(map(str, versions)))
            return None
        return versions.pop()

    def deploy_challenger(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        """Load `artifact` as `<model_name>_challenger` on every replica, smoke-test each; on any failure every
        replica touched gets its previous challenger back (or none). The champions are never touched."""
        champions = self.read_state()
        missing = [url for url, version in champions.items() if version is None]
        if missing:
            raise DeploymentError(
                f"no champion is serving at {', '.join(missing)}: deploy a model first "
                "(materialize model_deployment), then the challenger next to it"
            )
        previous = {url: served_version(url, self.challenger_name) for url in self.urls}
        touched: list[str] = []
        smoke: dict[str, dict[str, Any]] = {}
        try:
            for url in self.urls:
                touched.append(url)
                try:
                    load_challenger(url, artifact.version, self.model_name, timeout_s=self.swap_timeout_s)
                except (ModelServerError, httpx.HTTPError) as exc:
                    raise DeploymentError(f"replica {url}: {exc}") from None
                score, latency = smoke_test_v2(url, self.challenger_name, expected)
                smoke[url] = {"score": score, "latency_ms": round(latency, 2)}
        except DeploymentError as exc:
            for url in touched:
                try:
                    if previous[url]:
                        load_challenger(url, str(previous[url]), self.model_name, timeout_s=self.swap_timeout_s)
                    else:
                        unload_challenger(url, self.model_name)
                except (ModelServerError, httpx.HTTPError) as undo:
                    logger.error(
                        "replica %s: could not restore its previous challenger %s: %s", url, previous[url], undo
                    )
            raise DeploymentError(
                f"challenger {artifact.version}: {exc}; the replicas' previous challengers restored"
            ) from None
        first = smoke[self.urls[0]]
        olds = sorted({v for v in previous.values() if v})
        return ModelDeployment(
            url=",".join(self.urls),
            model_name=self.challenger_name,
            version=artifact.version,
            previous_version=",".join(olds) or None,
            smoke_score=first["score"],
            smoke_latency_ms=first["latency_ms"],
            mode="challenger",
            details={"champions": champions, "replicas": smoke},
        )

    def retire_challenger(self) -> Optional[str]:
        retired: set[str] = set()
        for url in self.urls:
            if served_version(url, self.model_name) is None:
                continue  # not answering: it serves no challenger after its restart either
            try:
                version = unload_challenger(url, self.model_name)
            except (ModelServerError, httpx.HTTPError) as exc:
                raise DeploymentError(f"replica {url}: {exc}") from None
            if version:
                retired.add(version)
        return ",".join(sorted(retired)) or None

    def _roll_back(self, swapped: list[str], before: dict[str, Optional[str]]) -> list[str]:
        failed = []
        for url in swapped:
            previous = before.get(url)
            try:
                if previous:
                    swap_model(url, previous, self.model_name, timeout_s=self.swap_timeout_s)
            except (ModelServerError, httpx.HTTPError) as exc:
                logger.error("ROLLBACK FAILED: replica %s could not swap back to %s: %s", url, previous, exc)
                failed.append(url)
        return failed


def _store_of(uri: str) -> str:
    repo, _ = repository_for_uri(uri)
    return repo.blobs.uri("")


class VertexAIModelServing(ModelServing):
    """The same server image as a Vertex AI custom container: new model version, canary, promote.

    Steps: `Model.upload` (a new version under `parent_model`, our image, `artifact_uri`, the AIP routes);
    `Endpoint.deploy` with `canary_percent` of the traffic (100 on an empty endpoint); wait `canary_seconds`;
    promote (traffic 100 to the new deployed model); smoke test through `Endpoint.predict`; undeploy the
    old deployed models. Any failure after the deploy restores the old traffic split and undeploys the new.

    The challenger (shadow scoring) is served by its OWN endpoint (`challenger_endpoint_id`), not as a second
    deployed model without traffic on the champion's: an endpoint's `:predict` routes by traffic split only,
    and Confluent's Vertex AI connection (one per endpoint) can call nothing else, so the shadow statements
    need an endpoint whose every request reaches the challenger. Same steps, 100% traffic, no canary.
    """

    project: str = Field(description="GCP project")
    region: str = Field(default="us-central1", description="Vertex AI region")
    endpoint_id: str = Field(description="Vertex AI endpoint id or resource name")
    image_uri: str = Field(
        description="our model server image, e.g. REGION-docker.pkg.dev/PROJECT/REPO/lead-scoring:TAG"
    )
    parent_model: Optional[str] = Field(default=None, description="Model Registry model that gets the new version")
    model_display_name: str = Field(default="lead-scorer")
    model_name: str = Field(default=DEFAULT_MODEL_NAME)
    canary_percent: int = Field(default=10, ge=1, le=100, description="traffic share of the new version while canary")
    canary_seconds: float = Field(default=0.0, ge=0, description="how long the canary runs before promotion")
    machine_type: str = Field(default="n1-standard-2")
    min_replicas: int = Field(default=1, ge=1)
    max_replicas: int = Field(default=2, ge=1)
    service_account: Optional[str] = Field(default=None, description="service account the container runs as")
    challenger_endpoint_id: Optional[str] = Field(
        default=None, description="Vertex AI endpoint serving the challenger (LEAD_SCORING_VERTEX_CHALLENGER_ENDPOINT)"
    )

    def describe(self) -> str:
        return f"Vertex AI endpoint {self.endpoint_id} ({self.project}/{self.region})"

    _client_options: dict[str, Any] = PrivateAttr(default_factory=dict)

    def with_client_options(self, **options: Any) -> VertexAIModelServing:
        """For tests: extra `aiplatform.init` arguments (credentials, api_endpoint of a loopback fake)."""
        self._client_options = dict(options)
        return self

    def aiplatform(self) -> Any:
        """The `google.cloud.aiplatform` module, initialised for this project and region."""
        from google.cloud import aiplatform

        aiplatform.init(project=self.project, location=self.region, **self._client_options)
        return aiplatform

    def upload_kwargs(self, artifact: ModelArtifact) -> dict[str, Any]:
        """`aiplatform.Model.upload(...)` arguments for `artifact` (also what `lead-scoring plan` prints)."""
        return dict(
            display_name=self.model_display_name,
            parent_model=self.parent_model,
            is_default_version=False,
            version_aliases=[artifact.version],
            version_description=f"lead_scoring {artifact.version} sha256 {artifact.sha256[:12]}",
            artifact_uri=artifact.uri,
            serving_container_image_uri=self.image_uri,
            serving_container_predict_route=VERTEX_PREDICT_ROUTE,
            serving_container_health_route=VERTEX_HEALTH_ROUTE,
            serving_container_ports=[VERTEX_PORT],
            serving_container_environment_variables=self.container_env(artifact),
            labels={"lead_scoring_version": artifact.version},
            sync=True,
        )

    def container_env(self, artifact: ModelArtifact) -> dict[str, str]:
        """The container's environment: no secret. The signing key stays in Secret Manager; the container gets
        the digest of the signed manifest this deployment verified, and loads nothing else."""
        env = {"LEAD_SCORING_PROFILE": "gcp", "LEAD_SCORING_MODEL_NAME": self.model_name}
        if SIGNATURE_FIELD in artifact.manifest:
            env[MANIFEST_PIN_ENV_VAR] = manifest_digest(artifact.manifest)
        return env

    def deploy_kwargs(self, artifact: ModelArtifact, traffic_percentage: int) -> dict[str, Any]:
        """`Endpoint.deploy(model=..., ...)` arguments besides the model."""
        return dict(
            deployed_model_display_name=f"{self.model_display_name}-{artifact.version}",
            traffic_percentage=traffic_percentage,
            machine_type=self.machine_type,
            min_replica_count=self.min_replicas,
            max_replica_count=self.max_replicas,
            service_account=self.service_account,
            sync=True,
        )

    def endpoint_url(self, endpoint_resource_name: Optional[str] = None) -> str:
        """The endpoint's REST URL (Confluent's Vertex AI connection takes it and appends :predict itself)."""
        name = endpoint_resource_name or (
            self.endpoint_id
            if self.endpoint_id.startswith("projects/")
            else f"projects/{self.project}/locations/{self.region}/endpoints/{self.endpoint_id}"
        )
        return f"https://{self.region}-aiplatform.googleapis.com/v1/{name}"

    def deploy(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        return self._deploy_to(
            self.endpoint_id, artifact, expected, canary_percent=self.canary_percent, mode="vertex-canary"
        )

    def _challenger_endpoint(self) -> str:
        if not self.challenger_endpoint_id:
            raise DeploymentError(
                "no challenger endpoint: create a second Vertex AI endpoint and set "
                "LEAD_SCORING_VERTEX_CHALLENGER_ENDPOINT to its id (docs/lifecycle.md)"
            )
        return self.challenger_endpoint_id

    def deploy_challenger(self, artifact: ModelArtifact, expected: Expected) -> ModelDeployment:
        deployment = self._deploy_to(
            self._challenger_endpoint(), artifact, expected, canary_percent=100, mode="vertex-challenger"
        )
        return replace(deployment, model_name=challenger_model_name(self.model_name))

    def retire_challenger(self) -> Optional[str]:
        if not self.challenger_endpoint_id:
            return None
        endpoint = self.aiplatform().Endpoint(self.challenger_endpoint_id)
        split = dict(endpoint.traffic_split or {})
        retired = _deployed_version(endpoint, split, self.model_display_name)
        ids = sorted(split, key=lambda key: -split[key])
        if len(ids) > 1:  # Vertex refuses to undeploy a model that still has traffic while others exist
            endpoint.update(traffic_split={ids[0]: 100, **dict.fromkeys(ids[1:], 0)})
        for deployed_id in [*ids[1:], *ids[:1]]:
            endpoint.undeploy(deployed_model_id=deployed_id, sync=True)
        return retired

    def challenger_version(self) -> Optional[str]:
        if not self.challenger_endpoint_id:
            return None
        endpoint = self.aiplatform().Endpoint(self.challenger_endpoint_id)
        return _deployed_version(endpoint, dict(endpoint.traffic_split or {}), self.model_display_name)

    def _deploy_to(
        self, endpoint_id: str, artifact: ModelArtifact, expected: Expected, canary_percent: int, mode: str
    ) -> ModelDeployment:
        if not artifact.uri.startswith("gs://"):
            raise DeploymentError(f"Vertex AI needs the artifact on GCS; got {artifact.uri}")
        aip = self.aiplatform()
        endpoint = aip.Endpoint(endpoint_id)
        before = dict(endpoint.traffic_split or {})
        previous = _deployed_version(endpoint, before, self.model_display_name)
        try:
            model = aip.Model.upload(**self.upload_kwargs(artifact))
        except Exception as exc:
            raise DeploymentError(f"Model.upload failed: {exc}; endpoint unchanged") from exc
        canary = 100 if not before else canary_percent
        new_id: Optional[str] = None
        try:
            endpoint.deploy(model=model, **self.deploy_kwargs(artifact, canary))
            new_ids = [i for i in (endpoint.traffic_split or {}) if i not in before]
            if len(new_ids) != 1:
                raise DeploymentError(f"could not find the new deployed model in {endpoint.traffic_split}")
            new_id = new_ids[0]
            if before and canary < 100 and self.canary_seconds:
                time.sleep(self.canary_seconds)
            if before:
                endpoint.update(traffic_split={new_id: 100, **dict.fromkeys(before, 0)})
            start = time.perf_counter()
            response = endpoint.predict(instances=[expected.record])
            latency = (time.perf_counter() - start) * 1000
            score = check_prediction(
                response.predictions[0] if response.predictions else None, expected, f"endpoint {endpoint_id}"
            )
        except Exception as exc:
            self._rollback(endpoint, before, new_id)
            raise DeploymentError(
                f"Vertex AI deployment of {artifact.version} failed: {exc}; traffic restored to {before or 'nothing'}"
            ) from exc
        for old in before:
            endpoint.undeploy(deployed_model_id=old, sync=True)
        url = f"{self.endpoint_url(endpoint.resource_name)}:predict"
        return ModelDeployment(
            url=url,
            model_name=self.model_name,
            version=artifact.version,
            previous_version=previous,
            smoke_score=score,
            smoke_latency_ms=round(latency, 2),
            mode=mode,
            details={
                "model": model.resource_name,
                "deployed_model_id": new_id,
                "canary_percent": canary,
                "undeployed": list(before),
            },
        )

    @staticmethod
    def _rollback(endpoint: Any, before: dict[str, int], new_id: Optional[str]) -> None:
        try:
            if before:
                endpoint.update(traffic_split=before)
            if new_id:
                endpoint.undeploy(deployed_model_id=new_id, sync=True)
        except Exception as exc:
            logger.error("Vertex AI rollback incomplete (restore traffic %s, undeploy %s): %s", before, new_id, exc)


def _deployed_version(endpoint: Any, split: dict[str, int], display_prefix: str) -> Optional[str]:
    """Version of the deployed model with the most traffic (its display name is `<prefix>-<version>`)."""
    if not split:
        return None
    top = max(split, key=lambda key: split[key])
    for deployed in endpoint.list_models():
        if deployed.id == top:
            name = getattr(deployed, "display_name", "") or ""
            return name[len(display_prefix) + 1 :] if name.startswith(display_prefix + "-") else name
    return None
