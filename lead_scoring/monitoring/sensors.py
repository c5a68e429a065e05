"""Sensors that operate the pipeline from Dagster: topic health, end-to-end latency, retraining triggers.

Long on purpose: the sensors that watch things outside Dagster (Kafka topics, the pipeline's latency) and
the retraining trigger, each with the check specs it evaluates; they share the cursor and tick helpers.

- `streaming_topics_sensor` (30 s): end offsets and rates of every topic, lag of every pipeline consumer
  group, DLQ growth -> observations on the `kafka/<topic>` assets, `consumer_lag` / `dlq_growth` check
  evaluations (ERROR when a threshold is crossed: the check is the alert), and one error line in the tick's log
  when a threshold is newly crossed. No run is launched for an alert: under load a run per incident meant a new
  Python process every 30-40 s at the moment the machine had least to spare.
- `e2e_latency_sensor` (interval configurable): probe leads through the pipeline -> p50 / max latency
  on `kafka/lead_scores`, `latency_slo` check evaluation.
- `retraining_trigger_sensor`: requests `retraining_job` when the drift check or the backtest check fails
  (once per failed evaluation) or enough new labelled outcomes arrived since the model's training data
  was last built.
"""

import json
from typing import Any, Optional

import dagster as dg

from lead_scoring.contract.samples import PROBE_ID_PREFIX
from lead_scoring.crm.salesforce import SalesforceResource
from lead_scoring.monitoring.assets import DRIFT_ASSET_KEY, DRIFT_CHECK
from lead_scoring.monitoring.backtest import BACKTEST_ASSET_KEY, BACKTEST_CHECK
from lead_scoring.monitoring.latency import ProbeError, ProbeResult, run_probe, run_salesforce_probe
from lead_scoring.monitoring.pipeline import DLQ_TOPIC, PIPELINE_CONSUMER_GROUPS, PIPELINE_TOPICS, SCORES_TOPIC
from lead_scoring.monitoring.resources import MonitoringSettings
from lead_scoring.monitoring.streams import CONSUMER_LAG_CHECK, DLQ_GROWTH_CHECK, evaluate, take_snapshot
from lead_scoring.streaming.engine import FlinkEngine
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import KafkaUnavailable
from lead_scoring.streaming.lineage import topic_asset_key
from lead_scoring.streaming.sensors import DEFAULT_STATEMENT_PREFIX
from lead_scoring.warehouse.resources import Warehouse

LATENCY_CHECK = "latency_slo"
OWNERS = ["team:data-platform"]
TRAINING_DATA_KEY = dg.AssetKey("training_data")
RETRAINING_JOB = "retraining_job"
# Checks whose failed evaluation requests a retraining: (reason tag, check, cursor field).
RETRAINING_CHECKS = (
    ("drift", dg.AssetCheckKey(DRIFT_ASSET_KEY, DRIFT_CHECK), "drift_record"),
    ("backtest", dg.AssetCheckKey(BACKTEST_ASSET_KEY, BACKTEST_CHECK), "backtest_record"),
)


# ---- topic assets and their checks -------------------------------------------------------------

CONSUMED_TOPICS = sorted({t for g in PIPELINE_CONSUMER_GROUPS for t in g.topics})


def _check_specs_for(topic: str) -> list[dg.AssetCheckSpec]:
    specs = []
    key = topic_asset_key(topic)
    if topic in CONSUMED_TOPICS:
        specs.append(
            dg.AssetCheckSpec(
                CONSUMER_LAG_CHECK,
                asset=key,
                description="Every pipeline consumer group reading this topic is within the lag threshold.",
            )
        )
    if topic == DLQ_TOPIC:
        specs.append(
            dg.AssetCheckSpec(
                DLQ_GROWTH_CHECK,
                asset=key,
                description="The dead-letter topic grew by at most the threshold since the last tick.",
            )
        )
    if topic == SCORES_TOPIC:
        specs.append(
            dg.AssetCheckSpec(
                LATENCY_CHECK, asset=key, description="Probe leads are scored end to end within the latency SLO."
            )
        )
    return specs


def _health_results(
    context: dg.AssetCheckExecutionContext,
    kafka: KafkaResource,
    monitoring: MonitoringSettings,
    positions: Optional[dict[str, dict[tuple[str, int], int]]] = None,
):
    dlq_key = topic_asset_key(monitoring.dlq_topic)
    previous: dict[str, Any] = {}
    records = context.instance.fetch_observations(dlq_key, limit=1).records
    last = records[0] if records else None
    if last is not None and last.asset_observation is not None:
        end = last.asset_observation.metadata.get("end_offset")
        if end is not None:
            previous = {"ts": last.timestamp, "end_offsets": {monitoring.dlq_topic: end.value}}
    snapshot = take_snapshot(
        kafka,
        monitoring.topics,
        monitoring.consumer_groups,
        monitoring.kafka_timeout_s,
        {g: tuple(t) for g, t in monitoring.group_topics.items()},
        positions,
    )
    result = evaluate(
        snapshot,
        previous,
        monitoring.topics,
        monitoring.dlq_topic,
        monitoring.max_consumer_lag,
        monitoring.max_dlq_growth,
    )
    evaluations = {(e.asset_key, e.check_name): e for e in result.checks}
    for spec in stream_health_checks_specs():
        found = evaluations.get((spec.asset_key, spec.name))
        if found is None:
            why = (
                "no earlier DLQ observation to compare with (the sensor records one every tick)"
                if spec.name == DLQ_GROWTH_CHECK
                else "topic does not exist"
            )
            yield dg.AssetCheckResult(
                asset_key=spec.asset_key,
                check_name=spec.name,
                passed=spec.name == DLQ_GROWTH_CHECK,
                description=why,
                severity=dg.AssetCheckSeverity.WARN,
            )
        else:
            yield dg.AssetCheckResult(
                asset_key=found.asset_key,
                check_name=found.check_name,
                passed=found.passed,
                severity=found.severity,
                description=found.description,
                metadata=found.metadata,
            )


_HEALTH_CHECKS = dict(
    specs=[s for t in PIPELINE_TOPICS for s in _check_specs_for(t) if s.name != LATENCY_CHECK],
    description="Measure consumer lag and DLQ growth now (the sensor reports the same checks every 30 s).",
)


@dg.multi_asset_check(**_HEALTH_CHECKS)
def stream_health_checks(context: dg.AssetCheckExecutionContext, kafka: KafkaResource, monitoring: MonitoringSettings):
    yield from _health_results(context, kafka, monitoring)


@dg.multi_asset_check(**_HEALTH_CHECKS, name="statement_positions_health_checks")
def statement_positions_health_checks(
    context: dg.AssetCheckExecutionContext, kafka: KafkaResource, monitoring: MonitoringSettings, flink: FlinkEngine
):
    """The gcp variant: the statements' positions from the Statements API (see statement_positions_topics_sensor)."""
    yield from _health_results(context, kafka, monitoring, flink.source_positions(DEFAULT_STATEMENT_PREFIX))


def stream_health_checks_specs() -> list[dg.AssetCheckSpec]:
    return [s for t in PIPELINE_TOPICS for s in _check_specs_for(t) if s.name != LATENCY_CHECK]


def probe_with(kafka: KafkaResource, monitoring: MonitoringSettings) -> ProbeResult:
    """Probe leads through the pipeline as the monitoring settings say (the check and the sensor alike)."""
    return run_probe(
        kafka,
        monitoring.input_topic,
        monitoring.scores_topic,
        monitoring.probe_count,
        monitoring.probe_timeout_s,
        monitoring.kafka_timeout_s,
        monitoring.scores_format,
    )


@dg.asset_check(
    asset=topic_asset_key(SCORES_TOPIC),
    name=LATENCY_CHECK,
    description="Send probe leads now and check they are scored within the latency SLO.",
)
def latency_slo(kafka: KafkaResource, monitoring: MonitoringSettings) -> dg.AssetCheckResult:
    result = probe_with(kafka, monitoring)
    return dg.AssetCheckResult(
        passed=result.within(monitoring.latency_slo_s),
        description=result.summary(monitoring.latency_slo_s),
        metadata=_latency_metadata(result, monitoring.latency_slo_s),
    )


# ---- sensors -------------------------------------------------------------------------------------


def _load_cursor(raw: Optional[str]) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _topics_tick(
    context: dg.SensorEvaluationContext,
    kafka: KafkaResource,
    monitoring: MonitoringSettings,
    positions: Optional[dict[str, dict[tuple[str, int], int]]] = None,
):
    previous = _load_cursor(context.cursor)
    try:
        snapshot = take_snapshot(
            kafka,
            monitoring.topics,
            monitoring.consumer_groups,
            monitoring.kafka_timeout_s,
            {g: tuple(t) for g, t in monitoring.group_topics.items()},
            positions,
        )
    except KafkaUnavailable as exc:
        return dg.SkipReason(f"Kafka at {kafka.bootstrap_servers} is unreachable: {exc}")
    result = evaluate(
        snapshot,
        previous,
        monitoring.topics,
        monitoring.dlq_topic,
        monitoring.max_consumer_lag,
        monitoring.max_dlq_growth,
    )
    already = set(previous.get("alerts", []))
    new = {k: v for k, v in result.breaches.items() if k not in already}
    if new:  # once per incident; the ERROR check evaluations below carry it to the asset's Checks tab
        context.log.error("stream thresholds crossed: %s", "; ".join(sorted(new.values())))
    if snapshot.missing_topics:
        context.log.info("topics not created yet: %s", ", ".join(snapshot.missing_topics))
    return dg.SensorResult(asset_events=[*result.observations, *result.checks], cursor=json.dumps(result.cursor))


_TOPICS_SENSOR = dict(
    name="streaming_topics_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Topic end offsets and rates, consumer lag, DLQ growth; the checks turn red when a threshold is "
    "crossed.",
)


@dg.sensor(**_TOPICS_SENSOR)
def streaming_topics_sensor(context: dg.SensorEvaluationContext, kafka: KafkaResource, monitoring: MonitoringSettings):
    return _topics_tick(context, kafka, monitoring)


@dg.sensor(**_TOPICS_SENSOR)
def statement_positions_topics_sensor(
    context: dg.SensorEvaluationContext, kafka: KafkaResource, monitoring: MonitoringSettings, flink: FlinkEngine
):
    """The gcp variant: Confluent Cloud's statements commit no consumer-group offsets (they read with assign());
    their lag comes from the Statements API (`status.latest_offsets`) through `flink.source_positions`."""
    return _topics_tick(context, kafka, monitoring, flink.source_positions(DEFAULT_STATEMENT_PREFIX))


def _latency_metadata(result: Any, slo_s: float) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "probes_sent": result.sent,
        "probes_scored": result.received,
        "slo_s": slo_s,
        "probe_run": result.run_id,
    }
    if result.p50_s is not None:
        metadata["latency_p50_s"] = dg.MetadataValue.float(round(result.p50_s, 3))
        metadata["latency_max_s"] = dg.MetadataValue.float(round(result.max_s, 3))
    return metadata


def make_e2e_latency_sensor(interval_s: int = 60, salesforce: bool = False) -> dg.SensorDefinition:
    """The latency probe sensor, ticking every `interval_s` seconds.

    `salesforce`: in the gcp profile, where the `crm` resource is a SalesforceResource; when the monitoring
    settings enable `salesforce_probe`, a probe Lead also goes through Salesforce.
    """
    resource_keys = {"kafka", "monitoring"} | ({"crm"} if salesforce else set())

    @dg.sensor(
        name="e2e_latency_sensor",
        minimum_interval_seconds=interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        required_resource_keys=resource_keys,
        description="Probe leads through the pipeline; p50/max latency and the latency_slo check.",
    )
    def e2e_latency_sensor(context: dg.SensorEvaluationContext, **_resources: Any):
        # resources come from `required_resource_keys` (direct invocation also passes them as keywords)
        kafka: KafkaResource = context.resources.kafka
        monitoring: MonitoringSettings = context.resources.monitoring
        try:
            result = probe_with(kafka, monitoring)
        except KafkaUnavailable as exc:
            return dg.SkipReason(f"Kafka at {kafka.bootstrap_servers} is unreachable: {exc}")
        except ProbeError as exc:
            return dg.SkipReason(f"latency probe not sent: {exc}")
        slo = monitoring.latency_slo_s
        metadata = _latency_metadata(result, slo)
        passed = result.within(slo)
        description = result.summary(slo)
        if salesforce and monitoring.salesforce_probe:
            crm: SalesforceResource = context.resources.crm
            sf_result = run_salesforce_probe(crm.client(), timeout_s=monitoring.probe_timeout_s)
            metadata["salesforce_latency_s"] = (
                dg.MetadataValue.float(round(sf_result.latency_s, 3))
                if sf_result.latency_s is not None
                else "not scored"
            )
            metadata["salesforce_probe_deleted"] = sf_result.deleted
            if sf_result.latency_s is None:
                passed = False
                description += f"; the Salesforce probe Lead got no score within {monitoring.probe_timeout_s:.0f} s"
        if not passed:
            context.log.warning("latency SLO missed: %s", description)
        key = topic_asset_key(monitoring.scores_topic)
        return dg.SensorResult(
            asset_events=[
                dg.AssetObservation(asset_key=key, metadata=metadata),
                dg.AssetCheckEvaluation(
                    asset_key=key,
                    check_name=LATENCY_CHECK,
                    passed=passed,
                    severity=dg.AssetCheckSeverity.ERROR,
                    description=description,
                    metadata=dict(metadata),
                ),
            ]
        )

    return e2e_latency_sensor


def new_labels_sql(since_ms: int) -> str:
    """Leads of the stream that got an outcome (IsConverted) after `since_ms`, probes excluded."""
    return (
        "SELECT COUNT(DISTINCT Id) AS n FROM crm_leads_raw "
        f"WHERE _source = 'stream' AND IsConverted IS NOT NULL AND _ingested_at > TIMESTAMP_MILLIS({int(since_ms)}) "
        f"AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')"
    )


@dg.sensor(
    name="retraining_trigger_sensor",
    minimum_interval_seconds=300,
    job_name=RETRAINING_JOB,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests retraining_job when the drift or backtest check fails or enough new outcomes arrived.",
)
def retraining_trigger_sensor(
    context: dg.SensorEvaluationContext, warehouse: Warehouse, monitoring: MonitoringSettings
):
    cursor = _load_cursor(context.cursor)
    requests: list[dg.RunRequest] = []
    reasons: list[str] = []

    # 1. the drift and backtest checks' latest evaluations, each once per evaluation; one run for all that failed
    failed: list[tuple[str, int]] = []
    status: dict[str, str] = {}
    for reason, check_key, cursor_field in RETRAINING_CHECKS:
        record = context.instance.get_latest_asset_check_evaluation_record(check_key)
        evaluation = None
        if record is not None and record.event is not None and record.event.dagster_event is not None:
            evaluation = record.event.dagster_event.event_specific_data
        status[reason] = "not failing" if evaluation is None or evaluation.passed else "already handled"
        if evaluation is not None and record.id != cursor.get(cursor_field):
            cursor[cursor_field] = record.id
            if not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
                failed.append((reason, record.id))
                reasons.append(f"{reason} check failed: {evaluation.description}")
    if failed:
        requests.append(
            dg.RunRequest(
                run_key="-".join(f"{reason}-{rid}" for reason, rid in failed),
                tags={"lead_scoring/retrain_reason": ",".join(r for r, _ in failed)},
            )
        )

    # 2. enough new labelled outcomes since the training data was last built
    last_training = context.instance.get_latest_materialization_event(TRAINING_DATA_KEY)
    since_ms = int(last_training.timestamp * 1000) if last_training is not None else 0
    try:
        new_labels = int(warehouse.query(new_labels_sql(since_ms))["n"].iloc[0])
    except Exception as exc:  # e.g. the DuckDB file locked by a running materialization: try next tick
        context.log.warning("could not count new labelled outcomes: %s", exc)
        if requests:
            return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))
        return dg.SensorResult(
            skip_reason=dg.SkipReason(f"warehouse not readable now ({exc}); retrying next tick"),
            cursor=json.dumps(cursor),
        )
    if new_labels >= monitoring.retrain_min_new_labels and cursor.get("labels_since") != since_ms and not requests:
        cursor["labels_since"] = since_ms
        requests.append(
            dg.RunRequest(run_key=f"labels-since-{since_ms}", tags={"lead_scoring/retrain_reason": "new_labels"})
        )
        reasons.append(f"{new_labels} new labelled outcomes since the last training data")
    elif requests and new_labels >= monitoring.retrain_min_new_labels:
        cursor["labels_since"] = since_ms  # the check-triggered run uses these labels too

    if not requests:
        return dg.SensorResult(
            skip_reason=dg.SkipReason(
                f"no retraining needed: drift check {status['drift']}, backtest check {status['backtest']}, "
                f"{new_labels} new labelled outcomes (threshold {monitoring.retrain_min_new_labels})"
            ),
            cursor=json.dumps(cursor),
        )
    context.log.info("requesting retraining: %s", "; ".join(reasons))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor))


def monitoring_sensors(
    latency_interval_s: int = 60, salesforce: bool = False, statement_positions: bool = False
) -> list[dg.SensorDefinition]:
    """`statement_positions`: Flink statements' lag from the engine (Confluent Cloud), not from consumer groups."""
    topics = statement_positions_topics_sensor if statement_positions else streaming_topics_sensor
    return [topics, make_e2e_latency_sensor(latency_interval_s, salesforce), retraining_trigger_sensor]
