"""The monitoring pieces are wired into the definitions: assets in their groups, checks, sensors, jobs."""

import datetime

import dagster as dg
import pytest

from lead_scoring.monitoring.pipeline import PIPELINE_CONSUMER_GROUPS, PIPELINE_TOPICS
from lead_scoring.monitoring.resources import MonitoringSettings, monitoring_settings
from lead_scoring.monitoring.streams import GroupLag, StreamSnapshot, evaluate
from lead_scoring.settings import ConfigurationError, Profile


def _defs() -> dg.Definitions:
    from lead_scoring.definitions import defs

    return defs() if callable(defs) else defs


def test_monitoring_assets_checks_sensors_and_schedules_are_defined():
    definitions = _defs()
    graph = definitions.resolve_asset_graph()
    assert graph.get(dg.AssetKey("lead_score_drift")).group_name == "monitoring"
    for topic in PIPELINE_TOPICS:
        assert graph.get(dg.AssetKey(["kafka", topic])).group_name == "streaming"
    checks = {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert {
        ("lead_score_drift", "feature_and_score_psi"),
        ("kafka/lead_scores", "latency_slo"),
        ("kafka/dlq", "dlq_growth"),
        ("kafka/input_raw", "consumer_lag"),
        ("kafka/lead_scores", "consumer_lag"),
    } <= checks
    sensors = {s.name: s for s in definitions.sensors}
    assert sensors["streaming_topics_sensor"].minimum_interval_seconds == 30
    assert sensors["e2e_latency_sensor"].minimum_interval_seconds == 60
    assert sensors["retraining_trigger_sensor"].job_name == "retraining_job"
    # daily work is declared on the assets (AutomationCondition + FreshnessPolicy), not in cron schedules
    graph = definitions.resolve_asset_graph()
    drift = graph.get(dg.AssetKey("lead_score_drift"))
    assert drift.automation_condition.get_label() == "daily at 06:00 UTC" and drift.freshness_policy is not None
    assert graph.get(dg.AssetKey("lead_score_backtest")).automation_condition is not None
    assert sensors["automation_condition_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert not {s.name for s in definitions.schedules or []} & {"daily_drift", "daily_backtest"}
    # an alert is the red check and a log line, never a run (a new process per incident): no alert job
    assert "stream_alert_job" not in {j.name for j in definitions.resolve_all_job_defs()}


def test_latency_interval_and_thresholds_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_LATENCY_PROBE_INTERVAL_S", "120")
    monkeypatch.setenv("LEAD_SCORING_LATENCY_SLO_S", "4.5")
    monkeypatch.setenv("LEAD_SCORING_MAX_CONSUMER_LAG", "77")
    sensors = {s.name: s for s in _defs().sensors}
    assert sensors["e2e_latency_sensor"].minimum_interval_seconds == 120
    settings = monitoring_settings(Profile.LOCAL)
    assert settings.latency_slo_s == 4.5 and settings.max_consumer_lag == 77
    monkeypatch.setenv("LEAD_SCORING_MAX_CONSUMER_LAG", "lots")
    with pytest.raises(ConfigurationError, match="LEAD_SCORING_MAX_CONSUMER_LAG='lots'"):
        monitoring_settings(Profile.LOCAL)


def test_every_pipeline_group_and_topic_is_watched_by_default():
    settings = MonitoringSettings()
    assert settings.consumer_groups == [g.group_id for g in PIPELINE_CONSUMER_GROUPS]
    assert "lead-scoring-writeback" in settings.consumer_groups and "lead-scoring-sink" in settings.consumer_groups
    assert settings.topics == list(PIPELINE_TOPICS)


def test_a_group_that_never_committed_is_a_warning_not_a_pass():
    snapshot = StreamSnapshot(
        taken_at=100.0,
        end_offsets={"lead_scores": 10},
        partitions={"lead_scores": 3},
        missing_topics=[],
        groups={
            "w": GroupLag("w", committed=False, topics=("lead_scores",)),
            "s": GroupLag("s", committed=True, lag_by_topic={"lead_scores": 2}, topics=("lead_scores",)),
        },
    )
    result = evaluate(snapshot, {"ts": 90.0, "end_offsets": {"lead_scores": 4}}, ["lead_scores"], "dlq", 5, 5)
    [check] = result.checks
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "no committed offsets for w" in check.description
    assert result.breaches == {}  # a warning does not page anyone
    [obs] = result.observations
    assert obs.metadata["messages_per_s"].value == pytest.approx(0.6)
    assert obs.metadata["lag s"].value == 2


def test_flink_statement_groups_match_the_rendered_pipeline():
    """The lag checks watch exactly the groups (and topics) the rendered Flink statements consume with."""
    from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline

    pipeline = render_pipeline(
        RenderSettings(dialect=Dialect.FLINK, model_version="v1", model_endpoint="http://127.0.0.1:8080")
    )
    rendered: dict[str, set[str]] = {}
    for statement in pipeline.statements.values():
        for table in statement.reads:
            group = statement.group_id(pipeline.settings, table)
            rendered.setdefault(group, set()).add(pipeline.tables[table].topic_name)
    watched = {g.group_id: set(g.topics) for g in PIPELINE_CONSUMER_GROUPS if "-flink-" in g.group_id}
    assert rendered == watched


def test_gcp_definitions_load_with_the_salesforce_probe(monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "gcp")
    sensors = {s.name: s for s in _defs().sensors}
    assert sensors["e2e_latency_sensor"].required_resource_keys == {"kafka", "monitoring", "crm"}


def test_the_daily_assets_are_requested_once_per_cron_tick() -> None:
    """The automation conditions themselves, evaluated by Dagster: once after each tick, not again that day."""
    defs = _defs()
    instance = dg.DagsterInstance.ephemeral()
    before = datetime.datetime(2026, 12, 7, 5, 59, tzinfo=datetime.UTC)

    def requested(minutes: int, cursor):
        result = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=cursor, evaluation_time=before + datetime.timedelta(minutes=minutes)
        )
        keys = {r.key.to_user_string() for r in result.results if r.true_subset.size}
        return keys & {"lead_score_drift", "lead_score_backtest", "lead_score_history"}, result.cursor

    first, cursor = requested(0, None)
    assert first == set()
    after_drift_tick, cursor = requested(2, cursor)
    assert after_drift_tick == {"lead_score_drift"}
    again, cursor = requested(4, cursor)
    assert again == set()
    after_backtest_tick, cursor = requested(33, cursor)
    assert after_backtest_tick == {"lead_score_backtest", "lead_score_history"}
