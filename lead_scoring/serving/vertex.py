"""The gcp profile's model serving: the same server image as a Vertex AI custom container."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any, Optional

from pydantic import Field, PrivateAttr

from lead_scoring.serving.deployment import (
    DeploymentError,
    Expected,
    ModelDeployment,
    ModelServing,
    check_prediction,
)
from lead_scoring.settings import DEFAULT_MODEL_NAME, MANIFEST_PIN_ENV_VAR, challenger_model_name
from lead_scoring.storage.artifacts import SIGNATURE_FIELD, ModelArtifact, manifest_digest

logger = logging.getLogger(__name__)

# Vertex AI custom-container contract (the image reads these through AIP_* variables)
VERTEX_PREDICT_ROUTE = "/predict"
VERTEX_HEALTH_ROUTE = "/health"
VERTEX_PORT = 8080


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
