{#- Statement 2: input_avro -> leads / contacts by _ObjectType (the Kafka timestamp travels along). -#}
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `{{ t.leads }}`
SELECT {{ columns }}, {{ source_time }}
FROM `{{ t.input_avro }}` WHERE `_ObjectType` = 'Lead';
INSERT INTO `{{ t.contacts }}`
SELECT {{ columns }}, {{ source_time }}
FROM `{{ t.input_avro }}` WHERE `_ObjectType` = 'Contact';
END
