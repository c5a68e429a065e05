"""The cluster profile's model serving: the user's own model-server replicas, hot-swapped one by one."""

from __future__ import annotations

import logging
from typing import Any, Optional

import httpx
from pydantic import Field

from lead_scoring.serving.deployment import (
    DeploymentError,
    Expected,
    ModelDeployment,
    ModelServing,
    smoke_test_v2,
)
from lead_scoring.serving.service import (
    ModelServerError,
    load_challenger,
    served_version,
    swap_model,
    unload_challenger,
)
from lead_scoring.settings import DEFAULT_MODEL_NAME, ClusterSettings, challenger_model_name
from lead_scoring.storage.artifacts import ModelArtifact

logger = logging.getLogger(__name__)


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
