"""Confluent Cloud connector configs of the CRM edges, rendered from the project as Dagster assets.

In production (gcp profile) the fully managed connectors do the work the local workers do:
Salesforce Bulk API 2.0 source -> `input_raw`, SObject sink `lead_scores`/`contact_scores` -> Salesforce,
BigQuery Sink V2 -> the warehouse tables. Each asset renders its connectors' JSON from the topic list,
the contract and the warehouse table names, writes it to a content-addressed file
(`<state>/connectors/<asset>/<sha12>.json`, plus `latest.json`) and reports it as metadata.

Secrets are never rendered: they appear as `${VARIABLE}` placeholders, substituted when the config is
applied (docs/production.md). Property names and values are the fully managed connectors' user-facing ones
(Confluent Cloud's connector reference pages); the tests check every rendered key and value against our
transcription of those tables (lead_scoring_tests/vendor/confluent_connectors.yaml, with URL and date), and
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

_KAFKA_AUTH = {"kafka.auth.mode": "KAFKA_API_KEY", "kafka.api.key": "${CONFLUENT_KAFKA_API_KEY}",
               "kafka.api.secret": "${CONFLUENT_KAFKA_API_SECRET}"}
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
    poll_interval_ms: int = Field(default=10_000, ge=8_700, description="how often the source asks for changes")
    output_dir: Optional[str] = Field(default=None, description="default: <state>/connectors")


# Salesforce returns datetimes; the fully managed source turns them into epoch milliseconds unless they are
# listed here. The contract (and validate.sql, which mirrors it) wants ISO-8601 text: keep every contract
# timestamp as Salesforce's own ISO string, so nothing lands in the dlq as "expected an ISO-8601 timestamp".
SALESFORCE_TIMESTAMP_FIELDS = tuple(f.name for f in LEAD_FIELDS if f.type is FieldType.TIMESTAMP)


def salesforce_source_configs(settings: ConnectorSettings) -> list[dict[str, Any]]:
    """One source connector per SObject (each stamps its own `_ObjectType`); both feed `input_raw`, key = Id.

    The fully managed connector's object-indexed properties (`salesforce.object.num`, `salesforce.object1*`);
    incremental pulls by LastModifiedDate (the offset the connector keeps per object).
    """
    out = []
    for object_type in OBJECT_TYPES:
        out.append({"name": f"{settings.name_prefix}-salesforce-{object_type.lower()}-source", "config": {
            "connector.class": "SalesforceBulkApiV2Source",
            **_KAFKA_AUTH, **_SALESFORCE_AUTH,
            "salesforce.object.num": "1",
            "salesforce.object1": object_type,
            "salesforce.object1.topic": t.INPUT_RAW,
            "salesforce.object1.since": settings.salesforce_since,
            "salesforce.object1.offset.field.name": "LastModifiedDate",
            "salesforce.object1.skip.epoch.conversion.fields": ",".join(SALESFORCE_TIMESTAMP_FIELDS),
            "poll.interval.ms": str(settings.poll_interval_ms),
            "output.data.format": "JSON",  # input_raw is schemaless JSON (contract section 1)
            "tasks.max": "1",
            # key = Id; `_ObjectType` routes the record in Flink. `_EventType` defaults to created in
            # the contract; updates are recognised by LastModifiedDate > CreatedDate downstream.
            "transforms": "idKey,idOnly,objectType",
            "transforms.idKey.type": "org.apache.kafka.connect.transforms.ValueToKey",
            "transforms.idKey.fields": "Id",
            "transforms.idOnly.type": "org.apache.kafka.connect.transforms.ExtractField$Key",
            "transforms.idOnly.field": "Id",
            "transforms.objectType.type": "org.apache.kafka.connect.transforms.InsertField$Value",
            "transforms.objectType.static.field": "_ObjectType",
            "transforms.objectType.static.value": object_type,
        }})
    return out


def salesforce_sink_configs(settings: ConnectorSettings) -> list[dict[str, Any]]:
    """One SObject sink for both score topics (object1 = Lead, object2 = Contact): update by the value's Id.

    The fully managed connector's object-indexed properties; `behavior.on.api.errors = ignore` (the managed
    name of the plugin's `log`): a record Salesforce rejects goes to the connector's error topic and the
    rest go on.
    """
    config: dict[str, Any] = {
        "connector.class": "SalesforceSObjectSink",
        **_KAFKA_AUTH, **_SALESFORCE_AUTH,
        "topics": ",".join(SCORE_TOPIC_BY_OBJECT.values()),
        "input.data.format": "AVRO",  # the score topics use Schema Registry in Confluent Cloud
        "salesforce.object.num": str(len(SCORE_TOPIC_BY_OBJECT)),
    }
    for i, (object_type, topic) in enumerate(SCORE_TOPIC_BY_OBJECT.items(), start=1):
        config.update({
            f"salesforce.object{i}": object_type,
            f"salesforce.object{i}.topics": topic,
            f"salesforce.object{i}.override.event.type": "true",  # always update by Id, whatever `_EventType` says
            f"salesforce.object{i}.sink.operation": "update",
            f"salesforce.object{i}.use.custom.id.field": "false",
            f"salesforce.object{i}.ignore.fields": ",".join(NON_SALESFORCE_SCORE_FIELDS),
            f"salesforce.object{i}.ignore.reference.fields": "true",
        })
    config.update({
        "behavior.on.api.errors": "ignore",
        "tasks.max": "1",
        # latency probes are not real leads: drop them before they reach Salesforce
        "transforms": "dropProbes",
        "transforms.dropProbes.type": "io.confluent.connect.transforms.Filter$Value",
        "transforms.dropProbes.filter.condition": f"$[?(@.Id =~ /{PROBE_ID_PREFIX}.*/)]",
        "transforms.dropProbes.filter.type": "exclude",
        "transforms.dropProbes.missing.or.null.behavior": "include",
    })
    return [{"name": f"{settings.name_prefix}-salesforce-scores-sink", "config": config}]


def bigquery_sink_configs(settings: ConnectorSettings) -> list[dict[str, Any]]:
    """BigQuery Sink V2 (Storage Write API): validated leads and scores into the warehouse tables."""
    # the challenger's shadow scores too: with the champion's they are the ledger (`lead_score_history`, a view
    # over both tables in BigQuery: warehouse.tables.LEDGER_VIEW_SQL), as the local sink worker keeps it
    topic_to_table = {t.INPUT_AVRO: "crm_leads_raw", t.LEAD_SCORES: "lead_scores", t.CONTACT_SCORES: "lead_scores",
                      t.LEAD_SCORES_SHADOW: SHADOW_SCORES_TABLE}
    for table in set(topic_to_table.values()):
        assert table in TABLES, table  # the tables the monitoring and training read
    return [{"name": f"{settings.name_prefix}-bigquery-sink", "config": {
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
    }}]


def _materialize(context: dg.AssetExecutionContext, asset_name: str, configs: list[dict[str, Any]],
                 settings: ConnectorSettings) -> dg.MaterializeResult:
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
def salesforce_source_connector_config(context: dg.AssetExecutionContext,
                                       config: ConnectorSettings) -> dg.MaterializeResult:
    """Confluent Salesforce Bulk API 2.0 source connectors (Lead, Contact -> input_raw), secrets as placeholders."""
    return _materialize(context, "salesforce_source_connector_config", salesforce_source_configs(config), config)


@dg.asset(group_name="crm", kinds={"salesforce", "kafka"}, owners=OWNERS)
def salesforce_sink_connector_config(context: dg.AssetExecutionContext,
                                     config: ConnectorSettings) -> dg.MaterializeResult:
    """Confluent SObject sink connectors writing lead/contact scores back to Salesforce, secrets as placeholders."""
    return _materialize(context, "salesforce_sink_connector_config", salesforce_sink_configs(config), config)


@dg.asset(group_name="crm", kinds={"bigquery", "kafka"}, owners=OWNERS)
def bigquery_sink_connector_config(context: dg.AssetExecutionContext,
                                   config: ConnectorSettings) -> dg.MaterializeResult:
    """Confluent BigQuery Sink V2 connector landing input_avro and the scores in the warehouse tables."""
    return _materialize(context, "bigquery_sink_connector_config", bigquery_sink_configs(config), config)


CONNECTOR_ASSETS = [salesforce_source_connector_config, salesforce_sink_connector_config,
                    bigquery_sink_connector_config]
