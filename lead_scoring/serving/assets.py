"""The `model_deployment` asset: the gated artifact put in service, smoke-tested, with rollback."""

import dagster as dg

from lead_scoring.contract.samples import SMOKE_RECORD
from lead_scoring.serving.deployment import DeploymentError, Expected, ModelDeployment, ModelServing
from lead_scoring.storage.artifacts import ModelArtifact, key_id
from lead_scoring.storage.resources import ModelStore
from lead_scoring.training.model import LeadScorer

GROUP = "serving"
OWNERS = ["team:ml-platform"]


def expected_for(model_store: ModelStore, artifact: ModelArtifact) -> Expected:
    """The answer the served model must give for the smoke record, computed from the verified artifact."""
    pipeline, manifest = model_store.repository().load(artifact.version)  # signature and sha256 verified
    score = LeadScorer.from_manifest(pipeline, manifest).score_records([SMOKE_RECORD])[0]
    return Expected(version=artifact.version, score=score.score)


@dg.asset(
    group_name=GROUP,
    kinds={"kserve", "python"},
    owners=OWNERS,
    ins={"model_artifact": dg.AssetIn()},
)
def model_deployment(
    context: dg.AssetExecutionContext,
    model_artifact: ModelArtifact,
    model_store: ModelStore,
    model_serving: ModelServing,
) -> dg.Output[ModelDeployment]:
    """The new model artifact serving (local KServe process or Vertex AI endpoint), smoke-tested, with rollback."""
    expected = expected_for(model_store, model_artifact)
    context.log.info(f"deploying {model_artifact.version} to {model_serving.describe()}")
    try:
        result = model_serving.deploy(model_artifact, expected)
    except DeploymentError as exc:
        raise dg.Failure(
            description=f"deployment of {model_artifact.version} failed: {exc}",
            metadata={"model_version": model_artifact.version, "target": model_serving.describe()},
        ) from exc
    # the champion/challenger gate and `stack up` read what is serving from this pointer
    model_store.repository().set_production(model_artifact.version)
    return dg.Output(
        result,
        metadata={
            "endpoint_url": dg.MetadataValue.url(result.url),
            "model_name": result.model_name,
            "model_version": result.version,
            "previous_version": result.previous_version or "",
            "mode": result.mode,
            "smoke_test_score": result.smoke_score,
            "smoke_test_latency_ms": result.smoke_latency_ms,
            "artifact_uri": model_artifact.uri,
            # which key verified the artifact's signature (an id: the first 8 hex of its sha256, never the key)
            "artifact_signing_key_id": key_id(model_store.repository().signing_key()),
        },
    )
