"""The pipeline's Kafka topics: one list, used by the Flink SQL, the workers, the sensors and tests."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TopicSpec:
    name: str
    description: str
    partitions: int = 3
    retention_ms: int = 7 * 24 * 3600 * 1000
    cleanup_policy: str = "delete"
    extra_config: dict[str, str] = field(default_factory=dict)

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

TOPICS: tuple[TopicSpec, ...] = (
    TopicSpec(INPUT_RAW, "CRM change records as JSON (key = Id), from the source connector or replay"),
    TopicSpec(INPUT_AVRO, "records that passed the contract, as Avro"),
    TopicSpec(LEADS, "input_avro records with _ObjectType = Lead"),
    TopicSpec(CONTACTS, "input_avro records with _ObjectType = Contact"),
    TopicSpec(LEAD_SCORES, "scores of Leads (contract section 2), read by the writeback and the sink"),
    TopicSpec(CONTACT_SCORES, "scores of Contacts (contract section 2)"),
    TopicSpec(LEAD_SCORES_SHADOW, "scores of a challenger model on the live stream (contract section 2b); "
                                  "read by the sink into the score ledger, never written back to the CRM"),
    TopicSpec(DLQ, "records that failed the contract (raw payload) or got no usable score (Id + model answer), "
                   "with the reason", partitions=1,
              retention_ms=30 * 24 * 3600 * 1000),
)
TOPICS_BY_NAME = {t.name: t for t in TOPICS}
SCORE_TOPICS = (LEAD_SCORES, CONTACT_SCORES)  # the champion's scores: the writeback reads these only
SHADOW_SCORE_TOPICS = (LEAD_SCORES_SHADOW,)  # the challenger's: the sink's score ledger only
