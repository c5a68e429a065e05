"""Salesforce API arithmetic of the gcp profile: what the connectors cost the org per day, against its allocation.

Salesforce blocks *every* API client of an org once its rolling 24-hour allocation is spent, so the
round trip is sized before it runs (`lead-scoring plan`) and checked against the org's own `/limits`
(`lead-scoring preflight`). The projection comes from the rendered connector configs (crm/assets.py), so a
change of poll interval, batching or batch size shows up here:

* Bulk API 2.0 source, per object (Lead, Contact) and per poll: one query job (counted in
  `DailyBulkV2QueryJobs`) and at least three REST calls -- create the job, read its state, read the results
  (one more per `result.max.rows` rows). It polls whether or not anything changed. The rows read are the
  changes plus the echo of each score written (a write moves `LastModifiedDate`; the statements drop the
  echo, the source still reads it).
* SObject sink: one call per record without batching; with batching, one call per batch of up to
  `salesforce.batch.size` records. Records reach it in bursts, one per source poll, so a batch holds at most
  the changes of one poll of one object: calls = polls x ceil(changes per poll / batch size), and never more
  than one per record.

Assumptions (stated, each a parameter): the changes are split evenly between Lead and Contact, every
change is scored and written once (echo suppression on), the org is Enterprise Edition (allocation
100,000 + 1,000 per Salesforce licence per 24 h; Unlimited and Performance add 5,000 per licence), and
Bulk API 2.0 allows 10,000 query jobs per 24 h -- preflight reads the real maxima from `/limits`.
A full re-score and the optional Salesforce latency probe are paced separately and not counted here.

The full re-score (promotion.rescore) is paced by `rescore_pace`, in every profile: its rate is the share of the
CRM's daily allocation its write-backs may use (`LEAD_SCORING_RESCORE_API_SHARE`), divided by the API calls one
re-scored record causes -- its share of a write batch (the SObject sink's, or the local writeback's micro-batch)
and, in gcp, its share of a page of the source's results when its echo is read back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from lead_scoring.contract import OBJECT_TYPES
from lead_scoring.settings import GcpSettings, LocalCrmSettings, Profile, load

SECONDS_PER_DAY = 86_400
BASE_DAILY_API_REQUESTS = 100_000
API_REQUESTS_PER_LICENSE = {"Enterprise": 1_000, "Professional": 1_000, "Unlimited": 5_000, "Performance": 5_000}
BULK_V2_QUERY_JOBS_PER_DAY = 10_000
CALLS_PER_SOURCE_POLL = 3  # create the query job, read its state, read the (first page of) results
DEFAULT_API_SHARE = 0.5  # the share of the org's allocation the pipeline may plan to use


DEFAULT_RESCORE_API_SHARE = 0.2  # the share of the daily allocation a full re-score may use
SOURCE_RESULT_MAX_ROWS = 1000  # the Bulk API 2.0 source's result page (its template default): the echo's cost
LOCAL_WRITES_PER_CALL = 500  # the local writeback's micro-batch (crm/workers.py), one "call" of the local CRM
RESCORE_BURST = 200  # records a paced re-score produces together: one SObject sink batch (its maximum size)


def daily_api_allocation(licenses: int, edition: str = "Enterprise") -> int:
    """The org's DailyApiRequests allocation: 100,000 + per-licence calls (no purchased add-ons)."""
    if edition not in API_REQUESTS_PER_LICENSE:
        raise ValueError(f"edition={edition!r}: expected one of {', '.join(API_REQUESTS_PER_LICENSE)}")
    if licenses < 0:
        raise ValueError(f"licenses={licenses}: must be 0 or more")
    return BASE_DAILY_API_REQUESTS + API_REQUESTS_PER_LICENSE[edition] * licenses


@dataclass(frozen=True)
class ApiBudget:
    """Projected calls per day of the source and sink connectors for `changes_per_day` Lead/Contact changes."""

    changes_per_day: int
    objects: int
    polls_per_day_per_object: int
    result_max_rows: int
    batching: bool
    batch_size: int
    source_query_jobs: int
    source_calls: int
    sink_calls: int
    allocation: int
    query_job_allocation: int
    share: float
    edition: str
    licenses: int

    @property
    def total_calls(self) -> int:
        return self.source_calls + self.sink_calls

    @property
    def api_fraction(self) -> float:
        return self.total_calls / self.allocation if self.allocation else math.inf

    @property
    def query_job_fraction(self) -> float:
        return self.source_query_jobs / self.query_job_allocation if self.query_job_allocation else math.inf

    def problems(self) -> list[str]:
        """Why this configuration would use more than `share` of the org's allocations (empty: it fits)."""
        out = []
        if self.api_fraction > self.share:
            out.append(
                f"{self.total_calls:,} API calls/day is {self.api_fraction:.0%} of DailyApiRequests "
                f"{self.allocation:,} (allowed share {self.share:.0%}): raise poll_interval_ms, keep the "
                f"SObject sink's batching on, or buy API add-ons"
            )
        if self.query_job_fraction > self.share:
            out.append(
                f"{self.source_query_jobs:,} Bulk API 2.0 query jobs/day is {self.query_job_fraction:.0%} "
                f"of DailyBulkV2QueryJobs {self.query_job_allocation:,} (allowed share {self.share:.0%}): "
                f"raise poll_interval_ms (each poll of each object is one job)"
            )
        return out

    def lines(self) -> list[str]:
        """The arithmetic, for people: one line per term."""
        per_poll = self.changes_per_day / self.objects / self.polls_per_day_per_object
        return [
            f"org: {self.edition} Edition, {self.licenses:,} licences -> DailyApiRequests {self.allocation:,} "
            f"(100,000 + {API_REQUESTS_PER_LICENSE.get(self.edition, 0):,} x {self.licenses:,})",
            f"source: {self.objects} objects x {self.polls_per_day_per_object:,} polls/day = "
            f"{self.source_query_jobs:,} Bulk API 2.0 query jobs/day ({self.query_job_fraction:.1%} of "
            f"{self.query_job_allocation:,}), {self.source_calls:,} API calls/day",
            f"sink: {self.changes_per_day:,} writes/day, {per_poll:.2f} per poll of one object, "
            + (f"batches of up to {self.batch_size}" if self.batching else "batching off (one call per record)")
            + f" -> {self.sink_calls:,} API calls/day",
            f"total: {self.total_calls:,} API calls/day = {self.api_fraction:.1%} of {self.allocation:,} "
            f"(allowed share {self.share:.0%})",
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "total_calls": self.total_calls,
            "api_fraction": round(self.api_fraction, 4),
            "query_job_fraction": round(self.query_job_fraction, 4),
            "problems": self.problems(),
        }


def _int(config: Mapping[str, Any], key: str, default: int) -> int:
    return int(config.get(key, default))


def project_api_budget(
    source_configs: list[dict[str, Any]],
    sink_configs: list[dict[str, Any]],
    *,
    changes_per_day: int,
    licenses: int,
    edition: str = "Enterprise",
    share: float = DEFAULT_API_SHARE,
    allocation: int | None = None,
    query_job_allocation: int = BULK_V2_QUERY_JOBS_PER_DAY,
) -> ApiBudget:
    """The projection for the rendered connector configs; `allocation` (e.g. /limits' Max) overrides the
    edition formula."""
    if changes_per_day < 0:
        raise ValueError(f"changes_per_day={changes_per_day}: must be 0 or more")
    if not 0 < share <= 1:
        raise ValueError(f"share={share}: must be in (0, 1]")
    sources = [c["config"] for c in source_configs]
    objects = len(sources) or len(OBJECT_TYPES)
    poll_ms = max(_int(c, "poll.interval.ms", 30_000) for c in sources) if sources else 30_000
    polls = math.ceil(SECONDS_PER_DAY * 1000 / poll_ms)
    max_rows = min(_int(c, "result.max.rows", 1000) for c in sources) if sources else 1000
    changes_per_object = changes_per_day / objects
    # rows read per object and day: the changes and the echo of each write
    rows_per_poll = 2 * changes_per_object / polls
    extra_pages = max(0, math.ceil(rows_per_poll / max_rows) - 1) if rows_per_poll else 0
    source_calls = objects * polls * (CALLS_PER_SOURCE_POLL + extra_pages)

    sink = sink_configs[0]["config"] if sink_configs else {}
    batching = str(sink.get("salesforce.enable.batching", "false")).lower() == "true"
    batch_size = _int(sink, "salesforce.batch.size", 200) if batching else 1
    per_poll = changes_per_object / polls
    if per_poll <= 1 or not batching:
        sink_calls = math.ceil(changes_per_day)
    else:
        sink_calls = objects * polls * math.ceil(per_poll / batch_size)
    return ApiBudget(
        changes_per_day=changes_per_day,
        objects=objects,
        polls_per_day_per_object=polls,
        result_max_rows=max_rows,
        batching=batching,
        batch_size=batch_size,
        source_query_jobs=objects * polls,
        source_calls=source_calls,
        sink_calls=sink_calls,
        allocation=allocation if allocation is not None else daily_api_allocation(licenses, edition),
        query_job_allocation=query_job_allocation,
        share=share,
        edition=edition,
        licenses=licenses,
    )


@dataclass(frozen=True)
class RescorePace:
    """How fast a full re-score may produce so that the CRM writes it causes stay within `share` of the CRM's
    daily API allocation; `max_rate` (records/s, 0: none) is an operator's lower cap."""

    crm: str  # whose allocation: "Salesforce" or "local CRM"
    records: int  # still to produce
    allocation: int  # API requests per 24 h
    share: float
    writes_per_call: int  # scores written per API call
    echo_rows_per_call: int = 0  # echo rows the source reads per API call (0: the echo costs no call)
    max_rate: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.share <= 1:
            raise ValueError(f"share={self.share}: must be in (0, 1]")
        if self.allocation < 1 or self.writes_per_call < 1 or self.records < 0:
            raise ValueError(f"allocation={self.allocation}, writes_per_call={self.writes_per_call}: must be >= 1")

    @property
    def calls_per_record(self) -> float:
        echo = 1 / self.echo_rows_per_call if self.echo_rows_per_call else 0.0
        return 1 / self.writes_per_call + echo

    @property
    def budget_rate(self) -> float:
        """Records/s at which the re-score's calls per 24 h are `share` of the allocation."""
        return self.share * self.allocation / self.calls_per_record / SECONDS_PER_DAY

    @property
    def rate(self) -> float:
        return min(self.budget_rate, self.max_rate) if self.max_rate > 0 else self.budget_rate

    @property
    def seconds(self) -> float:
        return self.records / self.rate

    @property
    def calls(self) -> int:
        return math.ceil(self.records * self.calls_per_record)

    @property
    def calls_per_day(self) -> int:
        """The calls of the run's busiest 24 h: all of them for a run shorter than a day."""
        return min(self.calls, math.ceil(self.rate * SECONDS_PER_DAY * self.calls_per_record))

    @property
    def daily_fraction(self) -> float:
        return self.calls_per_day / self.allocation

    @property
    def duration(self) -> str:
        seconds = self.seconds
        if seconds < 60:
            return f"{seconds:.0f} s"
        return f"{seconds / 60:.0f} min" if seconds < 3600 else f"{seconds / 3600:,.1f} h"

    def line(self) -> str:
        return (
            f"re-scoring {self.records:,} leads at {self.rate:,.1f}/s, ~{self.duration}, uses "
            f"{self.daily_fraction:.1%} of the daily allowance ({self.calls_per_day:,} of {self.allocation:,} "
            f"{self.crm} API requests per 24 h; allowed share {self.share:.0%}, "
            f"{self.calls_per_record:.3f} calls per record)"
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "pace_per_s": round(self.rate, 2),
            "budget_rate_per_s": round(self.budget_rate, 2),
            "expected_hours": round(self.seconds / 3600, 2),
            "api_calls": self.calls,
            "daily_allowance_share": round(self.daily_fraction, 4),
            "allowed_share": self.share,
            "daily_allocation": self.allocation,
            "crm": self.crm,
        }


def rescore_pace(profile: Profile, records: int, max_rate: float = 0.0) -> RescorePace:
    """The pace of a full re-score of `records` in `profile`, from its settings: Salesforce's allocation in gcp
    (GcpSettings: the org's /limits Max, else edition + licences), the local CRM's own elsewhere."""
    if profile is Profile.GCP:
        gcp = load(GcpSettings)
        allocation = gcp.salesforce_daily_api_requests or daily_api_allocation(
            gcp.salesforce_licenses, gcp.salesforce_edition
        )
        return RescorePace(
            crm="Salesforce",
            records=records,
            allocation=allocation,
            share=gcp.rescore_api_share,
            writes_per_call=gcp.rescore_records_per_call,
            echo_rows_per_call=SOURCE_RESULT_MAX_ROWS,
            max_rate=max_rate,
        )
    local = load(LocalCrmSettings)
    return RescorePace(
        crm="local CRM",
        records=records,
        allocation=local.local_crm_daily_api_requests,
        share=local.rescore_api_share,
        writes_per_call=LOCAL_WRITES_PER_CALL,
        max_rate=max_rate,
    )
