"""The pipeline's statements as Confluent Cloud holds them: what we label them with, and reading them back.

User labels must carry the `user.confluent.io/` prefix. Ours say what a statement is (DDL or a long-running
statement), which role it plays and whether a rollout retired it, so the healing sensor and the lag checks
know, from Confluent itself, which stopped or failed statements to resume and where each one reads. A stateless
replacement resumes from a stopped statement's offsets with the property `sql.tables.initial-offset-from`.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from lead_scoring.streaming.confluent_api import StatementsApi
from lead_scoring.streaming.engine import DeploymentState, HealAction, StatementHealth
from lead_scoring.streaming.render import (
    SHADOW_KEY_SUFFIX,
    Pipeline,
    StatementRole,
    is_shadow_key,
    statement_group_id,
)

log = logging.getLogger(__name__)

LIVE_PHASES = ("PENDING", "RUNNING", "DEGRADED")
RESUMABLE_PHASES = ("STOPPED", "FAILED", "FAILING")
LABEL = "user.confluent.io/"
KIND_LABEL = LABEL + "lead-scoring-kind"  # ddl | statement
ROLE_LABEL = LABEL + "lead-scoring-role"
RETIRED_LABEL = LABEL + "lead-scoring-retired"  # "true": stopped by a rollout that replaced it
_ROLES = {role.value: role for role in StatementRole}


def statement_request(
    pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None
) -> tuple[dict[str, str], dict[str, str]]:
    """(properties, labels) of the long-running statement of `role`."""
    props = dict(pipeline.session_config)
    if resume_from:
        props["sql.tables.initial-offset-from"] = resume_from
    # no model-version label: the version is the endpoint's, it changes under a running statement
    labels = {KIND_LABEL: "statement", ROLE_LABEL: role.value, RETIRED_LABEL: "false"}
    return props, labels


def ddl_statements(pipeline: Pipeline) -> list[tuple[str, str]]:
    """(statement name, SQL) of the run-once DDL: every table Confluent owns, then the model version."""
    s = pipeline.settings
    out = [(f"{s.statement_prefix}-ddl-{table.replace('_', '-')}", sql) for table, sql in pipeline.ddl()]
    # the model object is named after its DDL (render.model_name): one DDL statement per model definition
    out.append(
        (
            f"{s.statement_prefix}-ddl-{pipeline.model_name.replace('_', '-')}"[:100].rstrip("-"),
            pipeline.model_sql.replace("CREATE MODEL", "CREATE MODEL IF NOT EXISTS", 1),
        )
    )
    return out


def parse_latest_offsets(latest: dict[str, str]) -> dict[tuple[str, int], int]:
    """`{"topic": "partition:0,offset:100;partition:1,offset:200"}` (the API's format) -> {(topic, 0): 100, ...}.

    Taken as the next offset to read, like a committed consumer offset (the API says "the last Kafka offsets
    that a statement has processed"; read the other way, the lag is overstated by at most 1 per partition).
    """
    out: dict[tuple[str, int], int] = {}
    for topic, text in latest.items():
        for part in filter(None, (p.strip() for p in text.split(";"))):
            fields = dict(kv.split(":", 1) for kv in part.split(",") if ":" in kv)
            try:
                out[(topic, int(fields["partition"]))] = int(fields["offset"])
            except (KeyError, ValueError):
                log.warning("unreadable latest_offsets entry for %s: %r", topic, part)
    return out


def _labels(statement: dict[str, Any]) -> dict[str, str]:
    return (statement.get("metadata") or {}).get("labels") or {}


def _phase(statement: dict[str, Any]) -> Optional[str]:
    return (statement.get("status") or {}).get("phase")


class DeployedStatements:
    """The long-running statements of a deployment, found by their labels: what runs, its health, its healing."""

    def __init__(self, api: StatementsApi):
        self.api = api

    def running(self, prefix: str) -> dict[str, str]:
        """Live, not stopped, not DDL: name -> name (a Confluent statement is its own ident)."""
        return {
            s["name"]: s["name"]
            for s in self.api.list_statements(prefix)
            if _phase(s) in LIVE_PHASES
            and not (s.get("spec") or {}).get("stopped")
            and _labels(s).get(KIND_LABEL) != "ddl"
        }

    def wanted(self, statement_prefix: str) -> list[dict[str, Any]]:
        """The pipeline's long-running statements a rollout did not retire (from their labels).

        `statement_prefix` is a deployment key: `<prefix>` (the champion's statements) or `<prefix>-shadow`
        (the challenger's); both are named `<prefix>-...`, so the role label tells them apart."""
        shadow = is_shadow_key(statement_prefix)
        prefix = statement_prefix.removesuffix(SHADOW_KEY_SUFFIX) if shadow else statement_prefix
        out = []
        for st in self.api.list_statements(prefix + "-"):
            labels = _labels(st)
            role = _ROLES.get(labels.get(ROLE_LABEL, ""))
            if role is not None and role.is_shadow != shadow:
                continue
            if labels.get(KIND_LABEL) == "statement" and labels.get(RETIRED_LABEL) != "true":
                out.append(st)
        return out

    def deployed(self, statement_prefix: str) -> Optional[DeploymentState]:
        wanted = self.wanted(statement_prefix)
        if not wanted:
            return None
        return DeploymentState(None, {s["name"]: _labels(s).get(ROLE_LABEL, "") for s in wanted})

    def health(self, statement_prefix: str) -> list[StatementHealth]:
        out = []
        for st in self.wanted(statement_prefix):
            status = st.get("status") or {}
            phase = (
                "STOPPED"
                if (st.get("spec") or {}).get("stopped") and status.get("phase") == "RUNNING"
                else status.get("phase", "UNKNOWN")
            )
            role = _labels(st).get(ROLE_LABEL, "")
            out.append(StatementHealth(st["name"], role, phase, st["name"], status.get("detail", "")))
        return out

    def heal(self, statement_prefix: str) -> list[HealAction]:
        """Resume (PUT spec.stopped=false) every wanted statement that is stopped or failed; never recreate."""
        actions = []
        for st in self.wanted(statement_prefix):
            phase = _phase(st)
            if phase in RESUMABLE_PHASES or (st.get("spec") or {}).get("stopped"):
                self.api.update_statement(st["name"], stopped=False)
                actions.append(HealAction(st["name"], "resumed", st["name"], detail=f"was {phase}"))
            else:
                actions.append(HealAction(st["name"], "left", st["name"], detail=str(phase)))
        return actions

    def source_positions(self, statement_prefix: str, group_prefix: str) -> dict[str, dict[tuple[str, int], int]]:
        """From `status.latest_offsets` of each wanted statement: Confluent Cloud's statements read with
        assign() and appear in no consumer group (Confluent's monitoring docs), so lag is the topic's end
        offsets minus these. Keyed by the group id the monitoring watches for the statement's role."""
        out: dict[str, dict[tuple[str, int], int]] = {}
        for st in self.wanted(statement_prefix):
            role = _labels(st).get(ROLE_LABEL, "")
            if _phase(st) not in LIVE_PHASES or role not in _ROLES:
                continue
            offsets = parse_latest_offsets((st.get("status") or {}).get("latest_offsets") or {})
            out[statement_group_id(group_prefix, _ROLES[role])] = offsets
        return out
