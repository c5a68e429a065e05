"""The latency probe and the topic sensor against the REAL pipeline: Flink SQL statements on the session's
Flink cluster scoring with our model server, on this test's own topics, groups and statement names."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest

from lead_scoring.monitoring import sensors
from lead_scoring.monitoring.latency import run_probe
from lead_scoring.monitoring.resources import MonitoringSettings
from lead_scoring.monitoring.streams import CONSUMER_LAG_CHECK
from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.settings import project_root
from lead_scoring.stack.ports import free_ports
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline
from lead_scoring.streaming.rollout import rollout
from lead_scoring.streaming.topics import INPUT_RAW, LEAD_SCORES, TOPICS
from lead_scoring.training import assets as training
from lead_scoring.warehouse.resources import DuckDBWarehouse

pytestmark = pytest.mark.stack

MODEL_NAME = "lead_scorer"


def test_latency_slo_through_the_real_flink_pipeline(local_stack, tmp_path: Path):
    # a model trained on the shipped sample, served by our model server
    resources = {
        "warehouse": DuckDBWarehouse(path=str(tmp_path / "wh.duckdb")),
        "model_store": LocalModelStore(root=str(tmp_path / "artifacts")),
    }
    trained = dg.materialize(
        [training.crm_leads_raw, training.training_data, training.lead_scoring_model, training.model_artifact],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
    )
    artifact = trained.output_for_node("model_artifact")
    [port] = free_ports(1)
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "model-server.log"
    server = ModelServerProcess(artifact.uri, port=port, log_path=log_path, model_name=MODEL_NAME)
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    uid = uuid.uuid4().hex[:6]
    settings = RenderSettings(
        dialect=Dialect.FLINK,
        model_version=artifact.version,
        model_endpoint=f"{url}/v1/models/{MODEL_NAME}:predict",
        kafka_bootstrap=local_stack.kafka_bootstrap,
        topic_prefix=f"lat{uid}_",
        statement_prefix=f"lat{uid}",
        group_prefix=f"lat{uid}",
        server_model_name=MODEL_NAME,
        # Flink commits the sources' offsets to their groups on each checkpoint: the lag check below waits for one
        checkpoint_interval="5 s",
    )
    engine = flink
    pipeline = render_pipeline(settings)
    try:
        server.start()
        admin = kafka.admin()
        ensure_topics(admin, TOPICS, prefix=settings.topic_prefix)
        rollout(engine, pipeline, verify_timeout_s=180)
        source, scores = settings.topic(INPUT_RAW), settings.topic(LEAD_SCORES)

        # warm-up: the first record through freshly started jobs pays for their start-up
        warm = run_probe(kafka, source, scores, count=1, timeout_s=120)
        assert warm.received == 1, "the pipeline never scored the warm-up probe"

        monitoring = MonitoringSettings(
            input_topic=source, scores_topic=scores, probe_count=5, probe_timeout_s=45, latency_slo_s=10.0
        )
        sensor = sensors.make_e2e_latency_sensor(interval_s=60)
        result = sensor(dg.build_sensor_context(resources={"kafka": kafka, "monitoring": monitoring}))
        [observation] = [e for e in result.asset_events if isinstance(e, dg.AssetObservation)]
        [check] = [e for e in result.asset_events if isinstance(e, dg.AssetCheckEvaluation)]
        assert observation.metadata["probes_scored"].value == 5
        p50, worst = observation.metadata["latency_p50_s"].value, observation.metadata["latency_max_s"].value
        assert 0 < p50 <= worst
        assert check.check_name == "latency_slo" and check.passed, check.description
        artifacts = project_root() / "test-artifacts"
        artifacts.mkdir(exist_ok=True)
        (artifacts / "latency-real-pipeline.json").write_text(
            json.dumps(
                {"p50_s": p50, "max_s": worst, "probes": 5, "slo_s": 10.0, "summary": check.description}, indent=1
            )
        )

        # the topic sensor sees the probes' traffic, and the statements' consumer groups catch up
        # (Flink commits its source offsets to the group on each checkpoint)
        group_topics = {}
        for st in pipeline.statements.values():
            for table in st.reads:
                group_topics.setdefault(st.group_id(settings, table), []).append(pipeline.tables[table].topic_name)
        watch = MonitoringSettings(
            topics=[settings.topic(t.name) for t in TOPICS],
            consumer_groups=sorted(group_topics),
            group_topics=group_topics,
            dlq_topic=settings.topic("dlq"),
            max_consumer_lag=0,
        )
        deadline = time.monotonic() + 90
        while True:
            tick = sensors.streaming_topics_sensor(
                dg.build_sensor_context(resources={"kafka": kafka, "monitoring": watch})
            )
            lag = {
                e.asset_key.path[-1]: e
                for e in tick.asset_events
                if isinstance(e, dg.AssetCheckEvaluation) and e.check_name == CONSUMER_LAG_CHECK
            }
            if all(e.passed for e in lag.values()) or time.monotonic() > deadline:
                break
            time.sleep(3)
        ends = {
            e.asset_key.path[-1]: e.metadata["end_offset"].value
            for e in tick.asset_events
            if isinstance(e, dg.AssetObservation)
        }
        assert ends[source] >= 6 and ends[scores] >= 6
        assert set(lag) == {source, settings.topic("input_avro"), settings.topic("leads"), settings.topic("contacts")}
        assert all(e.passed and e.severity == dg.AssetCheckSeverity.ERROR for e in lag.values()), {
            t: e.description for t, e in lag.items()
        }
    finally:
        for name, ident in engine.running(settings.statement_prefix + "-").items():
            engine.stop(pipeline, name, ident)
        server.stop()
