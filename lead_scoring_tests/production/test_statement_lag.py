"""Unsettled item of issue 12: Confluent Cloud statements are in no consumer group (they read with assign()), so
in gcp the lag checks take the statements' positions from the Statements API (`status.latest_offsets`)."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg

from lead_scoring.monitoring import streams
from lead_scoring.monitoring.definitions import defs as monitoring_defs
from lead_scoring.monitoring.resources import monitoring_settings
from lead_scoring.settings import Profile
from lead_scoring.streaming.confluent import ConfluentFlink
from lead_scoring.streaming.confluent_statements import parse_latest_offsets
from lead_scoring.streaming.render import (
    Dialect,
    RenderSettings,
    StatementRole,
    render_pipeline,
    statement_group_id,
)
from lead_scoring.streaming.rollout import rollout
from lead_scoring_tests.streaming.fake_confluent import (
    ENDPOINT,
    ENV,
    HOST,
    ORG,
    SERVICE_KEY,
    FakeConfluent,
)
from lead_scoring_tests.vendor.openapi import confluent_sql_contract


def test_latest_offsets_in_the_apis_format_are_read() -> None:
    example = {"topic-1": "partition:0,offset:100;partition:1,offset:200", "topic-2": "partition:0,offset:50"}
    assert parse_latest_offsets(example) == {("topic-1", 0): 100, ("topic-1", 1): 200, ("topic-2", 0): 50}
    assert parse_latest_offsets({"t": ""}) == {}


def _engine(fake: FakeConfluent) -> ConfluentFlink:
    return ConfluentFlink(
        base_url=HOST,
        organization_id=ORG,
        environment_id=ENV,
        compute_pool_id="lfcp-1",
        principal="sa-1",
        catalog="c",
        database="d",
        api_key="key",
        api_secret="secret",
        vertex_service_key=SERVICE_KEY,
        poll_interval_s=0.0,
    ).with_transport(confluent_sql_contract().transport(fake.handler))


def test_statement_positions_feed_the_lag_of_the_flink_groups(monkeypatch) -> None:
    fake = FakeConfluent()
    engine = _engine(fake)
    pipeline = render_pipeline(RenderSettings(Dialect.CONFLUENT, "v1", ENDPOINT))
    rollout(engine, pipeline)
    fake.statements[pipeline.statements[StatementRole.SCORE_LEADS].name]["status"]["latest_offsets"] = {
        "leads": "partition:0,offset:90;partition:1,offset:40;partition:2,offset:7"
    }
    positions = engine.source_positions("lead-scoring")
    leads_group = statement_group_id("lead-scoring", StatementRole.SCORE_LEADS)
    assert positions[leads_group] == {("leads", 0): 90, ("leads", 1): 40, ("leads", 2): 7}

    class Reader:  # the brokers: end offsets only; asking for a Flink group's committed offsets is a bug here
        def partitions(self):
            return {"leads": 3, "contacts": 3}

        def watermarks(self, present):
            return {(t, p): (0, 100) for t, n in present.items() for p in range(n)}

        def committed(self, partitions):
            raise AssertionError("the statements commit no consumer-group offsets in Confluent Cloud")

    @contextmanager
    def reader(*args, **kwargs):
        yield Reader()

    monkeypatch.setattr(streams, "offset_reader", reader)
    contacts_group = statement_group_id("lead-scoring", StatementRole.SCORE_CONTACTS)
    snapshot = streams.take_snapshot(None, ["leads", "contacts"], [leads_group, contacts_group], positions=positions)
    assert snapshot.groups[leads_group].lag_by_topic == {"leads": (100 - 90) + (100 - 40) + (100 - 7)}
    assert not snapshot.groups[contacts_group].committed  # no offsets reported yet: like a group that never committed


def test_gcp_monitoring_watches_statements_not_consumer_groups_and_no_worker_groups() -> None:
    gcp = monitoring_defs(Profile.GCP)
    [topics_sensor] = [s for s in gcp.sensors if s.name == "streaming_topics_sensor"]
    assert "flink" in topics_sensor.required_resource_keys
    local = monitoring_defs(Profile.LOCAL)
    [local_sensor] = [s for s in local.sensors if s.name == "streaming_topics_sensor"]
    assert "flink" not in local_sensor.required_resource_keys
    checks = {c.node_def.name for c in gcp.asset_checks}
    assert "statement_positions_health_checks" in checks and "stream_health_checks" not in checks
    assert not {"lead-scoring-writeback", "lead-scoring-sink"} & set(monitoring_settings(Profile.GCP).consumer_groups)
    assert isinstance(gcp, dg.Definitions)
