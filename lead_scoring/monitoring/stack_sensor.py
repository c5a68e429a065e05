"""The local stack in the Dagster UI: its services, their restarts, and a check that they all run.

The stack's supervisor restarts dead services by itself; this sensor shows it happening (restart counts
and last exits on the `local_stack` asset, `services_running` red while one is down) and starts the
supervisor again if it was killed, so nothing waits for a human.
"""

import dagster as dg

from lead_scoring.monitoring.hop_checks import workers_evaluation
from lead_scoring.services import local_stack

LOCAL_STACK = dg.AssetKey("local_stack")
SERVICES_RUNNING_CHECK = "services_running"

local_stack_spec = dg.AssetSpec(
    LOCAL_STACK,
    group_name="operations",
    owners=["team:data-platform"],
    kinds={"kafka", "flink", "python"},
    description="The local stack's services (Kafka, Flink, model server, workers), kept running by its supervisor.",
    metadata={"how": "lead-scoring stack up | status | down"},
)


@dg.sensor(
    name="local_stack_sensor",
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Services of the local stack: state and restart counts; restarts a dead supervisor.",
)
def local_stack_sensor(context: dg.SensorEvaluationContext):
    stack = local_stack()
    wanted = stack.files.desired()
    if not wanted:
        return dg.SkipReason("the local stack is not up (`lead-scoring stack up`)")
    notes = []
    if stack.supervisor() is None:
        context.log.warning("the stack's supervisor is not running; starting it again")
        stack.ensure_supervisor()
        notes.append("supervisor restarted by local_stack_sensor")
    statuses = [s for s in stack.status(health=False) if s.name in wanted or s.name == "supervisor"]
    down = [s for s in statuses if s.state not in ("running", "starting")]
    restarts = {s.name: s.restarts for s in statuses}
    metadata = {
        "services": dg.MetadataValue.json(
            {
                s.name: {
                    "state": s.state,
                    "pid": s.pid,
                    "restarts": s.restarts,
                    "last_exit": s.last_exit,
                    "detail": s.detail,
                }
                for s in statuses
            }
        ),
        "restarts_total": dg.MetadataValue.int(sum(restarts.values())),
        **{f"restarts {name}": dg.MetadataValue.int(n) for name, n in restarts.items() if name != "supervisor"},
    }
    description = (
        "; ".join(f"{s.name} is {s.state}{': ' + s.detail if s.detail else ''}" for s in down)
        or f"all {len(statuses) - 1} wanted services running"
    )
    return dg.SensorResult(
        asset_events=[
            dg.AssetObservation(asset_key=LOCAL_STACK, metadata={**metadata, "notes": "; ".join(notes) or "none"}),
            dg.AssetCheckEvaluation(
                asset_key=LOCAL_STACK,
                check_name=SERVICES_RUNNING_CHECK,
                passed=not down,
                severity=dg.AssetCheckSeverity.ERROR,
                description=description,
                metadata={"down": ", ".join(s.name for s in down) or "none"},
            ),
            workers_evaluation(),  # a stuck worker is alive to the supervisor: its heartbeat says why it is not flowing
        ]
    )


@dg.asset_check(
    asset=LOCAL_STACK,
    name=SERVICES_RUNNING_CHECK,
    description="Every wanted service of the local stack runs and answers its health check "
    "(local_stack_sensor reports the supervisor's view every 30 s).",
)
def services_running() -> dg.AssetCheckResult:
    stack = local_stack()
    wanted = stack.files.desired()
    statuses = [s for s in stack.status() if s.name in wanted or s.name == "supervisor"]
    down = [s for s in statuses if s.state not in ("healthy", "running")]
    return dg.AssetCheckResult(
        passed=bool(wanted) and not down,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            "the local stack is not up"
            if not wanted
            else "; ".join(f"{s.name} is {s.state}: {s.detail}" for s in down) or "all services healthy"
        ),
        metadata={"services": dg.MetadataValue.json({s.name: s.state for s in statuses})},
    )
