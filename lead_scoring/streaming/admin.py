"""Create the pipeline's topics idempotently (partitions, retention, cleanup policy from topics.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import tenacity
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from lead_scoring.streaming.topics import TOPICS_BY_NAME, TopicSpec

log = logging.getLogger(__name__)


@dataclass
class TopicState:
    name: str
    action: str  # created | unchanged | updated
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


class TopicError(RuntimeError):
    """A topic could not be created or brought in line with its spec."""


def _spec(topic: TopicSpec | str) -> TopicSpec:
    if isinstance(topic, TopicSpec):
        return topic
    # a pipeline topic keeps its spec; any other (a test's prefixed topic) gets one partition
    return TOPICS_BY_NAME.get(topic) or TopicSpec(topic, "created on first use", partitions=1)


def ensure_topics(
    admin: AdminClient,
    topics: Iterable[TopicSpec | str],
    prefix: str = "",
    timeout_s: float = 30.0,
    only_missing: bool = False,
) -> list[TopicState]:
    """Create missing topics; raise partitions and align retention/cleanup of existing ones; report each.

    `only_missing`: create what is missing and leave existing topics alone (the workers at start-up: the
    partitions and configs of existing topics belong to the `streaming_topics` asset); returns the created.
    """
    specs = [_spec(t) for t in topics]
    existing = admin.list_topics(timeout=timeout_s).topics
    if only_missing:
        missing = [s for s in specs if prefix + s.name not in existing]
        if not missing:
            return []
        return [st for st in ensure_topics(admin, missing, prefix, timeout_s) if st.action == "created"]
    actions: dict[str, str] = {}
    to_create = [s for s in specs if prefix + s.name not in existing]
    if to_create:
        futures = admin.create_topics(
            [
                NewTopic(prefix + s.name, num_partitions=s.partitions, replication_factor=-1, config=s.config())
                for s in to_create
            ],
            operation_timeout=timeout_s,
        )
        for name, fut in futures.items():
            try:
                fut.result()
                actions[name] = "created"
            except KafkaException as exc:
                if exc.args and getattr(exc.args[0], "code", lambda: None)() == 36:  # TOPIC_ALREADY_EXISTS (a race)
                    actions[name] = "unchanged"
                else:
                    raise TopicError(f"could not create topic {name}: {exc}") from exc
    for s in specs:
        name = prefix + s.name
        if name in actions:
            continue
        actions[name] = "unchanged"
        have = len(existing[name].partitions)
        if have < s.partitions:
            admin.create_partitions([NewPartitions(name, s.partitions)])[name].result()
            actions[name] = "updated"
        elif have > s.partitions:
            log.warning("topic %s has %d partitions, spec says %d (partitions cannot shrink)", name, have, s.partitions)

    # Align the configs we own, then read back what the broker reports.
    resources = [ConfigResource(ResourceType.TOPIC, prefix + s.name) for s in specs]
    described = _describe(admin, resources, timeout_s)
    states: list[TopicState] = []
    for s in specs:
        name = prefix + s.name
        current = {k: v.value for k, v in described[name].items()}
        drift = {k: v for k, v in s.config().items() if current.get(k) != v}
        if drift:
            res = ConfigResource(
                ResourceType.TOPIC,
                name,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in drift.items()
                ],
            )
            for fut in admin.incremental_alter_configs([res]).values():
                fut.result()
            if actions[name] == "unchanged":
                actions[name] = "updated"
            current.update(drift)
        meta = admin.list_topics(topic=name, timeout=timeout_s).topics[name]
        states.append(
            TopicState(
                name=name,
                action=actions[name],
                partitions=len(meta.partitions),
                config={k: current[k] for k in s.config()},
            )
        )
    return states


def _describe(admin: AdminClient, resources: list[ConfigResource], timeout_s: float) -> dict[str, Any]:
    """describe_configs, retried while fresh topics are not yet known to every broker component."""
    try:
        for attempt in tenacity.Retrying(
            stop=tenacity.stop_after_delay(timeout_s),
            wait=tenacity.wait_fixed(0.5),
            retry=tenacity.retry_if_exception_type(KafkaException),
            reraise=True,
        ):
            with attempt:
                return {r.name: fut.result() for r, fut in admin.describe_configs(resources).items()}
    except KafkaException as exc:
        raise TopicError(f"could not read topic configs: {exc}") from exc
    raise AssertionError("unreachable")  # pragma: no cover
