"""Nothing from configuration reaches the rendered Flink SQL unless it cannot break out of its place (issue 33)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lead_scoring.streaming.identifiers import UnsafeSqlValue, sql_identifier, sql_string
from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline

GOOD = RenderSettings(
    Dialect.FLINK,
    "m20260101-000000-abcdef",
    "http://127.0.0.1:8080/v1/models/lead_scorer:predict",
    kafka_bootstrap="127.0.0.1:9092,kafka-2:9094",
    topic_prefix="t_1.a-",
    kafka_properties=(("security.protocol", "SASL_SSL"), ("ssl.truststore.location", "/etc/ca.pem")),
)


def test_good_settings_render() -> None:
    assert "'topic' = 't_1.a-" in render_pipeline(GOOD).as_text()
    RenderSettings(
        Dialect.CONFLUENT,
        "m1",
        "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/"
        "us-central1/endpoints/${LEAD_SCORING_VERTEX_ENDPOINT}",
    )
    replace(
        GOOD,
        model_endpoint="http://10.0.0.5:8080,http://10.0.0.6:8080",
        checkpoint_interval="60 s",
        dedup_ttl="5 min",
        model_timeout="10s",
    )


@pytest.mark.parametrize(
    "field, value",
    [
        ("topic_prefix", "x', 'properties.security.protocol' = 'PLAINTEXT"),
        ("topic_prefix", "a b"),
        ("topic_prefix", "a`b"),
        ("group_prefix", "g'"),
        ("statement_prefix", "s\nDROP TABLE x"),
        ("server_model_name", "m')--"),
        ("vertex_connection", "c' "),
        ("model_version", "v1\n-- "),
        ("kafka_bootstrap", "127.0.0.1:9092', 'x' = 'y"),
        ("model_endpoint", "http://h:1/x' , 'provider' = 'evil"),
        ("model_timeout", "10s'"),
        ("dedup_ttl", "5 min') --"),
        ("checkpoint_interval", "1 s\n"),
        ("kafka_properties", (("security.protocol", "SSL' , 'x'='y"),)),
        ("kafka_properties", (("a'b", "x"),)),
        ("model_batch_size", "256"),
    ],
)
def test_a_value_that_could_break_out_of_the_sql_is_refused_naming_its_field(field: str, value) -> None:
    with pytest.raises(UnsafeSqlValue) as refused:
        replace(GOOD, **{field: value})
    assert (field.split("[")[0] if field != "kafka_properties" else "kafka_properties") in str(refused.value)
    assert "does not match" in str(refused.value)


def test_topic_prefix_with_a_quote_says_what_to_use() -> None:
    with pytest.raises(UnsafeSqlValue, match=r"topic_prefix = .*letters, digits, '\.', '_' and '-' only"):
        replace(GOOD, topic_prefix="it's")


def test_quoting_helpers() -> None:
    assert sql_string("it's") == "'it''s'"
    assert sql_identifier("a`b") == "`a``b`"
