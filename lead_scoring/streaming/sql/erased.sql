{#- Erasure filter, in both dialects: the scoring statements drop every record whose Id is in the erased_ids topic
    (one record per erased Id, key = value = Id, compacted; written by every erasure: lifecycle/erasure.py), so an
    erased lead that changes again in the CRM, is echoed or is re-sent is not scored, not written back and not
    landed by any sink - the managed connectors of gcp included.

    How: a LEFT JOIN of the changed records with the register, keeping rows without a match, gives the records not
    erased when they arrived - and, when an Id is erased later, a retraction of its earlier rows. TO_CHANGELOG
    (a built-in PTF of Apache Flink 2.3 and of Confluent Cloud; row semantics: Flink 2.3 refuses PARTITION BY on
    it; its TABLE argument must be a name, hence the WITH) turns that into an append-only stream, and its
    op_mapping forwards INSERTs only: the retractions are dropped (those records were scored before the erasure;
    the erasure cleared their scores), and what reaches ML_PREDICT stays insert-only.

    State (STATE_TTL hint, per join input): the register's rows never expire ('0' = no TTL: an erasure is for good;
    the register is small: one row per erased Id); the records' side only serves those dropped retractions, so it
    is kept for {{ records_ttl }}. The register is read from its earliest offset by every new statement. -#}
WITH `not_erased` AS (
  SELECT /*+ STATE_TTL('changes' = '{{ records_ttl }}', 'erased' = '0') */ `changes`.*
  FROM (
    {{ source_query | indent(4) }}
  ) AS `changes`
  LEFT JOIN (
    {{ register_query | indent(4) }}
  ) AS `erased`
  ON `changes`.`Id` = `erased`.`Id`
  WHERE `erased`.`Id` IS NULL
)
SELECT {{ columns }}, `source_time`
FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT'])
