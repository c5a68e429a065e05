{#- The raw records with their contract check (`c`: reason + the values in contract order), computed ONCE per
    record for both branches of `validate` (valid -> input_avro, invalid -> dlq): the statement set's optimizer
    shares this view's plan between the two INSERTs (table.optimizer.reuse-optimize-block-with-digest-enabled),
    where two LATERAL TABLE calls parsed and checked every record twice. -#}
CREATE TEMPORARY VIEW `{{ view }}` AS
SELECT `payload`, `source_time`, CONTRACT_CHECK(`payload`, {{ spec }}) AS `c`
FROM `{{ source }}`
