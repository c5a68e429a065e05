"""Full re-score: every open lead and contact of the CRM scored again by a new champion, through the pipeline.

What is re-scored: the latest state of every Id in `crm_leads_raw` (the CRM's records as the warehouse has
them), unless that Id is converted (its latest known `IsConverted` is true), deleted (its latest event is
`deleted`; erased Ids have no rows left), a probe (`PROBE-`), or part of the shipped sample (`_source = 'seed'`:
warehouse rows only, no CRM record; `include_seed` adds them). Streamed demo leads (`DEMO-`) and imported
leads are CRM records and are re-scored.

How: each record is produced to `input_raw` again, unchanged but for `_EventType` = 'rescore' (the contract's
`RESCORE_EVENT`), with ONE Kafka timestamp for the whole run. A value, not a Kafka header: it survives every
statement in both dialects (Confluent Cloud's statements drop headers), so the sinks of every profile tell a
re-score request from a CRM change (the local sink and the BigQuery sink keep it out of `crm_leads_raw`).
validate -> route -> ML_PREDICT score it like any change: the scoring stage's echo suppression keys a re-score
request on (Id, features key, the run's timestamp), so an unchanged lead is scored once per run
(streaming/sql/unchanged.sql); the writeback writes the new score to the CRM and the ledger gets it.

Resumable and idempotent, with a checkpoint per chunk in the warehouse table `rescore_runs` (one row per run:
counts, the last Id produced while it runs, status). Records go out in Id order, `chunk_size` at a time; after a chunk
is acknowledged by the broker the run's row records its last Id. A restart (same `run_id`) continues after that
Id; a finished run produces nothing again. The chunk that was in flight when a run died is produced once more
on resume, with the run's same Kafka timestamp, so the scoring stage drops those duplicates (its
de-duplication state lives `dedup_ttl`) instead of scoring them twice.

Pace: `max_rate` records/s, produced in bursts of `burst` (one SObject sink batch, so a burst is written in few
API calls); callers take it from `production.api_budget.rescore_pace`, so the write-backs a re-score causes stay
within a share of the CRM's daily API allocation in every profile (Salesforce's in gcp, the local CRM's own).

Backpressure: at most `max_in_flight` records produced and not yet scored (the score topics' growth since the
run started), so live leads wait behind at most that many re-score requests, not behind the whole CRM.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import pandas as pd

from lead_scoring.contract.fields import FIELD_NAMES, RESCORE_EVENT
from lead_scoring.contract.samples import PROBE_ID_PREFIX
from lead_scoring.crm.echo import record_payloads
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import end_offset
from lead_scoring.streaming.topics import CONTACT_SCORES, INPUT_RAW, LEAD_SCORES
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

RESCORE_TABLE = "rescore_runs"
RUNNING, DONE = "running", "done"


def open_records_sql(include_seed: bool = False, limit: Optional[int] = None) -> str:
    """The latest state of every open (not converted, not deleted) Lead / Contact, Ids after @after, by Id."""
    columns = ", ".join(f"`{name}`" for name in FIELD_NAMES)
    seed = "" if include_seed else "\n    AND _source <> 'seed'"
    page = f"\nLIMIT {int(limit)}" if limit else ""
    return f"""
WITH latest AS (
  SELECT
    *,
    LAST_VALUE(IsConverted IGNORE NULLS) OVER (
      PARTITION BY Id ORDER BY LastModifiedDate, _ingested_at
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ) AS converted_now
  FROM crm_leads_raw
  WHERE NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}'){seed}
  QUALIFY ROW_NUMBER() OVER (PARTITION BY Id ORDER BY LastModifiedDate DESC, _ingested_at DESC) = 1
)
SELECT {columns}
FROM latest
WHERE COALESCE(converted_now, FALSE) = FALSE
  AND COALESCE(_EventType, 'created') <> 'deleted'
  AND Id > @after
ORDER BY Id{page}
""".strip()


def count_open_sql(include_seed: bool = False) -> str:
    inner = open_records_sql(include_seed)
    return f"SELECT COUNT(*) AS n FROM ({inner}) AS open_records"


@dataclass
class RescoreRun:
    """One re-score run: what it rescores with, where it is (its row in `rescore_runs`)."""

    run_id: str
    model_version: str
    source_ms: int  # the Kafka timestamp of every record of the run
    total: int
    produced: int = 0
    cursor: Optional[str] = None  # last Id produced (cleared when done)
    status: str = RUNNING
    started_at: Optional[pd.Timestamp] = None
    finished_at: Optional[pd.Timestamp] = None

    @property
    def done(self) -> bool:
        return self.status == DONE


@dataclass
class RescoreProgress:
    """What a progress callback sees after every chunk."""

    run: RescoreRun
    produced_now: int  # produced by this call (0 for a finished run)
    scored_estimate: int  # growth of the score topics since this call started (live scores included)
    elapsed_s: float

    @property
    def produce_rate(self) -> float:
        return self.produced_now / self.elapsed_s if self.elapsed_s > 0 else 0.0


def read_run(warehouse: Warehouse, run_id: str) -> Optional[RescoreRun]:
    rows = warehouse.query(f"SELECT * FROM {RESCORE_TABLE} WHERE run_id = @run_id", {"run_id": run_id})
    if rows.empty:
        return None
    row = rows.iloc[0]

    def value(name: str) -> Any:
        item = row[name]
        return None if item is None or (isinstance(item, float) and math.isnan(item)) or item is pd.NaT else item

    return RescoreRun(
        run_id=str(row["run_id"]),
        model_version=str(row["model_version"]),
        source_ms=int(row["source_ms"]),
        total=int(row["total"]),
        produced=int(row["produced"]),
        cursor=value("last_id") or None,
        status=str(row["status"]),
        started_at=value("started_at"),
        finished_at=value("finished_at"),
    )


def start_or_resume(
    warehouse: Warehouse,
    run_id: str,
    model_version: str,
    include_seed: bool = False,
    now: Optional[pd.Timestamp] = None,
) -> RescoreRun:
    """The run `run_id`: as checkpointed (resume, or finished), or a new one counting today's open records."""
    warehouse.ensure_tables()
    existing = read_run(warehouse, run_id)
    if existing is not None:
        if existing.model_version != model_version:
            raise ValueError(
                f"re-score run {run_id!r} rescored with {existing.model_version}, not {model_version}: "
                "use another run id for another version"
            )
        return existing
    now = now or pd.Timestamp.now(tz="UTC")
    total = int(warehouse.query(count_open_sql(include_seed), {"after": ""})["n"].iloc[0])
    run = RescoreRun(
        run_id=run_id, model_version=model_version, source_ms=int(now.value // 1_000_000), total=total, started_at=now
    )
    warehouse.append(
        RESCORE_TABLE,
        pd.DataFrame(
            [
                {
                    "run_id": run.run_id,
                    "model_version": model_version,
                    "source_ms": run.source_ms,
                    "total": total,
                    "produced": 0,
                    "last_id": None,
                    "status": RUNNING,
                    "started_at": now,
                    "updated_at": now,
                    "finished_at": None,
                }
            ]
        ),
    )
    return run


def _checkpoint(warehouse: Warehouse, run: RescoreRun) -> None:
    now = pd.Timestamp.now(tz="UTC")
    if run.done:  # the last Id is no longer needed: a finished run keeps counts only
        warehouse.execute(
            f"UPDATE {RESCORE_TABLE} SET produced = @produced, last_id = NULL, status = @status, updated_at = @now, "
            "finished_at = @now WHERE run_id = @run_id",
            {"produced": run.produced, "status": run.status, "now": now, "run_id": run.run_id},
        )
        return
    warehouse.execute(
        f"UPDATE {RESCORE_TABLE} SET produced = @produced, last_id = @last_id, updated_at = @now "
        "WHERE run_id = @run_id",
        {"produced": run.produced, "last_id": run.cursor or "", "now": now, "run_id": run.run_id},
    )


def _in_flight(kafka: KafkaResource, score_topics: tuple[str, ...], start: int, produced: int) -> tuple[int, int]:
    scored = sum(end_offset(kafka, t) for t in score_topics) - start
    return max(0, produced - scored), scored


def rescore(
    warehouse: Warehouse,
    kafka: KafkaResource,
    run: RescoreRun,
    *,
    topic: str = INPUT_RAW,
    score_topics: tuple[str, ...] = (LEAD_SCORES, CONTACT_SCORES),
    include_seed: bool = False,
    chunk_size: int = 20_000,
    max_in_flight: int = 50_000,
    max_rate: float = 0.0,
    burst: int = 1,
    on_progress: Callable[[RescoreProgress], None] = lambda _: None,
    should_stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> RescoreRun:
    """Produce the run's remaining open records to `topic` in chunks, checkpointing after each (see module doc).

    `max_in_flight` (0: no limit) pauses producing while that many re-score requests are not scored yet;
    `max_rate` (records/s, 0: no limit) paces it, `burst` records at a time (sent together, then a pause).
    `should_stop` ends it after the current chunk (resumable).
    """
    if burst < 1:
        raise ValueError(f"burst={burst}: must be 1 or more")
    started = clock()
    if run.done:
        on_progress(RescoreProgress(run, 0, 0, 0.0))
        return run
    producer = kafka.producer(
        **{
            "linger.ms": 20,
            "batch.num.messages": 10_000,
            "compression.type": "lz4",
            "queue.buffering.max.messages": 200_000,
        }
    )
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    scores_at_start = sum(end_offset(kafka, t) for t in score_topics) if max_in_flight else 0
    produced_now = 0
    scored = 0
    while not should_stop():
        page = warehouse.query(open_records_sql(include_seed, limit=chunk_size), {"after": run.cursor or ""})
        if page.empty:
            break
        for key, value in record_payloads(page, _EventType=RESCORE_EVENT):
            while True:
                try:
                    producer.produce(topic, key=key, value=value, timestamp=run.source_ms, on_delivery=delivered)
                    break
                except BufferError:
                    producer.poll(0.05)
            produced_now += 1
            if max_rate > 0 and produced_now % burst == 0:
                ahead = produced_now / max_rate - (clock() - started)
                if ahead > 0:
                    producer.flush(120)  # the burst goes out together, then the pause
                    sleep(ahead)
            producer.poll(0)
        remaining = producer.flush(120)
        if remaining or failures:
            raise RuntimeError(
                f"re-score run {run.run_id}: {remaining} record(s) not acknowledged by Kafka, "
                f"{len(failures)} failed ({failures[:1]}); nothing after {run.cursor!r} is "
                "checkpointed: run it again to resume"
            )
        run.produced += len(page)
        run.cursor = str(page["Id"].iloc[-1])
        _checkpoint(warehouse, run)
        if max_in_flight:
            in_flight, scored = _in_flight(kafka, score_topics, scores_at_start, produced_now)
            while in_flight > max_in_flight and not should_stop():
                sleep(0.5)
                in_flight, scored = _in_flight(kafka, score_topics, scores_at_start, produced_now)
        on_progress(RescoreProgress(run, produced_now, scored, clock() - started))
        if len(page) < chunk_size:
            break
    else:
        log.info("re-score run %s stopped after %d records; run it again to resume", run.run_id, run.produced)
        return run
    run.status, run.finished_at = DONE, pd.Timestamp.now(tz="UTC")
    _checkpoint(warehouse, run)
    on_progress(RescoreProgress(run, produced_now, scored, clock() - started))
    log.info(
        "re-score run %s done: %d records produced (%d in this call) in %.1f s",
        run.run_id,
        run.produced,
        produced_now,
        clock() - started,
    )
    return run


def scored_by(warehouse: Warehouse, run: RescoreRun) -> int:
    """Ids scored by the run's version from its requests, as the ledger has them (where the sink runs)."""
    rows = warehouse.query(
        "SELECT COUNT(DISTINCT Id) AS n FROM lead_score_history WHERE Lead_Score_Model__c = @version "
        "AND COALESCE(shadow, FALSE) = FALSE AND source_ts = @source",
        {"version": run.model_version, "source": pd.Timestamp(run.source_ms, unit="ms", tz="UTC")},
    )
    return int(rows["n"].iloc[0])
