"""The serving domain: the `model_deployment` asset and the `model_serving` resource of each profile."""

from __future__ import annotations

import dagster as dg

from lead_scoring.serving.assets import model_deployment
from lead_scoring.serving.cluster import ClusterModelServing
from lead_scoring.serving.deployment import ModelServing
from lead_scoring.serving.local import LocalModelServer
from lead_scoring.serving.vertex import VertexAIModelServing
from lead_scoring.settings import ClusterSettings, GcpSettings, Profile, load
from lead_scoring.stack.config import StackConfig


def model_serving(profile: Profile) -> ModelServing:
    if profile is Profile.GCP:
        return VertexAIModelServing(
            project=dg.EnvVar("LEAD_SCORING_GCP_PROJECT"),
            region=dg.EnvVar("LEAD_SCORING_GCP_REGION"),
            endpoint_id=dg.EnvVar("LEAD_SCORING_VERTEX_ENDPOINT"),
            image_uri=dg.EnvVar("LEAD_SCORING_SERVING_IMAGE"),
            parent_model=load(GcpSettings).vertex_parent_model,
            challenger_endpoint_id=load(GcpSettings).vertex_challenger_endpoint,
        )
    if profile is Profile.CLUSTER:
        return ClusterModelServing.from_settings(load(ClusterSettings))
    return LocalModelServer.for_stack(StackConfig.from_env())


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(assets=[model_deployment], resources={"model_serving": model_serving(profile)})
