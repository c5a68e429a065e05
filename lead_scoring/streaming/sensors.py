"""Statements that stopped come back from Dagster too: a check that shows them, a sensor that notices, a job
that restores them (from their checkpoints locally; PUT spec.stopped=false on Confluent Cloud)."""

import json
import time
from typing import Any

import dagster as dg
from pydantic import Field

from lead_scoring.streaming.engine import FlinkEngine, HealAction, StatementHealth
from lead_scoring.streaming.render import deployment_key

STATEMENTS_RUNNING_CHECK = "statements_running"
DEFAULT_STATEMENT_PREFIX = "lead-scoring"  # FlinkStatementsConfig's default
FLINK_STATEMENTS = dg.AssetKey("flink_statements")
RETRY_AFTER_S = 300.0


def deployment_keys(statement_prefix: str = DEFAULT_STATEMENT_PREFIX) -> tuple[str, str]:
    """The champion's pipeline and the challenger's shadow statements (absent when no challenger is deployed)."""
    return deployment_key(statement_prefix), deployment_key(statement_prefix, shadow=True)


def all_health(flink: FlinkEngine, statement_prefix: str = DEFAULT_STATEMENT_PREFIX) -> list[StatementHealth]:
    return [h for key in deployment_keys(statement_prefix) for h in flink.health(key)]


def _description(health: list[StatementHealth]) -> tuple[bool, str]:
    down = [h for h in health if not h.running]
    if not health:
        return True, "no pipeline deployed yet (materialize flink_statements)"
    if down:
        return False, "; ".join(f"{h.name} is {h.phase}{': ' + h.detail[:200] if h.detail else ''}" for h in down)
    return True, f"all {len(health)} statements running"


def _metadata(health: list[StatementHealth]) -> dict[str, Any]:
    return {
        "statements": dg.MetadataValue.json({h.name: h.phase for h in health}),
        "not_running": ", ".join(h.name for h in health if not h.running) or "none",
    }


@dg.asset_check(
    asset=FLINK_STATEMENTS,
    name=STATEMENTS_RUNNING_CHECK,
    blocking=False,
    description="Every statement of the deployed pipeline is running (the sensor reports it every 30 s).",
)
def statements_running(flink: FlinkEngine) -> dg.AssetCheckResult:
    health = all_health(flink)
    passed, description = _description(health)
    return dg.AssetCheckResult(
        passed=passed, description=description, metadata=_metadata(health), severity=dg.AssetCheckSeverity.ERROR
    )


class RestoreConfig(dg.Config):
    statement_prefix: str = Field(default=DEFAULT_STATEMENT_PREFIX, description="the pipeline to restore")


@dg.op(description="Resume every statement of the deployed pipeline that is not running, from where it was.")
def restore_statements(context: dg.OpExecutionContext, config: RestoreConfig, flink: FlinkEngine) -> None:
    actions: list[HealAction] = [a for key in deployment_keys(config.statement_prefix) for a in flink.heal(key)]
    for action in actions:
        context.log.info(
            f"{action.name}: {action.action} {action.ident or ''} "
            f"{('from ' + action.resumed_from) if action.resumed_from else ''} {action.detail}".strip()
        )
    restored = [a for a in actions if a.action != "left"]
    context.add_output_metadata(
        {
            "restored": ", ".join(a.name for a in restored) or "none",
            "actions": dg.MetadataValue.json([a.__dict__ for a in actions]),
        }
    )


@dg.job(
    description="Requested by flink_statements_sensor when a statement of the deployed pipeline is not running.",
    tags={"team": "data-platform"},
)
def restore_statements_job() -> None:
    restore_statements()


@dg.sensor(
    name="flink_statements_sensor",
    minimum_interval_seconds=30,
    job=restore_statements_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Checks that every statement of the deployed pipeline runs; requests their restore when not.",
)
def flink_statements_sensor(context: dg.SensorEvaluationContext, flink: FlinkEngine):
    try:
        health = all_health(flink)
    except Exception as exc:  # JobManager restarting, Confluent unreachable: report, try next tick
        return dg.SkipReason(f"{flink.describe()} not answering ({type(exc).__name__}: {str(exc)[:200]}); next tick")
    passed, description = _description(health)
    evaluation = dg.AssetCheckEvaluation(
        asset_key=FLINK_STATEMENTS,
        check_name=STATEMENTS_RUNNING_CHECK,
        passed=passed,
        description=description,
        metadata=_metadata(health),
        severity=dg.AssetCheckSeverity.ERROR,
    )
    down = sorted(h.name for h in health if not h.running)
    cursor = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    requests = []
    # once per incident; again after RETRY_AFTER_S if the statements are still down (a restore that failed)
    if down and (cursor.get("down") != down or now - cursor.get("requested_at", 0) > RETRY_AFTER_S):
        context.log.warning("statements not running: %s; requesting restore_statements_job", ", ".join(down))
        requests.append(
            dg.RunRequest(run_key=f"restore-{int(now)}", tags={"lead_scoring/restore": ",".join(down)[:200]})
        )
        cursor["requested_at"] = now
    cursor["down"] = down
    return dg.SensorResult(run_requests=requests, asset_events=[evaluation], cursor=json.dumps(cursor))
