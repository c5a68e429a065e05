"""The pipeline's Kafka topics: one list, used by the Flink SQL, the workers, the sensors and tests."""

from __future__ import annotations

from dataclasses import dataclass, field

# The erasure promise for Kafka (docs/lifecycle.md, docs/security.md): an erased lead's records are dropped
# by every consumer at once (the sink and the writeback check the erasure register), and are GONE from the
# brokers at most this long after they were written: every topic that can hold a PII field (a raw CRM
# record, or a copy of one) is time-retained, never compacted, for no longer than this.
ERASURE_RETENTION_MS = 7 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    partitions: int = 3
    retention_ms: int = ERASURE_RETENTION_MS
    cleanup_policy: str = "delete"
    extra_config: dict[str, str] = field(default_factory=dict)
    pii: bool = True  # holds records with PII fields (Email, Title, ...): bound by ERASURE_RETENTION_MS

    def config(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": self.cleanup_policy, **self.extra_config}


INPUT_RAW = "input_raw"
INPUT_AVRO = "input_avro"
LEADS = "leads"
CONTACTS = "contacts"
LEAD_SCORES = "lead_scores"
CONTACT_SCORES = "contact_scores"
LEAD_SCORES_SHADOW = "lead_scores_shadow"
DLQ = "dlq"
ERASED_IDS = "erased_ids"

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(INPUT_RAW, "CRM change records as JSON (key = Id), from the source connector or replay"),
    TopicSpec(INPUT_AVRO, "records that passed the contract, as Avro"),
    TopicSpec(LEADS, "input_avro records with _ObjectType = Lead"),
    TopicSpec(CONTACTS, "input_avro records with _ObjectType = Contact"),
    # scores carry the Id (a pseudonymous key), never a PII field; same retention all the same
    TopicSpec(LEAD_SCORES, "scores of Leads (contract section 2), read by the writeback and the sink", pii=False),
    TopicSpec(CONTACT_SCORES, "scores of Contacts (contract section 2)", pii=False),
    TopicSpec(
        LEAD_SCORES_SHADOW,
        "scores of a challenger model on the live stream (contract section 2b); "
        "read by the sink into the score ledger, never written back to the CRM",
        pii=False,
    ),
    # raw payloads of bad records: PII like input_raw, so the same bound (it was 30 days, past the promise)
    TopicSpec(
        DLQ,
        "records that failed the contract (raw payload) or got no usable score (Id + model answer), with the reason",
        partitions=1,
    ),
    # The erasure register as the scoring statements see it (streaming/sql/erased.sql): one record per erased Id,
    # key = Id, written by every erasure (lifecycle/erasure.py). Compacted and never time-retained: an erasure is
    # for good, so the statements must find every erased Id however old. Holds Ids only (pseudonymous keys, like
    # the score topics), no record and no PII field; small (one partition).
    TopicSpec(
        ERASED_IDS,
        "Ids of erased leads (key = Id), compacted: the scoring statements drop every record of an Id in it",
        partitions=1,
        retention_ms=-1,
        cleanup_policy="compact",
        pii=False,
    ),
)
TOPICS_BY_NAME = {t.name: t for t in TOPICS}
SCORE_TOPICS = (LEAD_SCORES, CONTACT_SCORES)  # the champion's scores: the writeback reads these only
SHADOW_SCORE_TOPICS = (LEAD_SCORES_SHADOW,)  # the challenger's: the sink's score ledger only
# Written by something other than a Flink statement (the CRM source connector, the erasure path): in Confluent
# Cloud no Flink table owns them, so the topics asset creates them in every profile.
EXTERNALLY_WRITTEN_TOPICS = (INPUT_RAW, ERASED_IDS)
