"""Both renderings of the pipeline's SQL (OSS Flink 2.3 locally, Confluent Cloud in gcp), snapshot-tested.

Regenerate after an intended change with `LEAD_SCORING_UPDATE_SNAPSHOTS=1 pytest lead_scoring_tests/streaming`
and review the diff of `snapshots/*.sql` like any code change.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from lead_scoring.contract.fields import FEATURES, FIELDS_BY_NAME, LEAD_FIELDS, REQUIRED_FIELDS
from lead_scoring.contract.validation import TIMESTAMP_PATTERN
from lead_scoring.streaming.assets import FlinkStatementsConfig
from lead_scoring.streaming.render import (
    STATEMENT_NAME,
    Dialect,
    RenderSettings,
    StatementRole,
    field_check,
    render_pipeline,
    role_of,
    statement_name,
)
from lead_scoring.streaming.topics import ERASED_IDS

SNAPSHOTS = Path(__file__).parent / "snapshots"
VERSION = "m20261123-120000-abc123"

LOCAL = RenderSettings(
    Dialect.FLINK, VERSION, "http://127.0.0.1:8080/v1/models/lead_scorer:predict", kafka_bootstrap="127.0.0.1:9092"
)
GCP = RenderSettings(
    Dialect.CONFLUENT,
    VERSION,
    "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/1:predict",
)
TRITON = RenderSettings(Dialect.FLINK, VERSION, "http://127.0.0.1:8080", model_provider="triton")
LOCAL_SQL_CHECKS = replace(LOCAL, validation="sql")
LOCAL_SHADOW = replace(
    LOCAL,
    shadow=True,
    model_endpoint="http://127.0.0.1:8080/v1/models/lead_scorer_challenger:predict",
    server_model_name="lead_scorer_challenger",
)
GCP_SHADOW = replace(GCP, shadow=True, vertex_connection="vertex-lead-scorer-challenger")


@pytest.mark.parametrize(
    "name,settings",
    [
        ("local", LOCAL),
        ("gcp", GCP),
        ("local_triton_model", TRITON),
        ("local_sql_checks_validate", LOCAL_SQL_CHECKS),
        ("local_score_leads_session", LOCAL),
        ("local_shadow", LOCAL_SHADOW),
        ("gcp_shadow", GCP_SHADOW),
    ],
)
def test_rendering_matches_snapshot(name: str, settings: RenderSettings) -> None:
    pipeline = render_pipeline(settings)
    if name == "local_triton_model":
        text = pipeline.model_sql + "\n"
    elif name == "local_sql_checks_validate":
        text = pipeline.statements[StatementRole.VALIDATE].sql + "\n"
    elif name == "local_score_leads_session":  # what one SQL Gateway session runs: source options included
        text = ";\n\n".join(pipeline.session_script(StatementRole.SCORE_LEADS)) + ";\n"
    else:
        text = pipeline.as_text()
    path = SNAPSHOTS / f"{name}.sql"
    if os.environ.get("LEAD_SCORING_UPDATE_SNAPSHOTS"):
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}: run with LEAD_SCORING_UPDATE_SNAPSHOTS=1 once and review it"
    assert text == path.read_text(), f"rendering of {name} changed: review, then update the snapshot"


def test_dialects_differ_where_they_must() -> None:
    local, gcp = render_pipeline(LOCAL), render_pipeline(GCP)
    leads_local = local.statements[StatementRole.SCORE_LEADS].sql
    leads_gcp = gcp.statements[StatementRole.SCORE_LEADS].sql
    # locally the model reads the records whose features changed through a session view; Confluent has no
    # session views: the same query is inlined (test_echo_suppression_is_in_both_dialects)
    assert f"ML_PREDICT(\n  TABLE `leads_changed`,\n  MODEL `{local.model_name}`" in leads_local
    assert not gcp.statements[StatementRole.SCORE_LEADS].views
    assert f"LATERAL TABLE(ML_PREDICT('{gcp.model_name}', `Id`" in leads_gcp
    assert "'provider' = 'kserve'" in local.model_sql and "CREATE TEMPORARY MODEL" in local.model_sql
    assert (
        "'provider' = 'vertexai'" in gcp.model_sql and "'vertexai.connection' = 'vertex-lead-scorer'" in gcp.model_sql
    )
    ddl_local, ddl_gcp = dict(local.ddl()), dict(gcp.ddl())
    assert "'value.format' = 'avro'" in ddl_local["input_avro"]
    assert "'value.format' = 'avro-registry'" in ddl_gcp["input_avro"]
    assert "'error-handling.mode' = 'log'" in ddl_gcp["input_avro"]
    assert "'connector' = 'kafka'" in ddl_local["leads"] and "connector" not in ddl_gcp["leads"]
    assert "input_raw" not in ddl_gcp  # the source connector's topic: Confluent infers its table
    assert "CAST(`val` AS STRING)" in gcp.statements[StatementRole.VALIDATE].sql
    assert "DISTRIBUTED BY HASH(`Id`) INTO 3 BUCKETS" in ddl_gcp["lead_scores"]
    assert "'kafka.retention.time' = '604800000 ms'" in ddl_gcp["lead_scores"]
    # scores: epoch ms (BIGINT) in local JSON, timestamp-millis in Confluent's Avro
    assert "`source_ts` BIGINT NOT NULL" in ddl_local["lead_scores"]
    assert "`source_ts` TIMESTAMP_LTZ(3) NOT NULL" in ddl_gcp["lead_scores"]


def test_no_secret_is_ever_rendered() -> None:
    text = render_pipeline(GCP).as_text()
    for word in ("service-key", "service_key", "secret", "password", "sasl", "api-key", "api_key"):
        assert word not in text.lower(), word


def test_statements_are_named_after_their_sql_never_after_the_model_version() -> None:
    pipeline = render_pipeline(LOCAL)
    names = [st.name for st in pipeline.statements.values()]
    assert [n.rsplit("-", 1)[0] for n in names] == [
        "lead-scoring-validate",
        "lead-scoring-route",
        "lead-scoring-score-leads",
        "lead-scoring-score-contacts",
    ]
    assert all(STATEMENT_NAME.match(n) for n in names) and all(len(n.rsplit("-", 1)[1]) == 8 for n in names)
    assert VERSION not in " ".join(names) and VERSION.replace("-", "_") not in pipeline.model_name
    # a new model version behind the same endpoint: the same statements, the same model object
    other = render_pipeline(replace(LOCAL, model_version="m20270101_000000_ffffff"))
    assert [st.name for st in other.statements.values()] == names and other.model_name == pipeline.model_name
    assert other.model_sql == pipeline.model_sql
    # a change to what the scoring statements run (a provider option) renames them, and only them
    batched = render_pipeline(replace(LOCAL, model_batch_size=128))
    changed = {role for role, st in batched.statements.items() if st.name != pipeline.statements[role].name}
    assert changed == {StatementRole.SCORE_LEADS, StatementRole.SCORE_CONTACTS}
    assert batched.model_name != pipeline.model_name
    # so does a change to the topology or the session (the stateless statements too)
    assert render_pipeline(replace(LOCAL, validate_parallelism=1)).statements[StatementRole.VALIDATE].name != names[0]
    assert (
        render_pipeline(replace(LOCAL, kafka_bootstrap="10.0.0.1:9092")).statements[StatementRole.SPLIT].name
        != names[1]
    )
    assert role_of(names[2], "lead-scoring", StatementRole.SCORE_LEADS)
    assert role_of("lead-scoring-score-leads-m20261123-120000-abc123", "lead-scoring", StatementRole.SCORE_LEADS)
    assert not role_of(names[3], "lead-scoring", StatementRole.SCORE_LEADS)
    with pytest.raises(ValueError, match="does not match"):
        statement_name(replace(LOCAL, statement_prefix="Lead Scoring"), StatementRole.VALIDATE, "0a1b2c3d")


def test_unavailable_provider_is_refused() -> None:
    with pytest.raises(ValueError, match="vertexai"):
        RenderSettings(Dialect.FLINK, VERSION, "http://x", model_provider="vertexai")
    with pytest.raises(ValueError, match="kserve"):
        RenderSettings(Dialect.CONFLUENT, VERSION, "http://x", model_provider="kserve")


def test_local_validation_uses_the_contract_check_function_with_the_contract_spec() -> None:
    import json

    pipeline = render_pipeline(LOCAL)
    script = pipeline.session_script(StatementRole.VALIDATE)
    assert (
        script[-3] == "CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS CONTRACT_CHECK AS "
        "'io.leadscoring.flink.contract.ContractCheck'"
    )
    # one check per record: a view both INSERTs read, whose plan the statement set shares
    view, sql = script[-2], pipeline.statements[StatementRole.VALIDATE].sql
    assert view.startswith("CREATE TEMPORARY VIEW `input_raw_checked` AS") and "CONTRACT_CHECK" not in sql
    assert sql.count("FROM `input_raw_checked` AS `v`") == 2
    assert pipeline.session_config["table.optimizer.reuse-optimize-block-with-digest-enabled"] == "true"
    literal = re.search(r"CONTRACT_CHECK\(`payload`, '(.*?)'\) AS `c`", view).group(1).replace("''", "'")
    spec = json.loads(literal)
    assert [f["name"] for f in spec["fields"]] == [f.name for f in LEAD_FIELDS]
    assert spec["timestamp_pattern"] == TIMESTAMP_PATTERN
    # SQL checks in Confluent
    assert render_pipeline(GCP).statements[StatementRole.VALIDATE].sql.count("JSON_QUERY") > 40


def test_columns_and_checks_come_from_the_contract() -> None:
    pipeline = render_pipeline(LOCAL)
    ddl = dict(pipeline.ddl())["input_avro"]
    for f in LEAD_FIELDS:
        assert re.search(rf"`{re.escape(f.name)}` \w+", ddl), f.name
    for name in REQUIRED_FIELDS:
        assert f"`{name}` " in ddl and "NOT NULL" in ddl
        assert f"'{name}: ', 'required field is missing'" in field_check(FIELDS_BY_NAME[name])
    # the validator's own timestamp pattern, verbatim
    assert TIMESTAMP_PATTERN in field_check(FIELDS_BY_NAME["LastModifiedDate"])
    assert "must be one of Lead, Contact; got '" in field_check(FIELDS_BY_NAME["_ObjectType"])


# -- the Confluent rendering against Confluent's own option tables (lead_scoring_tests/vendor) ------------


def _with_options(sql: str) -> dict[str, str]:
    block = sql[sql.rindex("WITH (") + len("WITH (") : sql.rindex(")")]
    return dict(re.findall(r"'([^']+)' = '([^']*)'", block))


def test_confluent_tables_use_only_documented_options_and_keep_id_in_the_value() -> None:
    from lead_scoring_tests.vendor import check_options, load

    table = load("confluent_flink_sql")["create_table"]
    for name, ddl in render_pipeline(GCP).ddl():
        options = _with_options(ddl)
        assert check_options(options, table) == [], name
        # Confluent's default is except-key: with a key, Id would be only in the Kafka key and missing from
        # the Avro value the SObject sink (update by Id) and BigQuery (Id column) read.
        if "key.format" in options:
            fields = options.get("value.fields-include", table["options"]["value.fields-include"]["default"])
            assert fields == "all", f"{name}: Id is not in the value ({fields})"


def test_confluent_model_options_and_input_types_are_supported() -> None:
    from lead_scoring_tests.vendor import check_options, load

    vendor = load("confluent_flink_sql")
    pipeline = render_pipeline(GCP)
    assert check_options(_with_options(pipeline.model_sql), vendor["create_model"]) == []
    inputs = re.search(r"INPUT \((.*?)\)\nOUTPUT", pipeline.model_sql, re.S).group(1)
    types = re.findall(r"`[^`]+` ([A-Z_]+)", inputs)
    assert types and not set(types) - set(vendor["model_input_types"]["supported"]), types
    # the contract's timestamp travels as UTC ISO-8601 text, formatted in a UTC session
    leads = pipeline.statements[StatementRole.SCORE_LEADS].sql
    assert "DATE_FORMAT(`LastModifiedDate`, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS `LastModifiedDate_iso`" in leads
    assert "`LastModifiedDate_iso`" in leads.split("ML_PREDICT(")[1]
    assert pipeline.session_config == {"sql.local-time-zone": "UTC", "sql.state-ttl": "1 h"}
    # locally the kserve provider takes the timestamp as it is
    assert "`LastModifiedDate` TIMESTAMP_LTZ(3)" in render_pipeline(LOCAL).model_sql


def test_shadow_statements_are_the_challengers_own_and_join_the_stream_at_its_end() -> None:
    shadow = render_pipeline(LOCAL_SHADOW)
    assert shadow.key == "lead-scoring-shadow" and render_pipeline(LOCAL).key == "lead-scoring"
    assert list(shadow.statements) == [StatementRole.SHADOW_LEADS, StatementRole.SHADOW_CONTACTS]
    names = [st.name for st in shadow.statements.values()]
    assert [n.rsplit("-", 1)[0] for n in names] == ["lead-scoring-shadow-leads", "lead-scoring-shadow-contacts"]
    # never the champion's model object (in Confluent Cloud models are persistent)
    assert (
        shadow.model_name.startswith("lead_scorer_shadow_") and shadow.model_name != render_pipeline(LOCAL).model_name
    )
    script = shadow.session_script(StatementRole.SHADOW_LEADS)
    assert "'properties.group.id' = 'lead-scoring-flink-shadow-leads'" in script[0]
    assert "'properties.auto.offset.reset' = 'latest'" in script[0]
    assert "INSERT INTO `lead_scores_shadow`" in script[-1] and "lead_scorer_challenger:predict" in script[-2]
    champion = render_pipeline(LOCAL).session_script(StatementRole.SCORE_LEADS)
    assert "'properties.auto.offset.reset' = 'earliest'" in champion[0]
    assert "lead_scores_shadow" not in render_pipeline(LOCAL).as_text()
    gcp = render_pipeline(GCP_SHADOW)
    assert "/*+ OPTIONS('scan.startup.mode'='latest-offset') */" in gcp.statements[StatementRole.SHADOW_LEADS].sql
    assert "'vertexai.connection' = 'vertex-lead-scorer-challenger'" in gcp.model_sql


def test_the_dedup_ttl_is_tuned_from_the_assets_config_and_reaches_the_flink_session() -> None:
    tuning = FlinkStatementsConfig(dedup_ttl="2 min").tuning()
    assert tuning == {"dedup_ttl": "2 min"}
    assert render_pipeline(replace(LOCAL, **tuning)).session_config["table.exec.state.ttl"] == "2 min"
    # the default: a replay comes within one checkpoint interval plus a restart, not 15 min later
    assert render_pipeline(LOCAL).session_config["table.exec.state.ttl"] == "5 min"


@pytest.mark.parametrize(
    "settings", [LOCAL, GCP, LOCAL_SHADOW, GCP_SHADOW], ids=["local", "gcp", "local_shadow", "gcp_shadow"]
)
def test_a_model_answer_without_a_usable_score_goes_to_the_dlq_not_into_a_not_null_column(settings) -> None:
    """Issue 28 #8: a null score into `Lead_Score__c INT NOT NULL` fails the statement, and healing resumes
    into the same record. Each scoring statement writes only usable answers to the scores and the rest,
    with a reason, to the dlq -- and the two conditions split every answer exactly once."""
    import duckdb

    pipeline = render_pipeline(settings)
    for statement in pipeline.statements.values():
        if not statement.uses_model:
            continue
        sql = statement.sql
        [score_insert, dlq_insert] = re.findall(r"INSERT INTO `([^`]+)`", sql)
        assert dlq_insert == "dlq" and "dlq" in statement.tables
        assert score_insert.startswith(("lead_scores", "contact_scores"))
        keep = re.findall(r"\nWHERE (CASE.*?END) (=|<>) ''", sql, re.S)
        assert [op for _, op in keep] == ["=", "<>"], sql
        assert keep[0][0] == keep[1][0]  # one condition: what is not written is routed, and vice versa
        route = keep[0][0].replace("`", '"')
        answers = [
            (None, "r", "v"),
            (101, "r", "v"),
            (-1, "r", "v"),
            (50, None, "v"),
            (50, "r", None),
            (50, "r", "v"),
            (0, "", "v"),
            (100, "r", "v"),
        ]
        values = ", ".join("(?, ?, ?)" for _ in answers)
        reasons = (
            duckdb.connect()
            .execute(
                f"SELECT {route} FROM (VALUES {values}) AS t(score, reasons_text, model_version)",
                [v for answer in answers for v in answer],
            )
            .fetchall()
        )
        assert [r for (r,) in reasons] == [
            "model output: score is null",
            "model output: score outside 0-100",
            "model output: score outside 0-100",
            "model output: reasons are null",
            "model output: model version is null",
            "",
            "",
            "",
        ]
        # the dlq row carries the record's key and the model's answer (the lead is re-scored from it)
        assert "JSON_OBJECT('Id' VALUE `Id`" in sql and "AS `reason`" in sql


CHANGED = "ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `{order}` ASC)"
RESCORED = "ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `{order}` ASC)"
FEATURES_KEY = "SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, "


@pytest.mark.parametrize(
    "settings,order",
    [(LOCAL, "proc_time"), (GCP, "arrival_time"), (LOCAL_SHADOW, "proc_time"), (GCP_SHADOW, "arrival_time")],
)
def test_echo_suppression_is_in_both_dialects(settings: RenderSettings, order: str) -> None:
    """Every scoring statement, champion and shadow, local and Confluent, reads only the first record of each
    (Id, features key): an echo of a written score (same features, new LastModifiedDate) never reaches the
    model; a changed feature does, and a re-score request (`_EventType` 'rescore') once per run (its run's one
    Kafka timestamp); the request also passes the first de-duplication, so its own echo is suppressed."""
    pipeline = render_pipeline(settings)
    scoring = [st for st in pipeline.statements.values() if st.role.is_inference]
    assert len(scoring) == 2
    for st in scoring:
        query = st.views[0] if st.views else st.sql
        assert CHANGED.format(order=order) in query and RESCORED.format(order=order) in query, st.name
        # Confluent inlines the query in each INSERT of the statement set (scores, and the dlq for unusable model
        # answers); both read the same suppressed stream (the planner reuses the identical sub-plan)
        inserts = query.count("INSERT INTO ") if settings.confluent else 1
        assert query.count("WHERE `first_seen` = 1") == 2 * inserts and "UNION ALL" in query
        assert FEATURES_KEY in query and " NULL ON NULL)), 1, 16) AS `features_key`" in query
        # the re-score requests leave the first result (they come from the second), and only they are in it
        assert "WHERE NOT `is_rescore`" in query and "WHERE `_EventType` = 'rescore'" in query
        assert "`_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`" in query
        # the key never holds what an echo changes (LastModifiedDate; the Kafka timestamp only for re-scores)
        partitions = re.findall(r"PARTITION BY (.*?) ORDER BY", query)
        assert len(partitions) == 2 * inserts and not any("LastModifiedDate" in p for p in partitions)
        if settings.confluent:
            assert "`$rowtime` AS `arrival_time`" in query  # Confluent's documented dedup order
            assert "ML_PREDICT('" in query.rsplit("WHERE `first_seen` = 1", 1)[1]  # inlined before the model
        else:
            assert f"TABLE `{query.split('`')[1]}`" in st.sql  # ML_PREDICT reads the view
    # the features key covers exactly the model's features, and nothing an echo changes
    key = re.search(
        r"JSON_ARRAY\((.*?) NULL ON NULL", scoring[0].views[0] if scoring[0].views else scoring[0].sql
    ).group(1)
    assert re.findall(r"`([^`]+)`", key) == list(FEATURES)
    ttl = "sql.state-ttl" if settings.confluent else "table.exec.state.ttl"
    assert pipeline.session_config[ttl] == ("1 h" if settings.confluent else "5 min")


# Options and constructs of OSS Flink that Confluent Cloud does not have (its tables are its topics, state is
# managed, there is no processing time and no session-scoped object).
OSS_ONLY = (
    "'connector'",
    "properties.bootstrap.servers",
    "scan.startup.mode' = 'group-offsets",
    "table.exec.",
    "execution.",
    "pipeline.",
    "restart-strategy",
    "PROCTIME()",
    "proc_time",
    "TEMPORARY",
    "'key.fields'",
    "sink.delivery-guarantee",
    "'format'",
)


def test_the_confluent_rendering_has_no_oss_only_option() -> None:
    for settings in (GCP, GCP_SHADOW):
        pipeline = render_pipeline(settings)
        text = pipeline.as_text()
        found = [word for word in OSS_ONLY if word in text]
        assert not found, found
        assert set(pipeline.session_config) == {"sql.local-time-zone", "sql.state-ttl"}
    assert "PROCTIME()" in render_pipeline(LOCAL).as_text()  # the check can fail


@pytest.mark.parametrize("settings", [LOCAL, GCP, LOCAL_SHADOW, GCP_SHADOW])
def test_erased_ids_are_filtered_by_every_scoring_statement_in_both_dialects(settings: RenderSettings) -> None:
    """Champion and shadow, local and Confluent: what reaches ML_PREDICT has passed an anti-join against the
    erased_ids register (a LEFT JOIN keeping the rows without a match), made append-only again by TO_CHANGELOG
    forwarding INSERTs only; the register side of the join never expires, and it is read from its start."""
    pipeline = render_pipeline(settings)
    scoring = [st for st in pipeline.statements.values() if st.role.is_inference]
    assert len(scoring) == 2
    register = f"`{settings.topic(ERASED_IDS)}`"
    for st in scoring:
        query = st.views[0] if st.views else st.sql
        inserts = query.count("INSERT INTO ") if settings.confluent else 1
        assert query.count(f"FROM {register}") == inserts, st.name
        assert query.count("WHERE `erased`.`Id` IS NULL") == inserts
        assert query.count("ON `changes`.`Id` = `erased`.`Id`") == inserts
        assert query.count("STATE_TTL('changes' = '1 s', 'erased' = '0')") == inserts
        assert (
            query.count("TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT'])") == inserts
        )
        # the filter sits after the echo suppression and before the model
        body = query.split("INSERT INTO ")[1] if settings.confluent else st.sql
        assert query.index("WHERE `first_seen` = 1") < query.index("LEFT JOIN")
        if settings.confluent:
            assert body.index("TO_CHANGELOG(") < body.index("ML_PREDICT('")
            # Confluent reads the topic's inferred table (raw bytes) from its earliest offset
            assert query.count("SELECT CAST(`val` AS STRING) AS `Id`") == inserts
            assert f"FROM {register} /*+ OPTIONS('scan.startup.mode'='earliest-offset') */" in query
            assert ERASED_IDS not in dict(pipeline.ddl())  # created by the topics asset, not by a Flink table
        else:
            assert f"TABLE `{query.split('`')[1]}`" in st.sql  # ML_PREDICT reads the filtered view
            assert ERASED_IDS in st.tables and ERASED_IDS not in st.reads  # no consumer group: always from the start
            ddl = pipeline.table_ddl(ERASED_IDS)
            assert "'scan.startup.mode' = 'earliest-offset'" in ddl and "group" not in ddl
