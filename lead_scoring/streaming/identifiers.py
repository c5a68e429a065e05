"""What a value from configuration may look like before it is rendered into Flink SQL, and how it is quoted.

The SQL templates are rendered with Jinja (`autoescape=False`: it is SQL, not HTML), and some settings
come from Dagster config or the environment: a `topic_prefix` holding a quote would close the string
literal and add a connector option of the caller's choosing. So every such value is checked against a
strict pattern when `RenderSettings` is built (none of them may contain a quote, a backtick, a backslash,
whitespace other than a single space in a duration, or a newline), and `sql_string` / `sql_identifier`
quote the values that are rendered through Python rather than a template.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Kafka topic names allow [a-zA-Z0-9._-] (kafka.common.internals.Topic.LEGAL_CHARS); a prefix may be empty.
TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,100}$")
# statement / consumer-group prefixes, model names and versions, connection names
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
HOST_PORT = r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}"
BOOTSTRAP = re.compile(rf"^{HOST_PORT}(?:,{HOST_PORT})*$")
URL = r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~:/@%+=${}-]*)?"
# the cluster profile lists every replica, comma-separated; `lead-scoring plan` shows unset parts as ${VARIABLE}
URLS = re.compile(rf"^{URL}(?:,{URL})*$")
DURATION = re.compile(
    r"^[0-9]{1,9}(?:\.[0-9]{1,3})? ?(?:ms|s|sec|min|h|d|milli|millis|second|seconds|minute|"
    r"minutes|hour|hours|day|days)?$"
)
PROPERTY_KEY = re.compile(r"^[a-z][a-z0-9.-]{0,127}$")
# non-secret Kafka client settings: protocol and mechanism names, a CA bundle's path
PROPERTY_VALUE = re.compile(r"^[A-Za-z0-9_./:@+=,-]{1,1024}$")

# RenderSettings field -> (pattern, what it should look like)
FIELD_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "model_version": (NAME, "a model version, e.g. m20260101-120000-abc123"),
    "model_endpoint": (URLS, "http(s) URL(s) without quotes or spaces"),
    "model_provider": (NAME, "kserve, triton or vertexai"),
    "kafka_bootstrap": (BOOTSTRAP, "host:port[,host:port...]"),
    "topic_prefix": (TOPIC_PREFIX, "letters, digits, '.', '_' and '-' only (Kafka's topic characters)"),
    "group_prefix": (NAME, "letters, digits, '.', '_' and '-'"),
    "statement_prefix": (NAME, "letters, digits, '.', '_' and '-'"),
    "server_model_name": (NAME, "letters, digits, '.', '_' and '-'"),
    "vertex_connection": (NAME, "letters, digits, '.', '_' and '-'"),
    "model_timeout": (DURATION, "a duration such as 10s or '5 min'"),
    "model_retry_timeout": (DURATION, "a duration such as 10s or '5 min'"),
    "model_batch_linger": (DURATION, "a duration such as '10 ms'"),
    "checkpoint_interval": (DURATION, "a duration such as '60 s'"),
    "dedup_ttl": (DURATION, "a duration such as '5 min'"),
    "buffer_timeout": (DURATION, "a duration such as '5 ms'"),
    "validation": (NAME, "udf or sql"),
}


class UnsafeSqlValue(ValueError):
    """A configuration value that would change the meaning of the rendered SQL; the message names the field."""


@dataclass(frozen=True)
class Problem:
    field: str
    value: Any
    expected: str
    pattern: str

    def __str__(self) -> str:
        return (
            f"{self.field} = {str(self.value)[:120]!r} does not match the pattern {self.pattern} it needs to be "
            f"rendered into Flink SQL safely; use {self.expected}"
        )


def check(field: str, value: Any, pattern: re.Pattern[str], expected: str) -> Problem | None:
    if isinstance(value, str) and pattern.fullmatch(value):  # fullmatch: `$` alone lets a final newline by
        return None
    return Problem(field, value, expected, pattern.pattern)


def validate_render_settings(settings: Any) -> None:
    """Raise `UnsafeSqlValue` naming every field of `settings` (a `RenderSettings`) that could break out of
    its place in the SQL. Integers and booleans are typed; they are checked to be exactly that."""
    problems = [
        p
        for name, (pattern, expected) in FIELD_PATTERNS.items()
        if (p := check(name, getattr(settings, name), pattern, expected)) is not None
    ]
    for key, value in settings.kafka_properties:
        problems += [
            p
            for p in (
                check("kafka_properties key", key, PROPERTY_KEY, "a Kafka client property name"),
                check(
                    f"kafka_properties[{key!r}]", value, PROPERTY_VALUE, "a value without quotes, spaces or backslashes"
                ),
            )
            if p is not None
        ]
    for name in (
        "model_batch_size",
        "producer_linger_ms",
        "async_capacity",
        "validate_parallelism",
        "route_parallelism",
        "scoring_parallelism",
    ):
        value = getattr(settings, name)
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(Problem(name, value, "an integer", "int"))
    if problems:
        raise UnsafeSqlValue("; ".join(str(p) for p in problems))


def sql_string(value: str) -> str:
    """A Flink SQL string literal: quotes doubled, the one escape Flink SQL knows."""
    return "'" + value.replace("'", "''") + "'"


def sql_identifier(name: str) -> str:
    """A Flink SQL identifier in backticks: backticks doubled."""
    return "`" + name.replace("`", "``") + "`"
