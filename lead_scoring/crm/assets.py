"""Confluent Cloud connector configs of the CRM edges, rendered from the project as Dagster assets.

In production (gcp profile) the fully managed connectors do the work the local workers do:
Salesforce Bulk API 2.0 source -> `input_raw`, SObject sink `lead_scores`/`contact_scores` -> Salesforce,
BigQuery Sink V2 -> the warehouse tables. Each asset renders its connectors' JSON from the topic list,
the contract and the warehouse table names, writes it to a content-addressed file
(`<state>/connectors/<asset>/<sha12>.json`, plus `latest.json`) and reports it as metadata.

Secrets are never rendered: they appear as `${VARIABLE}` placeholders, substituted when the config is
applied (docs/production.md). Property names and values are the fully managed connectors' user-facing ones:
the tests check every rendered key and value against Confluent's own resolved templates
(confluentinc/connect-migration-utility, pinned copies in lead_scoring_tests/vendor/connect_migration_utility)
and our transcription of the reference pages (lead_scoring_tests/vendor/confluent_connectors.yaml), and
`lead-scoring preflight` asks Confluent's own validate endpoint when a Cloud API key is set.
"""

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lead_scoring.contract import OBJECT_TYPES
from lead_scoring.contract.fields import LEAD_FIELDS, RESCORE_EVENT, FieldType
from lead_scoring.contract.samples import PROBE_ID_PREFIX
from lead_scoring.settings import state_dir
from lead_scoring.streaming import topics as t
from lead_scoring.warehouse.tables import SHADOW_SCORES_TABLE, TABLES

OWNERS = ["team:data-platform"]
SCORE_TOPIC_BY_OBJECT = {"Lead": t.LEAD_SCORES, "Contact": t.CONTACT_SCORES}
# Score fields the SObject sink must not try to write (they are not Salesforce fields; `Lead_Grade__c` is,
# and is written with the score: the org needs that custom field, docs/production.md).
NON_SALESFORCE_SCORE_FIELDS = ("features_hash", "source_ts", "scored_ts")
SOBJECT_SINK_BATCH_SIZE = 200  # the template's maximum (and default) salesforce.batch.size

_KAFKA_AUTH = {
    "kafka.auth.mode": "KAFKA_API_KEY",
    "kafka.api.key": "${CONFLUENT_KAFKA_API_KEY}",
    "kafka.api.secret": "${CONFLUENT_KAFKA_API_SECRET}",
}
_SALESFORCE_AUTH = {
    "salesforce.grant.type": "JWT_BEARER",
    "salesforce.instance": "${SALESFORCE_INSTANCE_URL}",
    "salesforce.username": "${SALESFORCE_USERNAME}",
    "salesforce.consumer.key": "${SALESFORCE_CONSUMER_KEY}",
    "salesforce.jwt.keystore.file": "${SALESFORCE_JWT_KEYSTORE_FILE}",
    "salesforce.jwt.keystore.password": "${SALESFORCE_JWT_KEYSTORE_PASSWORD}",
}


class ConnectorSettings(dg.Config):
    name_prefix: str = Field(default="lead-scoring", description="prefix of the connector names")
    salesforce_since: str = Field(default="2024-01-01", description="first CreatedDate the source pulls (yyyy-MM-dd)")
    # 60 s: each poll of each object is one Bulk API 2.0 query job and >= 3 API calls whether or not anything
    # changed; at 10 s the two sources alone would take 17,280 of the org's 10,000 daily query jobs
    # (production/api_budget.py, `lead-scoring plan`)
    poll_interval_ms: int = Field(default=60_000, ge=8_700, description="how often the source asks for changes")
    output_dir: Optional[str] = Field(default=None, description="default: <state>/connectors")


# Salesforce returns datetimes; depending on the output format the managed source may emit them as epoch
# milliseconds (Connect Timestamp) or as Salesforce's own text. The contract (and validate.sql, which mirrors
# it) wants ISO-8601 text: a TimestampConverter per contract timestamp turns either into
# `2026-03-01T09:15:02.000Z` (SimpleDateFormat `XX` also parses Salesforce's `+0000` and `Z`), so nothing
# lands in the dlq as "expected an ISO-8601 timestamp". Confluent's template has no option for this
# (the old `skip.epoch.conversion.fields` is not in it), the SMT is on its list for this connector.
SALESFORCE_TIMESTAMP_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.type is FieldType.TIMESTAMP)
ISO_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXX"


def _timestamp_transforms() -> dict[str, str]:
    out = {}
    for name in SALESFORCE_TIMESTAMP_FIELDS:
        alias = f"iso{name}"
        out.update(
            {
                f"transforms.{alias}.type": "org.apache.kafka.connect.transforms.TimestampConverter$Value",
                f"transforms.{alias}.field": name,
                f"transforms.{alias}.target.type": "string",
                f"transforms.{alias}.format": ISO_TIMESTAMP_FORMAT,
            }
        )
    return out


def salesforce_source_configs(settings: ConnectorSettings) -> list[dict[str, Any]]:
    """One source connector per SObject (each stamps its own `_ObjectType`); both feed `input_raw`, key = Id.

    Property names are those of Confluent's own SalesforceBulkApiV2Source template
    (confluentinc/connect-migration-utility, kept in lead_scoring_tests/vendor/connect_migration_utility):
    one non-indexed `salesforce.object` per connector, `salesforce.since`, `kafka.topic`.
    `include.deleted.records` (queryAll) also emits soft-deleted records, so an erasure reaches the stream.
    """
    out = []
    timestamps = _timestamp_transforms()
    aliases = ["idKey", "idOnly", "objectType", *sorted({k.split(".")[1] for k in timestamps})]
    for object_type in OBJECT_TYPES:
        out.append(
            {
                "name": f"{settings.name_prefix}-salesforce-{object_type.lower()}-source",
                "config": {
                    "connector.class": "SalesforceBulkApiV2Source",
                    **_KAFKA_AUTH,
                    **_SALESFORCE_AUTH,
                    "salesforce.object": object_type,
                    "kafka.topic": t.INPUT_RAW,
                    "salesforce.since": settings.salesforce_since,
                    "include.deleted.records": "true",  # erasure needs the delete events (the Recycle Bin's 15 days)
                    "poll.interval.ms": str(settings.poll_interval_ms),
                    "output.data.format": "JSON",  # input_raw is schemaless JSON (contract section 1)
                    "tasks.max": "1",
                    # key = Id; `_ObjectType` routes the record in Flink. `_EventType` defaults to created in
                    # the contract; updates are recognised by LastModifiedDate > CreatedDate downstream.
                    "transforms": ",".join(aliases),
                    "transforms.idKey.type": "org.apache.kafka.connect.transforms.ValueToKey",
                    "transforms.idKey.fields": "Id",
                    "transforms.idOnly.type": "org.apache.kafka.connect.transforms.ExtractField$Key",
                    "transforms.idOnly.field": "Id",
                    "transforms.objectType.type": "org.apache.kafka.connect.transforms.InsertField$Value",
                    "transforms.objectType.static.field": "_ObjectType",
                    "transforms.objectType.static.value": object_type,
                    **timestamps,
                },
            }
        )
    return out


def salesforce_sink_configs(settings: ConnectorSettings) -> list[dict[str, Any]]:
    """One SObject sink for both score topics (object1 = Lead, object2 = Contact): update by the value's Id.

    The fully managed connector's object-indexed properties; `behavior.on.api.errors = ignore` (the managed
    name of the plugin's `log`): a record Salesforce rejects goes to the connector's error topic and the
    rest go on.
    """
    config: dict[str, Any] = {
        "connector.class": "SalesforceSObjectSink",
        **_KAFKA_AUTH,
        **_SALESFORCE_AUTH,
        "topics": ",".join(SCORE_TOPIC_BY_OBJECT.values()),
        "input.data.format": "AVRO",  # the score topics use Schema Registry in Confluent Cloud
        "salesforce.object.num": str(len(SCORE_TOPIC_BY_OBJECT)),
        # Batching (Confluent's template: off by default, batch size up to 200): one sObject Collections
        # request per batch instead of one API call per record -- the org's daily API allocation
        # (`lead-scoring plan`, `lead-scoring preflight`). Not all-or-none: one rejected Lead must not
        # fail the other 199.
        "salesforce.enable.batching": "true",
        "salesforce.batch.size": str(SOBJECT_SINK_BATCH_SIZE),
        "salesforce.all.or.none": "false",
    }
    for i, (object_type, topic) in enumerate(SCORE_TOPIC_BY_OBJECT.items(), start=1):
        config.update(
            {
                f"salesforce.object{i}": object_type,
                f"salesforce.object{i}.topics": topic,
                f"salesforce.object{i}.override.event.type": "true",  # always update by Id, whatever `_EventType` says
                f"salesforce.object{i}.sink.operation": "update",
                f"salesforce.object{i}.use.custom.id.field": "false",
                f"salesforce.object{i}.ignore.fields": ",".join(NON_SALESFORCE_SCORE_FIELDS),
                f"salesforce.object{i}.ignore.reference.fields": "true",
            }
        )
    config.update(
        {
            "behavior.on.api.errors": "ignore",
            "tasks.max": "1",
            # latency probes are not real leads: drop them before they reach Salesforce
            "transforms": "dropProbes",
            "transforms.dropProbes.type": "io.confluent.connect.transforms.Filter$Value",
            "transforms.dropProbes.filter.condition": f"$[?(@.Id =~ /{PROBE_ID_PREFIX}.*/)]",
            "transforms.dropProbes.filter.type": "exclude",
            "transforms.dropProbes.missing.or.null.behavior": "include",
        }
    )
    return [{"name": f"{settings.name_prefix}-salesforce-scores-sink", "config": config}]


def bigquery_sink_configs(settings: ConnectorSettings) -> list[dict[str, Any]]:
    """BigQuery Sink V2 (Storage Write API): validated leads and scores into the warehouse tables."""
    # the challenger's shadow scores too: with the champion's they are the ledger (`lead_score_history`, a view
    # over both tables in BigQuery: warehouse.tables.LEDGER_VIEW_SQL), as the local sink worker keeps it
    topic_to_table = {
        t.INPUT_AVRO: "crm_leads_raw",
        t.LEAD_SCORES: "lead_scores",
        t.CONTACT_SCORES: "lead_scores",
        t.LEAD_SCORES_SHADOW: SHADOW_SCORES_TABLE,
    }
    for table in set(topic_to_table.values()):
        assert table in TABLES, table  # the tables the monitoring and training read
    return [
        {
            "name": f"{settings.name_prefix}-bigquery-sink",
            "config": {
                "connector.class": "BigQueryStorageSink",
                **_KAFKA_AUTH,
                "authentication.method": "Google cloud service account",
                "keyfile": "${GCP_SERVICE_ACCOUNT_KEY_JSON}",
                "project": "${LEAD_SCORING_GCP_PROJECT}",
                "datasets": "${LEAD_SCORING_BQ_DATASET}",
                # input_avro (contract-checked by Flink) rather than input_raw: bad records are in the dlq
                "topics": ",".join(topic_to_table),
                "topic2table.map": ",".join(f"{k}:{v}" for k, v in topic_to_table.items()),
                "input.data.format": "AVRO",
                # Flink writes the Id as a raw UTF-8 string key (key.format 'raw'); the template's two defaults
                # (BYTES in the connector's entry, JSON in the shared one) would not read it as text / not at all.
                "input.key.format": "STRING",
                "ingestion.mode": "STREAMING",
                "auto.create.tables": "DISABLED",  # tables come from the contract DDL (lead_scoring.warehouse.tables)
                "auto.update.schemas": "DISABLED",
                "tasks.max": "1",
                # re-score requests (`_EventType` = 'rescore': promotion.rescore) are no CRM change: kept out of
                # crm_leads_raw, like the local sink does; scores are 'updated' and pass.
                # The bookkeeping columns of the raw tables; probes keep _source = 'stream' here (training drops
                # them by Id), where the local sink tags them 'probe'
                "transforms": "dropRescores,source,ingested",
                "transforms.dropRescores.type": "io.confluent.connect.transforms.Filter$Value",
                "transforms.dropRescores.filter.condition": f"$[?(@._EventType == '{RESCORE_EVENT}')]",
                "transforms.dropRescores.filter.type": "exclude",
                "transforms.dropRescores.missing.or.null.behavior": "include",
                "transforms.source.type": "org.apache.kafka.connect.transforms.InsertField$Value",
                "transforms.source.static.field": "_source",
                "transforms.source.static.value": "stream",
                "transforms.ingested.type": "org.apache.kafka.connect.transforms.InsertField$Value",
                "transforms.ingested.timestamp.field": "_ingested_at",
            },
        }
    ]


def _materialize(
    context: dg.AssetExecutionContext, asset_name: str, configs: list[dict[str, Any]], settings: ConnectorSettings
) -> dg.MaterializeResult:
    text = json.dumps(configs, indent=2, sort_keys=True) + "\n"
    digest = hashlib.sha256(text.encode()).hexdigest()
    folder = Path(settings.output_dir) if settings.output_dir else state_dir() / "connectors"
    folder = folder / asset_name
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{digest[:12]}.json"
    path.write_text(text)
    (folder / "latest.json").write_text(text)
    placeholders = sorted({v for c in configs for v in c["config"].values() if isinstance(v, str) and "${" in v})
    context.log.info("wrote %d connector config(s) to %s", len(configs), path)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "sha256": digest,
            "connectors": ", ".join(c["name"] for c in configs),
            "placeholders": ", ".join(placeholders),
            "config": dg.MetadataValue.md(f"```json\n{text}```"),
        },
        data_version=dg.DataVersion(digest[:16]),
    )


@dg.asset(group_name="crm", kinds={"salesforce", "kafka"}, owners=OWNERS)
def salesforce_source_connector_config(
    context: dg.AssetExecutionContext, config: ConnectorSettings
) -> dg.MaterializeResult:
    """Confluent Salesforce Bulk API 2.0 source connectors (Lead, Contact -> input_raw), secrets as placeholders."""
    return _materialize(context, "salesforce_source_connector_config", salesforce_source_configs(config), config)


@dg.asset(group_name="crm", kinds={"salesforce", "kafka"}, owners=OWNERS)
def salesforce_sink_connector_config(
    context: dg.AssetExecutionContext, config: ConnectorSettings
) -> dg.MaterializeResult:
    """Confluent SObject sink connectors writing lead/contact scores back to Salesforce, secrets as placeholders."""
    return _materialize(context, "salesforce_sink_connector_config", salesforce_sink_configs(config), config)


@dg.asset(group_name="crm", kinds={"bigquery", "kafka"}, owners=OWNERS)
def bigquery_sink_connector_config(
    context: dg.AssetExecutionContext, config: ConnectorSettings
) -> dg.MaterializeResult:
    """Confluent BigQuery Sink V2 connector landing input_avro and the scores in the warehouse tables."""
    return _materialize(context, "bigquery_sink_connector_config", bigquery_sink_configs(config), config)


CONNECTOR_ASSETS = [
    salesforce_source_connector_config,
    salesforce_sink_connector_config,
    bigquery_sink_connector_config,
]
