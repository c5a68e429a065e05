"""Erasure reaches Kafka (issue 33): no topic keeps a record past the erasure promise."""

from lead_scoring.streaming.topics import DLQ, ERASED_IDS, ERASURE_RETENTION_MS, INPUT_RAW, TOPICS, TOPICS_BY_NAME


def test_every_topic_forgets_within_the_erasure_promise() -> None:
    for topic in TOPICS:
        if topic.name == ERASED_IDS:  # the register itself: Ids of erased leads only, kept as long as the erasure
            assert not topic.pii and topic.cleanup_policy == "compact"
            continue
        assert topic.cleanup_policy == "delete", topic.name  # compaction would keep the last record per Id forever
        assert int(topic.config()["retention.ms"]) <= ERASURE_RETENTION_MS, topic.name


def test_topics_holding_raw_records_are_marked_pii() -> None:
    assert TOPICS_BY_NAME[INPUT_RAW].pii and TOPICS_BY_NAME[DLQ].pii
    assert ERASURE_RETENTION_MS == 7 * 24 * 3600 * 1000  # what docs/lifecycle.md and docs/security.md promise
