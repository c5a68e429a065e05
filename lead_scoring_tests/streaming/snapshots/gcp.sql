-- dialect: confluent; model m20261123-120000-abc123 (vertexai)

SET 'sql.local-time-zone' = 'UTC';

SET 'sql.state-ttl' = '1 h';

-- table input_avro
CREATE TABLE IF NOT EXISTS `input_avro` (
  `Id` STRING NOT NULL,
  `_ObjectType` STRING NOT NULL,
  `_EventType` STRING,
  `LastModifiedDate` TIMESTAMP_LTZ(3) NOT NULL,
  `CreatedDate` TIMESTAMP_LTZ(3),
  `FirstName` STRING,
  `LastName` STRING,
  `Company` STRING,
  `Email` STRING,
  `Title` STRING,
  `Lead_Number__c` STRING,
  `LeadSource` STRING,
  `Lead_Origin__c` STRING,
  `HasOptedOutOfEmail` BOOLEAN,
  `DoNotCall` BOOLEAN,
  `Total_Visits__c` DOUBLE,
  `Time_On_Website__c` DOUBLE,
  `Page_Views_Per_Visit__c` DOUBLE,
  `Last_Activity__c` STRING,
  `Country` STRING,
  `City` STRING,
  `Specialization__c` STRING,
  `Occupation__c` STRING,
  `Course_Priority__c` STRING,
  `Referral_Channel__c` STRING,
  `Ad_Search__c` BOOLEAN,
  `Ad_Magazine__c` BOOLEAN,
  `Ad_Newspaper_Article__c` BOOLEAN,
  `Ad_Forums__c` BOOLEAN,
  `Ad_Newspaper__c` BOOLEAN,
  `Ad_Digital__c` BOOLEAN,
  `Ad_Recommendation__c` BOOLEAN,
  `Free_Copy_Requested__c` BOOLEAN,
  `Status` STRING,
  `IsConverted` BOOLEAN,
  `Sales_Tags__c` STRING,
  `Lead_Quality__c` STRING,
  `Lead_Profile__c` STRING,
  `Last_Notable_Activity__c` STRING,
  `Activity_Index__c` STRING,
  `Profile_Index__c` STRING,
  `Activity_Score__c` DOUBLE,
  `Profile_Score__c` DOUBLE,
  `source_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
)
DISTRIBUTED BY HASH(`Id`) INTO 3 BUCKETS
WITH (
  'changelog.mode' = 'append',
  'key.format' = 'raw',
  'value.fields-include' = 'all',
  'value.format' = 'avro-registry',
  'error-handling.mode' = 'log',
  'error-handling.log.target' = 'dlq_avro',
  'kafka.retention.time' = '604800000 ms',
  'kafka.cleanup-policy' = 'delete'
);

-- table leads
CREATE TABLE IF NOT EXISTS `leads` (
  `Id` STRING NOT NULL,
  `_ObjectType` STRING NOT NULL,
  `_EventType` STRING,
  `LastModifiedDate` TIMESTAMP_LTZ(3) NOT NULL,
  `CreatedDate` TIMESTAMP_LTZ(3),
  `FirstName` STRING,
  `LastName` STRING,
  `Company` STRING,
  `Email` STRING,
  `Title` STRING,
  `Lead_Number__c` STRING,
  `LeadSource` STRING,
  `Lead_Origin__c` STRING,
  `HasOptedOutOfEmail` BOOLEAN,
  `DoNotCall` BOOLEAN,
  `Total_Visits__c` DOUBLE,
  `Time_On_Website__c` DOUBLE,
  `Page_Views_Per_Visit__c` DOUBLE,
  `Last_Activity__c` STRING,
  `Country` STRING,
  `City` STRING,
  `Specialization__c` STRING,
  `Occupation__c` STRING,
  `Course_Priority__c` STRING,
  `Referral_Channel__c` STRING,
  `Ad_Search__c` BOOLEAN,
  `Ad_Magazine__c` BOOLEAN,
  `Ad_Newspaper_Article__c` BOOLEAN,
  `Ad_Forums__c` BOOLEAN,
  `Ad_Newspaper__c` BOOLEAN,
  `Ad_Digital__c` BOOLEAN,
  `Ad_Recommendation__c` BOOLEAN,
  `Free_Copy_Requested__c` BOOLEAN,
  `Status` STRING,
  `IsConverted` BOOLEAN,
  `Sales_Tags__c` STRING,
  `Lead_Quality__c` STRING,
  `Lead_Profile__c` STRING,
  `Last_Notable_Activity__c` STRING,
  `Activity_Index__c` STRING,
  `Profile_Index__c` STRING,
  `Activity_Score__c` DOUBLE,
  `Profile_Score__c` DOUBLE,
  `source_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
)
DISTRIBUTED BY HASH(`Id`) INTO 3 BUCKETS
WITH (
  'changelog.mode' = 'append',
  'key.format' = 'raw',
  'value.fields-include' = 'all',
  'value.format' = 'avro-registry',
  'error-handling.mode' = 'log',
  'error-handling.log.target' = 'dlq_avro',
  'kafka.retention.time' = '604800000 ms',
  'kafka.cleanup-policy' = 'delete'
);

-- table contacts
CREATE TABLE IF NOT EXISTS `contacts` (
  `Id` STRING NOT NULL,
  `_ObjectType` STRING NOT NULL,
  `_EventType` STRING,
  `LastModifiedDate` TIMESTAMP_LTZ(3) NOT NULL,
  `CreatedDate` TIMESTAMP_LTZ(3),
  `FirstName` STRING,
  `LastName` STRING,
  `Company` STRING,
  `Email` STRING,
  `Title` STRING,
  `Lead_Number__c` STRING,
  `LeadSource` STRING,
  `Lead_Origin__c` STRING,
  `HasOptedOutOfEmail` BOOLEAN,
  `DoNotCall` BOOLEAN,
  `Total_Visits__c` DOUBLE,
  `Time_On_Website__c` DOUBLE,
  `Page_Views_Per_Visit__c` DOUBLE,
  `Last_Activity__c` STRING,
  `Country` STRING,
  `City` STRING,
  `Specialization__c` STRING,
  `Occupation__c` STRING,
  `Course_Priority__c` STRING,
  `Referral_Channel__c` STRING,
  `Ad_Search__c` BOOLEAN,
  `Ad_Magazine__c` BOOLEAN,
  `Ad_Newspaper_Article__c` BOOLEAN,
  `Ad_Forums__c` BOOLEAN,
  `Ad_Newspaper__c` BOOLEAN,
  `Ad_Digital__c` BOOLEAN,
  `Ad_Recommendation__c` BOOLEAN,
  `Free_Copy_Requested__c` BOOLEAN,
  `Status` STRING,
  `IsConverted` BOOLEAN,
  `Sales_Tags__c` STRING,
  `Lead_Quality__c` STRING,
  `Lead_Profile__c` STRING,
  `Last_Notable_Activity__c` STRING,
  `Activity_Index__c` STRING,
  `Profile_Index__c` STRING,
  `Activity_Score__c` DOUBLE,
  `Profile_Score__c` DOUBLE,
  `source_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
)
DISTRIBUTED BY HASH(`Id`) INTO 3 BUCKETS
WITH (
  'changelog.mode' = 'append',
  'key.format' = 'raw',
  'value.fields-include' = 'all',
  'value.format' = 'avro-registry',
  'error-handling.mode' = 'log',
  'error-handling.log.target' = 'dlq_avro',
  'kafka.retention.time' = '604800000 ms',
  'kafka.cleanup-policy' = 'delete'
);

-- table lead_scores
CREATE TABLE IF NOT EXISTS `lead_scores` (
  `Id` STRING NOT NULL,
  `_ObjectType` STRING NOT NULL,
  `_EventType` STRING NOT NULL,
  `Lead_Score__c` INT NOT NULL,
  `Lead_Score_Reasons__c` STRING NOT NULL,
  `Lead_Score_Model__c` STRING NOT NULL,
  `Lead_Grade__c` STRING,
  `features_hash` STRING,
  `source_ts` TIMESTAMP_LTZ(3) NOT NULL,
  `scored_ts` TIMESTAMP_LTZ(3) NOT NULL
)
DISTRIBUTED BY HASH(`Id`) INTO 3 BUCKETS
WITH (
  'changelog.mode' = 'append',
  'key.format' = 'raw',
  'value.fields-include' = 'all',
  'value.format' = 'avro-registry',
  'kafka.retention.time' = '604800000 ms',
  'kafka.cleanup-policy' = 'delete'
);

-- table contact_scores
CREATE TABLE IF NOT EXISTS `contact_scores` (
  `Id` STRING NOT NULL,
  `_ObjectType` STRING NOT NULL,
  `_EventType` STRING NOT NULL,
  `Lead_Score__c` INT NOT NULL,
  `Lead_Score_Reasons__c` STRING NOT NULL,
  `Lead_Score_Model__c` STRING NOT NULL,
  `Lead_Grade__c` STRING,
  `features_hash` STRING,
  `source_ts` TIMESTAMP_LTZ(3) NOT NULL,
  `scored_ts` TIMESTAMP_LTZ(3) NOT NULL
)
DISTRIBUTED BY HASH(`Id`) INTO 3 BUCKETS
WITH (
  'changelog.mode' = 'append',
  'key.format' = 'raw',
  'value.fields-include' = 'all',
  'value.format' = 'avro-registry',
  'kafka.retention.time' = '604800000 ms',
  'kafka.cleanup-policy' = 'delete'
);

-- table dlq
CREATE TABLE IF NOT EXISTS `dlq` (
  `payload` STRING,
  `reason` STRING NOT NULL,
  `source_ts` TIMESTAMP_LTZ(3)
)
DISTRIBUTED INTO 1 BUCKETS
WITH (
  'changelog.mode' = 'append',
  'value.format' = 'json-registry',
  'kafka.retention.time' = '604800000 ms',
  'kafka.cleanup-policy' = 'delete'
);

-- model lead_scorer_afd549bd
CREATE MODEL `lead_scorer_afd549bd`
INPUT (
  `Id` STRING,
  `_ObjectType` STRING,
  `LastModifiedDate` STRING,
  `LeadSource` STRING,
  `Lead_Origin__c` STRING,
  `Last_Activity__c` STRING,
  `Country` STRING,
  `City` STRING,
  `Specialization__c` STRING,
  `Occupation__c` STRING,
  `Course_Priority__c` STRING,
  `Referral_Channel__c` STRING,
  `Total_Visits__c` DOUBLE,
  `Time_On_Website__c` DOUBLE,
  `Page_Views_Per_Visit__c` DOUBLE,
  `HasOptedOutOfEmail` BOOLEAN,
  `DoNotCall` BOOLEAN,
  `Ad_Search__c` BOOLEAN,
  `Ad_Magazine__c` BOOLEAN,
  `Ad_Newspaper_Article__c` BOOLEAN,
  `Ad_Forums__c` BOOLEAN,
  `Ad_Newspaper__c` BOOLEAN,
  `Ad_Digital__c` BOOLEAN,
  `Ad_Recommendation__c` BOOLEAN,
  `Free_Copy_Requested__c` BOOLEAN
)
OUTPUT (
  `score` INT,
  `reasons_text` STRING,
  `model_version` STRING,
  `grade` STRING,
  `features_hash` STRING
)
COMMENT 'lead scorer: the version is the one the endpoint serves (each score carries it)'
WITH (
  'provider' = 'vertexai',
  'task' = 'classification',
  'vertexai.connection' = 'vertex-lead-scorer',
  'vertexai.input_format' = 'TF-SERVING',
  'vertexai.output_format' = 'TF-SERVING'
);

-- statement lead-scoring-validate-961fc474
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `input_avro`
SELECT
  JSON_VALUE(`payload`, '$.Id') AS `Id`,
  JSON_VALUE(`payload`, '$._ObjectType') AS `_ObjectType`,
  COALESCE(JSON_VALUE(`payload`, '$._EventType'), 'created') AS `_EventType`,
  TIMESTAMPADD(MINUTE, -COALESCE(CASE WHEN REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 1) = '-' THEN -1 ELSE 1 END * (CAST(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 2) AS INT) * 60 + CAST(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 3) AS INT)), 0), TO_TIMESTAMP_LTZ(CONCAT(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 1), ' ', REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 2), COALESCE(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 3), ':00'), SUBSTR(RPAD(COALESCE(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 4), '.'), 4, '0'), 1, 4)), 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC')) AS `LastModifiedDate`,
  TIMESTAMPADD(MINUTE, -COALESCE(CASE WHEN REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 1) = '-' THEN -1 ELSE 1 END * (CAST(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 2) AS INT) * 60 + CAST(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 3) AS INT)), 0), TO_TIMESTAMP_LTZ(CONCAT(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 1), ' ', REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 2), COALESCE(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 3), ':00'), SUBSTR(RPAD(COALESCE(REGEXP_EXTRACT(JSON_VALUE(`payload`, '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 4), '.'), 4, '0'), 1, 4)), 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC')) AS `CreatedDate`,
  JSON_VALUE(`payload`, '$.FirstName') AS `FirstName`,
  JSON_VALUE(`payload`, '$.LastName') AS `LastName`,
  JSON_VALUE(`payload`, '$.Company') AS `Company`,
  JSON_VALUE(`payload`, '$.Email') AS `Email`,
  JSON_VALUE(`payload`, '$.Title') AS `Title`,
  JSON_VALUE(`payload`, '$.Lead_Number__c') AS `Lead_Number__c`,
  JSON_VALUE(`payload`, '$.LeadSource') AS `LeadSource`,
  JSON_VALUE(`payload`, '$.Lead_Origin__c') AS `Lead_Origin__c`,
  JSON_VALUE(`payload`, '$.HasOptedOutOfEmail' RETURNING BOOLEAN) AS `HasOptedOutOfEmail`,
  JSON_VALUE(`payload`, '$.DoNotCall' RETURNING BOOLEAN) AS `DoNotCall`,
  JSON_VALUE(`payload`, '$.Total_Visits__c' RETURNING DOUBLE) AS `Total_Visits__c`,
  JSON_VALUE(`payload`, '$.Time_On_Website__c' RETURNING DOUBLE) AS `Time_On_Website__c`,
  JSON_VALUE(`payload`, '$.Page_Views_Per_Visit__c' RETURNING DOUBLE) AS `Page_Views_Per_Visit__c`,
  JSON_VALUE(`payload`, '$.Last_Activity__c') AS `Last_Activity__c`,
  JSON_VALUE(`payload`, '$.Country') AS `Country`,
  JSON_VALUE(`payload`, '$.City') AS `City`,
  JSON_VALUE(`payload`, '$.Specialization__c') AS `Specialization__c`,
  JSON_VALUE(`payload`, '$.Occupation__c') AS `Occupation__c`,
  JSON_VALUE(`payload`, '$.Course_Priority__c') AS `Course_Priority__c`,
  JSON_VALUE(`payload`, '$.Referral_Channel__c') AS `Referral_Channel__c`,
  JSON_VALUE(`payload`, '$.Ad_Search__c' RETURNING BOOLEAN) AS `Ad_Search__c`,
  JSON_VALUE(`payload`, '$.Ad_Magazine__c' RETURNING BOOLEAN) AS `Ad_Magazine__c`,
  JSON_VALUE(`payload`, '$.Ad_Newspaper_Article__c' RETURNING BOOLEAN) AS `Ad_Newspaper_Article__c`,
  JSON_VALUE(`payload`, '$.Ad_Forums__c' RETURNING BOOLEAN) AS `Ad_Forums__c`,
  JSON_VALUE(`payload`, '$.Ad_Newspaper__c' RETURNING BOOLEAN) AS `Ad_Newspaper__c`,
  JSON_VALUE(`payload`, '$.Ad_Digital__c' RETURNING BOOLEAN) AS `Ad_Digital__c`,
  JSON_VALUE(`payload`, '$.Ad_Recommendation__c' RETURNING BOOLEAN) AS `Ad_Recommendation__c`,
  JSON_VALUE(`payload`, '$.Free_Copy_Requested__c' RETURNING BOOLEAN) AS `Free_Copy_Requested__c`,
  JSON_VALUE(`payload`, '$.Status') AS `Status`,
  JSON_VALUE(`payload`, '$.IsConverted' RETURNING BOOLEAN) AS `IsConverted`,
  JSON_VALUE(`payload`, '$.Sales_Tags__c') AS `Sales_Tags__c`,
  JSON_VALUE(`payload`, '$.Lead_Quality__c') AS `Lead_Quality__c`,
  JSON_VALUE(`payload`, '$.Lead_Profile__c') AS `Lead_Profile__c`,
  JSON_VALUE(`payload`, '$.Last_Notable_Activity__c') AS `Last_Notable_Activity__c`,
  JSON_VALUE(`payload`, '$.Activity_Index__c') AS `Activity_Index__c`,
  JSON_VALUE(`payload`, '$.Profile_Index__c') AS `Profile_Index__c`,
  JSON_VALUE(`payload`, '$.Activity_Score__c' RETURNING DOUBLE) AS `Activity_Score__c`,
  JSON_VALUE(`payload`, '$.Profile_Score__c' RETURNING DOUBLE) AS `Profile_Score__c`,
  `source_time`
FROM (
  SELECT CAST(`val` AS STRING) AS `payload`, `$rowtime` AS `source_time`, CASE
    WHEN CAST(`val` AS STRING) IS NULL THEN '$: empty message'
    WHEN CAST(`val` AS STRING) IS NOT JSON THEN '$: not valid JSON'
    WHEN CAST(`val` AS STRING) IS NOT JSON OBJECT THEN '$: expected a JSON object'
    ELSE CONCAT_WS('; ',
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Id' WITH WRAPPER) IS NULL THEN CONCAT('Id: ', 'required field is missing') WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Id' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Id: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Id' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Id')) > 1000 THEN CONCAT('Id: ', 'longer than 1000 characters') WHEN TRIM(JSON_VALUE(CAST(`val` AS STRING), '$.Id')) = '' THEN CONCAT('Id: ', 'must not be empty') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$._ObjectType' WITH WRAPPER) IS NULL THEN CONCAT('_ObjectType: ', 'required field is missing') WHEN JSON_QUERY(CAST(`val` AS STRING), '$._ObjectType' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('_ObjectType: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$._ObjectType' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType')) > 1000 THEN CONCAT('_ObjectType: ', 'longer than 1000 characters') WHEN JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType') NOT IN ('Lead', 'Contact') THEN CONCAT('_ObjectType: ', CONCAT('must be one of Lead, Contact; got ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType'), 1, 40), '''')) WHEN TRIM(JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType')) = '' THEN CONCAT('_ObjectType: ', 'must not be empty') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$._EventType' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$._EventType' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('_EventType: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$._EventType' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$._EventType')) > 1000 THEN CONCAT('_EventType: ', 'longer than 1000 characters') WHEN JSON_VALUE(CAST(`val` AS STRING), '$._EventType') NOT IN ('created', 'updated', 'deleted', 'rescore') THEN CONCAT('_EventType: ', CONCAT('must be one of created, updated, deleted, rescore; got ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$._EventType'), 1, 40), '''')) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastModifiedDate' WITH WRAPPER) IS NULL THEN CONCAT('LastModifiedDate: ', 'required field is missing') WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastModifiedDate' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('LastModifiedDate: ', CONCAT('expected an ISO-8601 timestamp string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.LastModifiedDate' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN NOT REGEXP(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$') THEN CONCAT('LastModifiedDate: ', CONCAT('not an ISO-8601 timestamp: ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), 1, 40), '''')) WHEN TIMESTAMPADD(MINUTE, -COALESCE(CASE WHEN REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 1) = '-' THEN -1 ELSE 1 END * (CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 2) AS INT) * 60 + CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 3) AS INT)), 0), TO_TIMESTAMP_LTZ(CONCAT(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 1), ' ', REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 2), COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 3), ':00'), SUBSTR(RPAD(COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 4), '.'), 4, '0'), 1, 4)), 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC')) IS NULL THEN CONCAT('LastModifiedDate: ', 'not a valid timestamp') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.CreatedDate' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.CreatedDate' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('CreatedDate: ', CONCAT('expected an ISO-8601 timestamp string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.CreatedDate' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN NOT REGEXP(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$') THEN CONCAT('CreatedDate: ', CONCAT('not an ISO-8601 timestamp: ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), 1, 40), '''')) WHEN TIMESTAMPADD(MINUTE, -COALESCE(CASE WHEN REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 1) = '-' THEN -1 ELSE 1 END * (CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 2) AS INT) * 60 + CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 3) AS INT)), 0), TO_TIMESTAMP_LTZ(CONCAT(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 1), ' ', REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 2), COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 3), ':00'), SUBSTR(RPAD(COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 4), '.'), 4, '0'), 1, 4)), 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC')) IS NULL THEN CONCAT('CreatedDate: ', 'not a valid timestamp') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.FirstName' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.FirstName' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('FirstName: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.FirstName' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.FirstName')) > 1000 THEN CONCAT('FirstName: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastName' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastName' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('LastName: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.LastName' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.LastName')) > 1000 THEN CONCAT('LastName: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Company' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Company' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Company: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Company' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Company')) > 1000 THEN CONCAT('Company: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Email' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Email' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Email: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Email' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Email')) > 1000 THEN CONCAT('Email: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Title' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Title' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Title: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Title' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Title')) > 1000 THEN CONCAT('Title: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Number__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Number__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Number__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Number__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Number__c')) > 1000 THEN CONCAT('Lead_Number__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LeadSource' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LeadSource' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('LeadSource: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.LeadSource' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.LeadSource')) > 1000 THEN CONCAT('LeadSource: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Origin__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Origin__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Origin__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Origin__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Origin__c')) > 1000 THEN CONCAT('Lead_Origin__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.HasOptedOutOfEmail' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.HasOptedOutOfEmail' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('HasOptedOutOfEmail: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.HasOptedOutOfEmail' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.DoNotCall' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.DoNotCall' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('DoNotCall: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.DoNotCall' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Total_Visits__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Total_Visits__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Total_Visits__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Total_Visits__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN JSON_VALUE(CAST(`val` AS STRING), '$.Total_Visits__c' RETURNING DOUBLE) < 0 THEN CONCAT('Total_Visits__c: ', CONCAT('must be >= 0, got ', JSON_VALUE(CAST(`val` AS STRING), '$.Total_Visits__c'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Time_On_Website__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Time_On_Website__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Time_On_Website__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Time_On_Website__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN JSON_VALUE(CAST(`val` AS STRING), '$.Time_On_Website__c' RETURNING DOUBLE) < 0 THEN CONCAT('Time_On_Website__c: ', CONCAT('must be >= 0, got ', JSON_VALUE(CAST(`val` AS STRING), '$.Time_On_Website__c'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Page_Views_Per_Visit__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN JSON_VALUE(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' RETURNING DOUBLE) < 0 THEN CONCAT('Page_Views_Per_Visit__c: ', CONCAT('must be >= 0, got ', JSON_VALUE(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Activity__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Activity__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Last_Activity__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Last_Activity__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Last_Activity__c')) > 1000 THEN CONCAT('Last_Activity__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Country' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Country' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Country: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Country' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Country')) > 1000 THEN CONCAT('Country: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.City' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.City' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('City: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.City' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.City')) > 1000 THEN CONCAT('City: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Specialization__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Specialization__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Specialization__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Specialization__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Specialization__c')) > 1000 THEN CONCAT('Specialization__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Occupation__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Occupation__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Occupation__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Occupation__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Occupation__c')) > 1000 THEN CONCAT('Occupation__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Course_Priority__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Course_Priority__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Course_Priority__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Course_Priority__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Course_Priority__c')) > 1000 THEN CONCAT('Course_Priority__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Referral_Channel__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Referral_Channel__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Referral_Channel__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Referral_Channel__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Referral_Channel__c')) > 1000 THEN CONCAT('Referral_Channel__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Search__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Search__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Search__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Search__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Magazine__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Magazine__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Magazine__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Magazine__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper_Article__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper_Article__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Newspaper_Article__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper_Article__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Forums__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Forums__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Forums__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Forums__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Newspaper__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Digital__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Digital__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Digital__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Digital__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Recommendation__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Recommendation__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Recommendation__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Recommendation__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Free_Copy_Requested__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Free_Copy_Requested__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Free_Copy_Requested__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Free_Copy_Requested__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Status' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Status' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Status: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Status' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Status')) > 1000 THEN CONCAT('Status: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.IsConverted' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.IsConverted' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('IsConverted: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.IsConverted' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Sales_Tags__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Sales_Tags__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Sales_Tags__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Sales_Tags__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Sales_Tags__c')) > 1000 THEN CONCAT('Sales_Tags__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Quality__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Quality__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Quality__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Quality__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Quality__c')) > 1000 THEN CONCAT('Lead_Quality__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Profile__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Profile__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Profile__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Profile__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Profile__c')) > 1000 THEN CONCAT('Lead_Profile__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Notable_Activity__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Notable_Activity__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Last_Notable_Activity__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Last_Notable_Activity__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Last_Notable_Activity__c')) > 1000 THEN CONCAT('Last_Notable_Activity__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Index__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Index__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Activity_Index__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Index__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Activity_Index__c')) > 1000 THEN CONCAT('Activity_Index__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Index__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Index__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Profile_Index__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Index__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Profile_Index__c')) > 1000 THEN CONCAT('Profile_Index__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Score__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Score__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Activity_Score__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Score__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Score__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Score__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Profile_Score__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Score__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END)
  END AS `reason`
  FROM `input_raw`
) AS checked
WHERE `reason` = '';
INSERT INTO `dlq`
SELECT `payload`, `reason`, `source_time` AS `source_ts`
FROM (
  SELECT CAST(`val` AS STRING) AS `payload`, `$rowtime` AS `source_time`, CASE
    WHEN CAST(`val` AS STRING) IS NULL THEN '$: empty message'
    WHEN CAST(`val` AS STRING) IS NOT JSON THEN '$: not valid JSON'
    WHEN CAST(`val` AS STRING) IS NOT JSON OBJECT THEN '$: expected a JSON object'
    ELSE CONCAT_WS('; ',
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Id' WITH WRAPPER) IS NULL THEN CONCAT('Id: ', 'required field is missing') WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Id' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Id: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Id' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Id')) > 1000 THEN CONCAT('Id: ', 'longer than 1000 characters') WHEN TRIM(JSON_VALUE(CAST(`val` AS STRING), '$.Id')) = '' THEN CONCAT('Id: ', 'must not be empty') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$._ObjectType' WITH WRAPPER) IS NULL THEN CONCAT('_ObjectType: ', 'required field is missing') WHEN JSON_QUERY(CAST(`val` AS STRING), '$._ObjectType' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('_ObjectType: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$._ObjectType' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType')) > 1000 THEN CONCAT('_ObjectType: ', 'longer than 1000 characters') WHEN JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType') NOT IN ('Lead', 'Contact') THEN CONCAT('_ObjectType: ', CONCAT('must be one of Lead, Contact; got ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType'), 1, 40), '''')) WHEN TRIM(JSON_VALUE(CAST(`val` AS STRING), '$._ObjectType')) = '' THEN CONCAT('_ObjectType: ', 'must not be empty') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$._EventType' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$._EventType' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('_EventType: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$._EventType' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$._EventType')) > 1000 THEN CONCAT('_EventType: ', 'longer than 1000 characters') WHEN JSON_VALUE(CAST(`val` AS STRING), '$._EventType') NOT IN ('created', 'updated', 'deleted', 'rescore') THEN CONCAT('_EventType: ', CONCAT('must be one of created, updated, deleted, rescore; got ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$._EventType'), 1, 40), '''')) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastModifiedDate' WITH WRAPPER) IS NULL THEN CONCAT('LastModifiedDate: ', 'required field is missing') WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastModifiedDate' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('LastModifiedDate: ', CONCAT('expected an ISO-8601 timestamp string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.LastModifiedDate' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN NOT REGEXP(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$') THEN CONCAT('LastModifiedDate: ', CONCAT('not an ISO-8601 timestamp: ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), 1, 40), '''')) WHEN TIMESTAMPADD(MINUTE, -COALESCE(CASE WHEN REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 1) = '-' THEN -1 ELSE 1 END * (CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 2) AS INT) * 60 + CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '([+-])(\d{2}):?(\d{2})$', 3) AS INT)), 0), TO_TIMESTAMP_LTZ(CONCAT(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 1), ' ', REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 2), COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 3), ':00'), SUBSTR(RPAD(COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.LastModifiedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 4), '.'), 4, '0'), 1, 4)), 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC')) IS NULL THEN CONCAT('LastModifiedDate: ', 'not a valid timestamp') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.CreatedDate' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.CreatedDate' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('CreatedDate: ', CONCAT('expected an ISO-8601 timestamp string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.CreatedDate' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN NOT REGEXP(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$') THEN CONCAT('CreatedDate: ', CONCAT('not an ISO-8601 timestamp: ''', SUBSTR(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), 1, 40), '''')) WHEN TIMESTAMPADD(MINUTE, -COALESCE(CASE WHEN REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 1) = '-' THEN -1 ELSE 1 END * (CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 2) AS INT) * 60 + CAST(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '([+-])(\d{2}):?(\d{2})$', 3) AS INT)), 0), TO_TIMESTAMP_LTZ(CONCAT(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 1), ' ', REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 2), COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 3), ':00'), SUBSTR(RPAD(COALESCE(REGEXP_EXTRACT(JSON_VALUE(CAST(`val` AS STRING), '$.CreatedDate'), '^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?', 4), '.'), 4, '0'), 1, 4)), 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC')) IS NULL THEN CONCAT('CreatedDate: ', 'not a valid timestamp') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.FirstName' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.FirstName' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('FirstName: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.FirstName' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.FirstName')) > 1000 THEN CONCAT('FirstName: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastName' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LastName' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('LastName: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.LastName' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.LastName')) > 1000 THEN CONCAT('LastName: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Company' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Company' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Company: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Company' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Company')) > 1000 THEN CONCAT('Company: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Email' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Email' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Email: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Email' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Email')) > 1000 THEN CONCAT('Email: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Title' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Title' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Title: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Title' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Title')) > 1000 THEN CONCAT('Title: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Number__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Number__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Number__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Number__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Number__c')) > 1000 THEN CONCAT('Lead_Number__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LeadSource' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.LeadSource' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('LeadSource: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.LeadSource' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.LeadSource')) > 1000 THEN CONCAT('LeadSource: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Origin__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Origin__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Origin__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Origin__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Origin__c')) > 1000 THEN CONCAT('Lead_Origin__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.HasOptedOutOfEmail' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.HasOptedOutOfEmail' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('HasOptedOutOfEmail: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.HasOptedOutOfEmail' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.DoNotCall' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.DoNotCall' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('DoNotCall: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.DoNotCall' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Total_Visits__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Total_Visits__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Total_Visits__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Total_Visits__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN JSON_VALUE(CAST(`val` AS STRING), '$.Total_Visits__c' RETURNING DOUBLE) < 0 THEN CONCAT('Total_Visits__c: ', CONCAT('must be >= 0, got ', JSON_VALUE(CAST(`val` AS STRING), '$.Total_Visits__c'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Time_On_Website__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Time_On_Website__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Time_On_Website__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Time_On_Website__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN JSON_VALUE(CAST(`val` AS STRING), '$.Time_On_Website__c' RETURNING DOUBLE) < 0 THEN CONCAT('Time_On_Website__c: ', CONCAT('must be >= 0, got ', JSON_VALUE(CAST(`val` AS STRING), '$.Time_On_Website__c'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Page_Views_Per_Visit__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN JSON_VALUE(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c' RETURNING DOUBLE) < 0 THEN CONCAT('Page_Views_Per_Visit__c: ', CONCAT('must be >= 0, got ', JSON_VALUE(CAST(`val` AS STRING), '$.Page_Views_Per_Visit__c'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Activity__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Activity__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Last_Activity__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Last_Activity__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Last_Activity__c')) > 1000 THEN CONCAT('Last_Activity__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Country' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Country' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Country: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Country' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Country')) > 1000 THEN CONCAT('Country: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.City' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.City' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('City: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.City' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.City')) > 1000 THEN CONCAT('City: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Specialization__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Specialization__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Specialization__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Specialization__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Specialization__c')) > 1000 THEN CONCAT('Specialization__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Occupation__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Occupation__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Occupation__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Occupation__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Occupation__c')) > 1000 THEN CONCAT('Occupation__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Course_Priority__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Course_Priority__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Course_Priority__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Course_Priority__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Course_Priority__c')) > 1000 THEN CONCAT('Course_Priority__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Referral_Channel__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Referral_Channel__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Referral_Channel__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Referral_Channel__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Referral_Channel__c')) > 1000 THEN CONCAT('Referral_Channel__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Search__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Search__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Search__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Search__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Magazine__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Magazine__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Magazine__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Magazine__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper_Article__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper_Article__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Newspaper_Article__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper_Article__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Forums__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Forums__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Forums__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Forums__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Newspaper__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Newspaper__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Digital__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Digital__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Digital__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Digital__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Recommendation__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Recommendation__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Ad_Recommendation__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Ad_Recommendation__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Free_Copy_Requested__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Free_Copy_Requested__c' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('Free_Copy_Requested__c: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Free_Copy_Requested__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Status' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Status' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Status: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Status' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Status')) > 1000 THEN CONCAT('Status: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.IsConverted' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.IsConverted' WITH WRAPPER) NOT IN ('[true]', '[false]') THEN CONCAT('IsConverted: ', CONCAT('expected a boolean, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.IsConverted' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Sales_Tags__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Sales_Tags__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Sales_Tags__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Sales_Tags__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Sales_Tags__c')) > 1000 THEN CONCAT('Sales_Tags__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Quality__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Quality__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Quality__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Quality__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Quality__c')) > 1000 THEN CONCAT('Lead_Quality__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Profile__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Profile__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Lead_Profile__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Lead_Profile__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Lead_Profile__c')) > 1000 THEN CONCAT('Lead_Profile__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Notable_Activity__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Last_Notable_Activity__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Last_Notable_Activity__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Last_Notable_Activity__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Last_Notable_Activity__c')) > 1000 THEN CONCAT('Last_Notable_Activity__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Index__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Index__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Activity_Index__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Index__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Activity_Index__c')) > 1000 THEN CONCAT('Activity_Index__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Index__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Index__c' WITH WRAPPER) NOT LIKE '["%' THEN CONCAT('Profile_Index__c: ', CONCAT('expected a string, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Index__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) WHEN CHAR_LENGTH(JSON_VALUE(CAST(`val` AS STRING), '$.Profile_Index__c')) > 1000 THEN CONCAT('Profile_Index__c: ', 'longer than 1000 characters') END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Score__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Score__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Activity_Score__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Activity_Score__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END,
      CASE WHEN JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Score__c' WITH WRAPPER) IS NULL THEN CAST(NULL AS STRING) WHEN NOT REGEXP(JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Score__c' WITH WRAPPER), '^\[-?[0-9]') THEN CONCAT('Profile_Score__c: ', CONCAT('expected a number, got ', COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', POSITION(SUBSTR(JSON_QUERY(CAST(`val` AS STRING), '$.Profile_Score__c' WITH WRAPPER), 2, 1) IN '"tf{[') - 1), 'number'))) END)
  END AS `reason`
  FROM `input_raw`
) AS checked
WHERE `reason` <> '';
END;

-- statement lead-scoring-route-d79eba91
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `leads`
SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
FROM `input_avro` WHERE `_ObjectType` = 'Lead';
INSERT INTO `contacts`
SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
FROM `input_avro` WHERE `_ObjectType` = 'Contact';
END;

-- statement lead-scoring-score-leads-6328dac9
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `lead_scores`
SELECT
  `Id`,
  `_ObjectType`,
  'updated' AS `_EventType`,
  `score` AS `Lead_Score__c`,
  `reasons_text` AS `Lead_Score_Reasons__c`,
  `model_version` AS `Lead_Score_Model__c`,
  `grade` AS `Lead_Grade__c`,
  `features_hash`,
  `source_time` AS `source_ts`,
  CURRENT_TIMESTAMP AS `scored_ts`
FROM (
  SELECT *,
    DATE_FORMAT(`LastModifiedDate`, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS `LastModifiedDate_iso`
  FROM (
    WITH `not_erased` AS (
      SELECT /*+ STATE_TTL('changes' = '1 s', 'erased' = '0') */ `changes`.*
      FROM (
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `leads`
            )
          )
          WHERE `first_seen` = 1
        ) AS `changed`
        WHERE NOT `is_rescore`
        UNION ALL
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `leads`
              WHERE `_EventType` = 'rescore'
            )
          )
          WHERE `first_seen` = 1
        ) AS `rescored`
      ) AS `changes`
      LEFT JOIN (
        SELECT CAST(`val` AS STRING) AS `Id`
        FROM `erased_ids` /*+ OPTIONS('scan.startup.mode'='earliest-offset') */
      ) AS `erased`
      ON `changes`.`Id` = `erased`.`Id`
      WHERE `erased`.`Id` IS NULL
    )
    SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
    FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT'])
  ) AS `unchanged`
) AS `input`,
  LATERAL TABLE(ML_PREDICT('lead_scorer_afd549bd', `Id`, `_ObjectType`, `LastModifiedDate_iso`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`))
WHERE CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END = '';
INSERT INTO `dlq`
SELECT
  JSON_OBJECT('Id' VALUE `Id`, '_ObjectType' VALUE `_ObjectType`, 'LastModifiedDate' VALUE CAST(`LastModifiedDate` AS STRING),
              'model_version' VALUE `model_version`, 'score' VALUE `score`) AS `payload`,
  CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END AS `reason`,
  `source_time` AS `source_ts`
FROM (
  SELECT *,
    DATE_FORMAT(`LastModifiedDate`, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS `LastModifiedDate_iso`
  FROM (
    WITH `not_erased` AS (
      SELECT /*+ STATE_TTL('changes' = '1 s', 'erased' = '0') */ `changes`.*
      FROM (
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `leads`
            )
          )
          WHERE `first_seen` = 1
        ) AS `changed`
        WHERE NOT `is_rescore`
        UNION ALL
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `leads`
              WHERE `_EventType` = 'rescore'
            )
          )
          WHERE `first_seen` = 1
        ) AS `rescored`
      ) AS `changes`
      LEFT JOIN (
        SELECT CAST(`val` AS STRING) AS `Id`
        FROM `erased_ids` /*+ OPTIONS('scan.startup.mode'='earliest-offset') */
      ) AS `erased`
      ON `changes`.`Id` = `erased`.`Id`
      WHERE `erased`.`Id` IS NULL
    )
    SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
    FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT'])
  ) AS `unchanged`
) AS `input`,
  LATERAL TABLE(ML_PREDICT('lead_scorer_afd549bd', `Id`, `_ObjectType`, `LastModifiedDate_iso`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`))
WHERE CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END <> '';
END;

-- statement lead-scoring-score-contacts-28994521
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `contact_scores`
SELECT
  `Id`,
  `_ObjectType`,
  'updated' AS `_EventType`,
  `score` AS `Lead_Score__c`,
  `reasons_text` AS `Lead_Score_Reasons__c`,
  `model_version` AS `Lead_Score_Model__c`,
  `grade` AS `Lead_Grade__c`,
  `features_hash`,
  `source_time` AS `source_ts`,
  CURRENT_TIMESTAMP AS `scored_ts`
FROM (
  SELECT *,
    DATE_FORMAT(`LastModifiedDate`, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS `LastModifiedDate_iso`
  FROM (
    WITH `not_erased` AS (
      SELECT /*+ STATE_TTL('changes' = '1 s', 'erased' = '0') */ `changes`.*
      FROM (
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `contacts`
            )
          )
          WHERE `first_seen` = 1
        ) AS `changed`
        WHERE NOT `is_rescore`
        UNION ALL
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `contacts`
              WHERE `_EventType` = 'rescore'
            )
          )
          WHERE `first_seen` = 1
        ) AS `rescored`
      ) AS `changes`
      LEFT JOIN (
        SELECT CAST(`val` AS STRING) AS `Id`
        FROM `erased_ids` /*+ OPTIONS('scan.startup.mode'='earliest-offset') */
      ) AS `erased`
      ON `changes`.`Id` = `erased`.`Id`
      WHERE `erased`.`Id` IS NULL
    )
    SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
    FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT'])
  ) AS `unchanged`
) AS `input`,
  LATERAL TABLE(ML_PREDICT('lead_scorer_afd549bd', `Id`, `_ObjectType`, `LastModifiedDate_iso`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`))
WHERE CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END = '';
INSERT INTO `dlq`
SELECT
  JSON_OBJECT('Id' VALUE `Id`, '_ObjectType' VALUE `_ObjectType`, 'LastModifiedDate' VALUE CAST(`LastModifiedDate` AS STRING),
              'model_version' VALUE `model_version`, 'score' VALUE `score`) AS `payload`,
  CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END AS `reason`,
  `source_time` AS `source_ts`
FROM (
  SELECT *,
    DATE_FORMAT(`LastModifiedDate`, 'yyyy-MM-dd''T''HH:mm:ss.SSS''Z''') AS `LastModifiedDate_iso`
  FROM (
    WITH `not_erased` AS (
      SELECT /*+ STATE_TTL('changes' = '1 s', 'erased' = '0') */ `changes`.*
      FROM (
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `contacts`
            )
          )
          WHERE `first_seen` = 1
        ) AS `changed`
        WHERE NOT `is_rescore`
        UNION ALL
        SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
        FROM (
          SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
          FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `arrival_time` ASC) AS `first_seen`
            FROM (
              SELECT *, `$rowtime` AS `arrival_time`, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
              FROM `contacts`
              WHERE `_EventType` = 'rescore'
            )
          )
          WHERE `first_seen` = 1
        ) AS `rescored`
      ) AS `changes`
      LEFT JOIN (
        SELECT CAST(`val` AS STRING) AS `Id`
        FROM `erased_ids` /*+ OPTIONS('scan.startup.mode'='earliest-offset') */
      ) AS `erased`
      ON `changes`.`Id` = `erased`.`Id`
      WHERE `erased`.`Id` IS NULL
    )
    SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
    FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT'])
  ) AS `unchanged`
) AS `input`,
  LATERAL TABLE(ML_PREDICT('lead_scorer_afd549bd', `Id`, `_ObjectType`, `LastModifiedDate_iso`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`))
WHERE CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END <> '';
END;
