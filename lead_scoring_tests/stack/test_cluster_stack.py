"""The `cluster` profile on a real multi-node topology: 2 Kafka brokers, 2 Flink TaskManagers, 2 model-server
replicas, all started by the stack's own catalog (`StackConfig(kafka_brokers=2, taskmanagers=2,
model_replicas=2)`) on loopback, then driven only through the cluster profile's resources (settings from
the environment, nothing started by the profile itself).

What it proves: a new model version is deployed to both replicas (ClusterModelServing hot-swaps each and
smoke-tests each); the rendered CREATE MODEL lists both replicas and the statements run at parallelism 2
over both TaskManagers; every lead is scored once, by both replicas; and with one replica stopped the
other scores everything that follows (the kserve provider's failover).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from lead_scoring.services import local_stack as make_stack
from lead_scoring.serving.assets import model_deployment
from lead_scoring.serving.cluster import ClusterModelServing
from lead_scoring.serving.definitions import model_serving
from lead_scoring.serving.service import admin_token, replica_name, served_version
from lead_scoring.settings import Profile
from lead_scoring.stack.catalog import infrastructure
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import install
from lead_scoring.stack.stack import Stack
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.definitions import flink, kafka
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring_tests.serving.records import fit_model
from lead_scoring_tests.streaming.test_pipeline_stack import produce, read, records

pytestmark = pytest.mark.stack

PREFIX = "cl_"
NAMES = "cluster-test"


@dataclass
class Topology:
    stack: Stack
    cfg: StackConfig
    store: Path
    versions: list[str]

    @property
    def replicas(self) -> list[str]:
        return self.cfg.model_urls


def served_requests(url: str) -> float:
    """`request_predict_seconds_count` of the replica's own Prometheus metrics (kserve's, one per request)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.findall(r'^request_predict_seconds_count\{model_name="lead_scorer"\} ([0-9.e+]+)$', text, re.M)
    return float(found[0]) if found else 0.0


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    root = tmp_path_factory.mktemp("cluster-topology")
    # Sized for a 2-core / 24 GiB machine that may run another stack: small heaps, few slots per TaskManager.
    cfg = StackConfig.isolated(
        root,
        kafka_brokers=2,
        taskmanagers=2,
        model_replicas=2,
        kafka_heap="320m",
        jobmanager_memory="700m",
        taskmanager_memory="1024m",
        task_slots=6,
        sql_gateway_heap="320m",
        start_timeout_s=300.0,
    )
    install(cfg)
    repo = ArtifactRepository(
        LocalBlobs(root / "artifacts"), Profile.LOCAL
    )  # the replicas' shared store (<state root>/artifacts)
    v1 = repo.save(fit_model(n=300, seed=1), manifest={"trained_on": "cluster test v1"})
    time.sleep(1.1)  # versions are time-stamped to the second
    v2 = repo.save(fit_model(n=300, seed=2), manifest={"trained_on": "cluster test v2"})
    repo.set_production(v1.version)  # what the replicas start with
    stack = make_stack(cfg)
    try:
        stack.up([*infrastructure(cfg), *(replica_name(r) for r in range(1, cfg.model_replicas + 1))])
        yield Topology(stack, cfg, root / "artifacts", [v1.version, v2.version])
    finally:
        stack.down()


@pytest.fixture(scope="module")
def cluster_env(topology: Topology) -> Iterator[dict[str, str]]:
    env = {
        "LEAD_SCORING_PROFILE": "cluster",
        "LEAD_SCORING_KAFKA_BOOTSTRAP_SERVERS": topology.cfg.kafka_bootstrap,
        "LEAD_SCORING_SQL_GATEWAY_URL": topology.cfg.sql_gateway_url,
        "LEAD_SCORING_FLINK_REST_URL": topology.cfg.flink_rest_url,
        "LEAD_SCORING_MODEL_ENDPOINTS": ",".join(topology.replicas),
        "LEAD_SCORING_FLINK_PARALLELISM": "2",
        "LEAD_SCORING_TOPIC_PARTITIONS": "4",
        # the replicas' admin token, as an operator gives Dagster the one the replicas run with
        "LEAD_SCORING_MODEL_ADMIN_TOKEN": admin_token(topology.cfg.state.parent),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        yield env


@dataclass
class Deployed:
    kafka: KafkaResource
    flink: SqlGatewayFlink
    result: dg.ExecuteInMemoryResult


@pytest.fixture(scope="module")
def deployed(topology: Topology, cluster_env: dict[str, str]) -> Iterator[Deployed]:
    """v2 deployed through the cluster profile: model_deployment -> streaming_topics -> flink_statements."""
    resources: dict[str, Any] = {
        "kafka": kafka(Profile.CLUSTER),
        "flink": flink(Profile.CLUSTER),
        "model_serving": model_serving(Profile.CLUSTER),
        "model_store": LocalModelStore(root=str(topology.store)),
    }
    artifact = ArtifactRepository(LocalBlobs(topology.store), Profile.LOCAL).artifact(topology.versions[1])

    @dg.asset(name="model_artifact")
    def new_artifact() -> ModelArtifact:
        return artifact

    result = dg.materialize_to_memory(
        [new_artifact, model_deployment, streaming_topics, flink_statements],
        resources=resources,
        run_config={
            "ops": {
                "streaming_topics": {"config": {"topic_prefix": PREFIX}},
                "flink_statements": {
                    "config": {
                        "topic_prefix": PREFIX,
                        "statement_prefix": NAMES,
                        "group_prefix": NAMES,
                        "verify_timeout_s": 240.0,
                    }
                },
            }
        },
        raise_on_error=False,
    )
    engine = resources["flink"]
    try:
        yield Deployed(resources["kafka"], engine, result)
    finally:
        for jid in engine.running(NAMES + "-").values():
            engine.cancel_job(jid)


def test_the_profile_builds_cluster_resources_and_starts_nothing(
    topology: Topology, cluster_env: dict[str, str]
) -> None:
    before = {s.name: s.pid for s in topology.stack.status(health=False)}
    serving = model_serving(Profile.CLUSTER)
    assert isinstance(serving, ClusterModelServing) and serving.urls == topology.replicas
    assert flink(Profile.CLUSTER).parallelism == 2
    assert {s.name: s.pid for s in topology.stack.status(health=False)} == before


def test_a_new_version_reaches_both_replicas_and_both_task_managers(topology: Topology, deployed: Deployed) -> None:
    assert deployed.result.success, [str(e.event_specific_data) for e in deployed.result.all_events if e.is_failure]
    deployment = deployed.result.output_for_node("model_deployment")
    assert deployment.mode == "cluster-swap" and deployment.url == ",".join(topology.replicas)
    assert set(deployment.details["swapped"]) == set(topology.replicas)
    assert {served_version(url, "lead_scorer") for url in topology.replicas} == {topology.versions[1]}

    topics = deployed.kafka.admin().list_topics(timeout=30).topics
    assert len(topics[PREFIX + "input_raw"].partitions) == 4

    sql = deployed.result.asset_materializations_for_node("flink_statements")[0].metadata["rendered_sql"].value
    endpoints = ",".join(f"{u}/v1/models/lead_scorer:predict" for u in topology.replicas)
    assert f"'endpoint' = '{endpoints}'" in sql
    jobs = {
        j["name"]: j["jid"]
        for j in httpx.get(f"{topology.cfg.flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]
        if j["name"].startswith(NAMES) and j["state"] == "RUNNING"
    }
    assert len(jobs) == 4
    # Each operator's two subtasks run one on each TaskManager: a scale-out, not one TaskManager doing all the
    # work while the other idles (Flink's default fills the first TaskManager's slots; the stack asks for SLOTS).
    placement: dict[str, set[str]] = {}
    for name, jid in jobs.items():
        for vertex in httpx.get(f"{topology.cfg.flink_rest_url}/jobs/{jid}", timeout=10).json()["vertices"]:
            assert vertex["parallelism"] == 2
            detail = httpx.get(
                f"{topology.cfg.flink_rest_url}/jobs/{jid}/vertices/{vertex['id']}/taskmanagers", timeout=10
            ).json()
            placement[f"{name}/{vertex['name'][:40]}"] = {tm["taskmanager-id"] for tm in detail["taskmanagers"]}
    assert placement and all(hosts == {"taskmanager", "taskmanager-2"} for hosts in placement.values()), placement


def _scored_once(got: list[tuple[str, dict[str, Any]]], keys: set[str]) -> dict[str, dict[str, Any]]:
    counts = Counter(k for k, _ in got)
    assert keys <= set(counts), f"{len(keys - set(counts))} of {len(keys)} never scored"
    assert not [k for k, c in counts.items() if c > 1], "a lead was scored twice"
    return dict(got)


def test_leads_are_scored_by_both_replicas(topology: Topology, deployed: Deployed) -> None:
    before = {url: served_requests(url) for url in topology.replicas}
    leads = [
        dict(r, Id=f"CL{uuid.uuid4().hex[:6]}{i:05d}", _ObjectType="Lead") for i, r in enumerate(records(400, seed=11))
    ]
    # a steady trickle, so the provider sends many batches (round-robin spreads batches, not rows)
    produce(deployed.kafka, PREFIX + "input_raw", [(r["Id"], json.dumps(r).encode()) for r in leads], rate=100)
    scores = _scored_once(
        read(deployed.kafka, PREFIX + "lead_scores", {r["Id"] for r in leads}), {r["Id"] for r in leads}
    )
    assert {s["Lead_Score_Model__c"] for s in scores.values()} == {topology.versions[1]}
    after = {url: served_requests(url) for url in topology.replicas}
    assert all(after[url] > before[url] for url in topology.replicas), (before, after)


def test_scoring_goes_on_when_a_replica_is_stopped(topology: Topology, deployed: Deployed) -> None:
    survivor, stopped = topology.replicas
    topology.stack.down([replica_name(2)])  # gone for good: the supervisor does not bring it back
    assert served_version(stopped, "lead_scorer") is None
    before = served_requests(survivor)
    leads = [
        dict(r, Id=f"CF{uuid.uuid4().hex[:6]}{i:05d}", _ObjectType="Lead") for i, r in enumerate(records(300, seed=12))
    ]
    produce(deployed.kafka, PREFIX + "input_raw", [(r["Id"], json.dumps(r).encode()) for r in leads], rate=100)
    scores = _scored_once(
        read(deployed.kafka, PREFIX + "lead_scores", {r["Id"] for r in leads}), {r["Id"] for r in leads}
    )
    assert len(scores) == len(leads)
    assert served_requests(survivor) > before
    # the statements never failed over to a restart: the same jobs run
    health = {h.name: h.phase for h in deployed.flink.health(NAMES)}
    assert set(health.values()) == {"RUNNING"}, health
