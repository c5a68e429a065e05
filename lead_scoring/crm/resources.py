"""The CRM the writeback writes scores to: the role (`CrmResource`) and the local implementation.

Local profile: `crm_leads` in the warehouse (`LocalCrm`). gcp profile: Salesforce (`SalesforceCrm`, in
salesforce.py), written through Bulk API 2.0.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Optional

import dagster as dg
from pydantic import Field

from lead_scoring.crm.echo import CrmEcho, EchoingCrmWriter
from lead_scoring.crm.writeback import CrmWriter, LocalCrmWriter
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.topics import INPUT_RAW, SCORE_TOPICS
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)


class CrmResource(dg.ConfigurableResource, ABC):
    """Where scores are written back."""

    @abstractmethod
    def writer(self, warehouse: Warehouse) -> CrmWriter:
        """A writer of score records (per-record failures returned, transient errors raised)."""

    def echoing_writer(
        self, warehouse: Warehouse, kafka: KafkaResource, input_topic: Optional[str] = INPUT_RAW
    ) -> CrmWriter:
        """The writer the writeback worker uses: for a CRM whose writes come back to the pipeline on their own
        (Salesforce: its source polls on LastModifiedDate), the plain writer."""
        return self.writer(warehouse)


class LocalCrm(CrmResource):
    """The local profile's CRM: the `crm_leads` table of the warehouse, which echoes like Salesforce."""

    echo: bool = Field(
        default=True,
        description=(
            "a write moves the record's LastModifiedDate and sends it back to input_raw, as Salesforce's source "
            "does (crm/echo.py); false: writes stay in crm_leads"
        ),
    )
    echo_interval_s: float = Field(
        default=1.0,
        gt=0,
        description=(
            "how often the echo (its own thread, like Salesforce's polling source) looks again for written records "
            "that have not landed in crm_leads_raw yet"
        ),
    )

    def writer(self, warehouse: Warehouse) -> CrmWriter:
        return LocalCrmWriter(warehouse)

    def echoing_writer(
        self, warehouse: Warehouse, kafka: KafkaResource, input_topic: Optional[str] = INPUT_RAW
    ) -> CrmWriter:
        """With `echo` (the default), a writer whose writes come back to `input_topic`; None (a writeback on
        topics that are not a pipeline's, so no input_raw to echo to): the plain writer."""
        if not self.echo or input_topic is None:
            if self.echo:
                log.info("local CRM echo off: the writeback reads no pipeline's score topics")
            return self.writer(warehouse)
        echo = CrmEcho(warehouse, kafka, input_topic, wait_s=0.0)  # not landed yet: looked for again next round
        return EchoingCrmWriter(self.writer(warehouse), echo, interval_s=self.echo_interval_s)


def input_topic_of(score_topics: Sequence[str]) -> Optional[str]:
    """`input_raw` with the prefix of the pipeline score topics a writeback reads (tests run on prefixed topics);
    None when they are no pipeline's (`<prefix>lead_scores`, `<prefix>contact_scores`)."""
    for topic in score_topics:
        for name in SCORE_TOPICS:
            if topic.endswith(name):
                return topic[: -len(name)] + INPUT_RAW
    return None
