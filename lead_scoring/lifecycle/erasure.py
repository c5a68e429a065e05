"""Erasure: remove a lead from everything we own, and keep it from coming back.

`erase_leads` is the one erasure path, used by `lead-scoring erase ID...`, by the sink worker when it
reads a `deleted` event on `input_raw`, and by the `erasure_sweep_job` (deleted events that reached the
warehouse another way, e.g. the BigQuery sink connector in the gcp profile). For each Id it

1. records a keyed hash of the Id in `erasure_register` (HMAC-SHA256 with a secret key: the register holds
   no Id and cannot be reversed or matched without the key), and produces the Id to the compacted `erased_ids`
   topic (`erased_ids.ErasedIdsTopic`), which the scoring statements of every profile join against: records of
   the Id that arrive later (a new change in the CRM, an echo, a replay) are never scored, written or landed;
2. deletes every row of the Id from every warehouse table that has an `Id` column (enumerated from
   `warehouse.tables.TABLES`, so a new table is covered the day it is added), including rows of
   `rejected_leads` / `crm_writeback_errors` whose raw `payload` carries the Id;
3. clears the score fields (`CLEARED_FIELDS`) of the record in the CRM when a CRM writer is given (an
   erase request: the lead still exists in the CRM; after a `deleted` event the CRM record is gone);
4. checks that no row of the Id remains in any of those tables, and compacts the local DuckDB file.

Records of an erased Id still in Kafka (retention: docs/lifecycle.md) are dropped by the sink and the
writeback, which look each batch's Ids up in the register; records that reach the scoring statements after the
erasure are dropped there (the `erased_ids` topic), so they never reach any sink. Model artifacts hold no per-lead
data (a fitted pipeline and a manifest of aggregate metrics), so there is nothing to erase in the model store.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Protocol

import dagster as dg
import pandas as pd
from pydantic import Field

from lead_scoring.lifecycle.erased_ids import ErasedIdsTopic
from lead_scoring.settings import ERASURE_KEY_ENV_VAR, ConfigurationError, Profile, security_settings, state_dir
from lead_scoring.streaming.definitions import kafka as kafka_of_profile
from lead_scoring.warehouse.resources import Warehouse
from lead_scoring.warehouse.tables import TableSpec, tables_in

log = logging.getLogger(__name__)

MIN_KEY_LENGTH = 32
REGISTER_TABLE = "erasure_register"
# Every table must either have an `Id` column (erased) or say here why it holds no lead's rows.
NO_LEAD_ROWS: dict[str, str] = {
    REGISTER_TABLE: "keyed hashes of erased Ids only: no Id, nothing to erase",
    "rescore_runs": "one row per full re-score run (counts, status); `last_id` is the resume point of a run still "
    "producing and is cleared when the run finishes: no lead data",
}
# Columns that may embed a whole raw record (rejected or failed records): matched on the JSON-quoted Id.
RECORD_TEXT_COLUMNS = ("payload",)
# Salesforce key prefixes: the object of an Id the warehouse has never seen.
KEY_PREFIX_OBJECTS = {"00Q": "Lead", "003": "Contact"}

TRIGGER_REQUEST = "erase request"
TRIGGER_DELETED = "deleted event"


class ErasureIncomplete(RuntimeError):
    """Rows of an erased Id are still in the warehouse after the deletes (run the erasure again)."""


def erasable_tables(dialect: str = "duckdb") -> list[TableSpec]:
    """Every warehouse table with an `Id` column, in TABLES order; not the relations that are views in
    `dialect` (BigQuery's ledger view: its rows are erased in the score tables under it)."""
    return [spec for spec in tables_in(dialect) if "Id" in spec.column_names]


# ---- the key --------------------------------------------------------------------------------------


class ErasureKey(dg.ConfigurableResource):
    """The secret that keys the register's hashes: `LEAD_SCORING_ERASURE_KEY` (a `dg.EnvVar`; required in
    gcp), or locally a random key created on first use in `<state>/secrets/erasure.key` (mode 0600).

    Keep it stable: a new key cannot match the hashes written with the old one (their records would no
    longer be dropped by the sink).
    """

    key: Optional[str] = Field(default=None, description="the secret (from LEAD_SCORING_ERASURE_KEY); never logged")
    key_file: Optional[str] = Field(default=None, description="local profile: file holding the secret")

    def secret(self) -> bytes:
        if self.key:
            if len(self.key) < MIN_KEY_LENGTH:
                raise ConfigurationError(
                    f"{ERASURE_KEY_ENV_VAR} is too short ({len(self.key)} characters): use at least "
                    f"{MIN_KEY_LENGTH} random characters, e.g. "
                    "python -c 'import secrets; print(secrets.token_hex(32))'"
                )
            return self.key.encode("utf-8")
        if self.key_file:
            return _local_key(Path(self.key_file))
        raise ConfigurationError(
            f"{ERASURE_KEY_ENV_VAR} is not set: the erasure register needs a secret key; set it "
            "to at least 32 random characters and keep it stable"
        )


def _local_key(path: Path) -> bytes:
    """The key in `path`, created atomically (two processes starting together agree on one key)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < MIN_KEY_LENGTH:
        raise ConfigurationError(
            f"erasure key file {path} holds fewer than {MIN_KEY_LENGTH} characters: restore it "
            f"from a backup, or set {ERASURE_KEY_ENV_VAR}"
        )
    return key.encode("utf-8")


def local_key_path() -> Path:
    return state_dir() / "secrets" / "erasure.key"


def erasure_key(profile: Profile) -> ErasureKey:
    """`erasure_key` of a profile: the environment variable when set (always in gcp), else the local key file."""
    if profile is Profile.GCP or security_settings().erasure_key:
        return ErasureKey(key=dg.EnvVar(ERASURE_KEY_ENV_VAR))
    return ErasureKey(key_file=str(local_key_path()))


def erasure_secret(profile: Profile) -> bytes:
    """The key outside Dagster (CLI, workers), resolved like the `erasure_key` resource of the profile."""
    value = security_settings().erasure_key
    if value:
        return ErasureKey(key=value.get_secret_value()).secret()
    if profile is Profile.GCP:
        return ErasureKey().secret()  # raises: the variable is required in gcp
    return ErasureKey(key_file=str(local_key_path())).secret()


# ---- the register ---------------------------------------------------------------------------------


def _ids_condition(spec: TableSpec) -> str:
    cond = "Id IN UNNEST(@ids)"
    for column in RECORD_TEXT_COLUMNS:
        if column in spec.column_names:
            cond += f" OR EXISTS (SELECT 1 FROM UNNEST(@quoted_ids) AS q WHERE STRPOS({column}, q) > 0)"
    return cond


class ErasureRegister:
    """Keyed hashes of erased Ids in the warehouse (`erasure_register`): add them, look a batch up.

    `erased_ids`: where an added Id is also produced for the scoring statements; required to `add` (a register
    opened only to look Ids up, e.g. by the audit or the writeback, needs none)."""

    def __init__(self, warehouse: Warehouse, secret: bytes, erased_ids: Optional[ErasedIdsTopic] = None):
        if not secret:
            raise ValueError("the erasure register needs a non-empty secret key")
        self.warehouse = warehouse
        self._secret = secret
        self.erased_ids = erased_ids

    @classmethod
    def for_profile(cls, warehouse: Warehouse, profile: Profile) -> ErasureRegister:
        """The profile's register: its key, and the `erased_ids` topic on the profile's Kafka."""
        kafka = kafka_of_profile(profile).process_config_and_initialize()
        return cls(warehouse, erasure_secret(profile), ErasedIdsTopic(kafka))

    def digest(self, record_id: str) -> str:
        return hmac.new(self._secret, record_id.encode("utf-8"), hashlib.sha256).hexdigest()

    def add(self, ids: Iterable[str], trigger: str) -> int:
        """Register `ids` in the warehouse and produce them to `erased_ids` (both idempotent: an Id registered
        before is produced again, so a run that failed half-way is completed by the next); returns how many
        were new in the warehouse."""
        if self.erased_ids is None:
            raise ConfigurationError(
                "this erasure register has no erased_ids topic, so the scoring statements would not learn of the "
                "erasure: build it with ErasureRegister.for_profile(...) or pass erased_ids=ErasedIdsTopic(kafka)"
            )
        wanted = sorted(set(ids))
        hashes = sorted({self.digest(i) for i in wanted})
        if not hashes:
            return 0
        frame = pd.DataFrame({"id_hash": hashes, "trigger": trigger, "erased_at": pd.Timestamp.now(tz="UTC")})
        new = self.warehouse.insert_new(REGISTER_TABLE, frame, ("id_hash",))
        self.erased_ids.publish(wanted)
        return new

    def erased(self, ids: Iterable[Any]) -> set[str]:
        """The Ids among `ids` that were erased (one query per call)."""
        by_hash: dict[str, list[str]] = {}
        for record_id in {i for i in ids if isinstance(i, str) and i}:
            by_hash.setdefault(self.digest(record_id), []).append(record_id)
        if not by_hash:
            return set()
        found = self.warehouse.query(
            f"SELECT DISTINCT id_hash FROM {REGISTER_TABLE} WHERE id_hash IN UNNEST(@hashes)",
            {"hashes": sorted(by_hash)},
        )
        return {record_id for h in found["id_hash"] for record_id in by_hash.get(h, [])}


def register_size(warehouse: Warehouse) -> int:
    return int(warehouse.query(f"SELECT COUNT(*) AS n FROM {REGISTER_TABLE}")["n"].iloc[0])


# ---- erasing --------------------------------------------------------------------------------------


class ScoreClearer(Protocol):
    """A CRM writer (`crm.writeback.CrmWriter`): clears the score fields of records in the CRM."""

    target: str

    def clear(self, records: list[dict[str, Any]]) -> list[Any]:
        """Clear `records` (Id, _ObjectType); return per-record failures (with `.record` and `.reason`)."""


@dataclass
class ErasureReport:
    ids: int
    rows_deleted: dict[str, int] = field(default_factory=dict)
    newly_registered: int = 0
    crm_target: Optional[str] = None
    crm_cleared: int = 0
    crm_failures: list[tuple[str, str]] = field(default_factory=list)  # (Id, reason): shown to the operator only

    @property
    def total_rows(self) -> int:
        return sum(self.rows_deleted.values())

    def summary(self) -> str:
        """Counts only (no Id): safe to log."""
        tables = ", ".join(f"{t} {n}" for t, n in self.rows_deleted.items() if n) or "none"
        crm = (
            f"; CRM {self.crm_target}: {self.crm_cleared} cleared, {len(self.crm_failures)} failed"
            if self.crm_target
            else ""
        )
        return f"{self.ids} Id(s) erased, {self.total_rows} row(s) deleted ({tables}){crm}"


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """Only the parameters `sql` names (DuckDB refuses extra ones)."""
    return {k: v for k, v in params.items() if f"@{k}" in sql}


def _counts(warehouse: Warehouse, specs: Sequence[TableSpec], params: dict[str, Any]) -> dict[str, int]:
    sql = " UNION ALL ".join(
        f"SELECT '{s.name}' AS table_name, COUNT(*) AS n FROM {s.name} WHERE {_ids_condition(s)}" for s in specs
    )
    frame = warehouse.query(sql, _used(sql, params))
    counts = {str(t): int(n) for t, n in zip(frame["table_name"], frame["n"], strict=True)}
    return {s.name: counts.get(s.name, 0) for s in specs}


def _object_types(warehouse: Warehouse, specs: Sequence[TableSpec], ids: list[str]) -> dict[str, str]:
    """Each Id's `_ObjectType` as the warehouse knows it (read before the rows are deleted)."""
    typed = [s for s in specs if "_ObjectType" in s.column_names]
    if not typed:
        return {}
    sql = " UNION DISTINCT ".join(
        f"SELECT Id, _ObjectType FROM {s.name} WHERE Id IN UNNEST(@ids) AND _ObjectType IS NOT NULL" for s in typed
    )
    frame = warehouse.query(sql, {"ids": ids})
    return {str(i): str(t) for i, t in zip(frame["Id"], frame["_ObjectType"], strict=True)}


def erase_leads(
    ids: Iterable[str],
    warehouse: Warehouse,
    register: ErasureRegister,
    crm: Optional[ScoreClearer] = None,
    trigger: str = TRIGGER_REQUEST,
) -> ErasureReport:
    """Erase `ids` from every table we own (and clear their scores in `crm`); idempotent.

    Raises `ErasureIncomplete` if a row of an erased Id is still there afterwards, and the CRM writer's
    transient errors (run it again: every step is idempotent).
    """
    wanted = sorted({i.strip() for i in ids if isinstance(i, str) and i.strip()})
    report = ErasureReport(ids=len(wanted))
    if not wanted:
        return report
    warehouse.ensure_tables()
    specs = erasable_tables(warehouse.dialect)
    params = {"ids": wanted, "quoted_ids": [json.dumps(i) for i in wanted]}
    # 1. first the register: from now on the sink and the writeback drop the Ids' records, and the scoring
    #    statements (erased_ids topic) their new ones
    report.newly_registered = register.add(wanted, trigger)
    types = _object_types(warehouse, specs, wanted) if crm is not None else {}
    # 2. every row of every table with an Id column
    report.rows_deleted = _counts(warehouse, specs, params)
    for spec in specs:
        if report.rows_deleted[spec.name]:
            sql = f"DELETE FROM {spec.name} WHERE {_ids_condition(spec)}"
            warehouse.execute(sql, _used(sql, params))
    # 3. the CRM's copy of the score
    if crm is not None:
        report.crm_target = crm.target
        records, unknown = [], []
        for record_id in wanted:
            object_type = types.get(record_id) or KEY_PREFIX_OBJECTS.get(record_id[:3])
            if object_type:
                records.append({"Id": record_id, "_ObjectType": object_type})
            else:
                unknown.append(record_id)
        failures = crm.clear(records) if records else []
        report.crm_failures = [(str(f.record.get("Id")), f.reason) for f in failures]
        report.crm_failures += [
            (
                i,
                "object type unknown: not in the warehouse and not a Lead (00Q) or Contact (003) "
                "Id; clear its score in the CRM by hand",
            )
            for i in unknown
        ]
        report.crm_cleared = len(records) - len(failures)
    # 4. nothing left
    remaining = {t: n for t, n in _counts(warehouse, specs, params).items() if n}
    if remaining:
        raise ErasureIncomplete(
            f"after erasing {len(wanted)} Id(s), rows remain in "
            f"{', '.join(f'{t} ({n})' for t, n in remaining.items())} (written concurrently?); "
            "run the erasure again"
        )
    warehouse.purge_deleted()
    log.info("erasure (%s): %s", trigger, report.summary())
    return report
