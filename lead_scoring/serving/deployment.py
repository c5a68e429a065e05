"""Putting a model version in service, whatever serves it: the `ModelServing` role, what a deployment returns
(`ModelDeployment`), and the smoke test every deployment ends with.

Each implementation (`serving.local`, `serving.cluster`, `serving.vertex`) puts the new version in service, sends
a known record through the served endpoint and checks the answer (version and score), and leaves the previous
version serving if any step fails (`DeploymentError` says which step and why).
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

import dagster as dg
import httpx

from lead_scoring.contract.samples import SMOKE_RECORD
from lead_scoring.storage.artifacts import ModelArtifact


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
