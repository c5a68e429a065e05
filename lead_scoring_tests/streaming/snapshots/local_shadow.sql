-- dialect: flink; shadow model m20261123-120000-abc123 (kserve)

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '60 s';

SET 'restart-strategy.type' = 'exponential-delay';

SET 'table.exec.async-ml-predict.max-concurrent-operations' = '2048';

SET 'table.exec.async-ml-predict.timeout' = '10 min';

SET 'table.exec.state.ttl' = '5 min';

SET 'execution.buffer-timeout.interval' = '5 ms';

SET 'table.optimizer.reuse-optimize-block-with-digest-enabled' = 'true';

SET 'pipeline.object-reuse' = 'true';

-- table leads
CREATE TABLE `leads` (
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
  `source_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  `proc_time` AS PROCTIME()
)
WITH (
  'connector' = 'kafka',
  'topic' = 'leads',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'raw',
  'key.fields' = 'Id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.avro.timestamp_mapping.legacy' = 'false',
  'value.format' = 'avro'
);

-- table contacts
CREATE TABLE `contacts` (
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
  `source_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp',
  `proc_time` AS PROCTIME()
)
WITH (
  'connector' = 'kafka',
  'topic' = 'contacts',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'raw',
  'key.fields' = 'Id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.avro.timestamp_mapping.legacy' = 'false',
  'value.format' = 'avro'
);

-- table lead_scores_shadow
CREATE TABLE `lead_scores_shadow` (
  `Id` STRING NOT NULL,
  `_ObjectType` STRING NOT NULL,
  `_EventType` STRING NOT NULL,
  `Lead_Score__c` INT NOT NULL,
  `Lead_Score_Reasons__c` STRING NOT NULL,
  `Lead_Score_Model__c` STRING NOT NULL,
  `Lead_Grade__c` STRING,
  `features_hash` STRING,
  `source_ts` BIGINT NOT NULL,
  `scored_ts` BIGINT NOT NULL
)
WITH (
  'connector' = 'kafka',
  'topic' = 'lead_scores_shadow',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'raw',
  'key.fields' = 'Id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.format' = 'json'
);

-- table dlq
CREATE TABLE `dlq` (
  `payload` STRING,
  `reason` STRING NOT NULL,
  `source_ts` BIGINT
)
WITH (
  'connector' = 'kafka',
  'topic' = 'dlq',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.format' = 'json'
);

-- table erased_ids
CREATE TABLE `erased_ids` (
  `Id` STRING
)
WITH (
  'connector' = 'kafka',
  'topic' = 'erased_ids',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'scan.startup.mode' = 'earliest-offset',
  'key.format' = 'raw',
  'key.fields' = 'Id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.format' = 'raw'
);

-- view
CREATE TEMPORARY VIEW `leads_changed` AS
WITH `not_erased` AS (
  SELECT /*+ STATE_TTL('changes' = '1 s', 'erased' = '0') */ `changes`.*
  FROM (
    SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
    FROM (
      SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
      FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `proc_time` ASC) AS `first_seen`
        FROM (
          SELECT *, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
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
        SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `proc_time` ASC) AS `first_seen`
        FROM (
          SELECT *, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
          FROM `leads`
          WHERE `_EventType` = 'rescore'
        )
      )
      WHERE `first_seen` = 1
    ) AS `rescored`
  ) AS `changes`
  LEFT JOIN (
    SELECT `Id`
    FROM `erased_ids`
  ) AS `erased`
  ON `changes`.`Id` = `erased`.`Id`
  WHERE `erased`.`Id` IS NULL
)
SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT']);

-- view
CREATE TEMPORARY VIEW `contacts_changed` AS
WITH `not_erased` AS (
  SELECT /*+ STATE_TTL('changes' = '1 s', 'erased' = '0') */ `changes`.*
  FROM (
    SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
    FROM (
      SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`, `_EventType` IS NOT DISTINCT FROM 'rescore' AS `is_rescore`
      FROM (
        SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key` ORDER BY `proc_time` ASC) AS `first_seen`
        FROM (
          SELECT *, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
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
        SELECT *, ROW_NUMBER() OVER (PARTITION BY `Id`, `features_key`, `source_time` ORDER BY `proc_time` ASC) AS `first_seen`
        FROM (
          SELECT *, SUBSTR(SHA256(JSON_ARRAY(`LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c` NULL ON NULL)), 1, 16) AS `features_key`
          FROM `contacts`
          WHERE `_EventType` = 'rescore'
        )
      )
      WHERE `first_seen` = 1
    ) AS `rescored`
  ) AS `changes`
  LEFT JOIN (
    SELECT `Id`
    FROM `erased_ids`
  ) AS `erased`
  ON `changes`.`Id` = `erased`.`Id`
  WHERE `erased`.`Id` IS NULL
)
SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
FROM TO_CHANGELOG(input => TABLE `not_erased`, op_mapping => MAP['INSERT', 'INSERT']);

-- model lead_scorer_shadow_c9bf9fac
CREATE TEMPORARY MODEL `lead_scorer_shadow_c9bf9fac`
INPUT (
  `Id` STRING,
  `_ObjectType` STRING,
  `LastModifiedDate` TIMESTAMP_LTZ(3),
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
  'provider' = 'kserve',
  'endpoint' = 'http://127.0.0.1:8080/v1/models/lead_scorer_challenger:predict',
  'timeout' = '10s',
  'retry-timeout' = '5 min',
  'batch-size' = '256',
  'batch-linger' = '10 ms'
);

-- statement lead-scoring-shadow-leads-363cee84
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `lead_scores_shadow`
SELECT
  `Id`,
  `_ObjectType`,
  'updated' AS `_EventType`,
  `score` AS `Lead_Score__c`,
  `reasons_text` AS `Lead_Score_Reasons__c`,
  `model_version` AS `Lead_Score_Model__c`,
  `grade` AS `Lead_Grade__c`,
  `features_hash`,
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `source_time`) * 1000 + EXTRACT(MILLISECOND FROM `source_time`)) AS `source_ts`,
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), CURRENT_TIMESTAMP) AS BIGINT) * 60000 + EXTRACT(SECOND FROM CURRENT_TIMESTAMP) * 1000 + EXTRACT(MILLISECOND FROM CURRENT_TIMESTAMP)) AS `scored_ts`
FROM ML_PREDICT(
  TABLE `leads_changed`,
  MODEL `lead_scorer_shadow_c9bf9fac`,
  DESCRIPTOR(`Id`, `_ObjectType`, `LastModifiedDate`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`)
)
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
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `source_time`) * 1000 + EXTRACT(MILLISECOND FROM `source_time`)) AS `source_ts`
FROM ML_PREDICT(
  TABLE `leads_changed`,
  MODEL `lead_scorer_shadow_c9bf9fac`,
  DESCRIPTOR(`Id`, `_ObjectType`, `LastModifiedDate`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`)
)
WHERE CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END <> '';
END;

-- statement lead-scoring-shadow-contacts-267ff750
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `lead_scores_shadow`
SELECT
  `Id`,
  `_ObjectType`,
  'updated' AS `_EventType`,
  `score` AS `Lead_Score__c`,
  `reasons_text` AS `Lead_Score_Reasons__c`,
  `model_version` AS `Lead_Score_Model__c`,
  `grade` AS `Lead_Grade__c`,
  `features_hash`,
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `source_time`) * 1000 + EXTRACT(MILLISECOND FROM `source_time`)) AS `source_ts`,
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), CURRENT_TIMESTAMP) AS BIGINT) * 60000 + EXTRACT(SECOND FROM CURRENT_TIMESTAMP) * 1000 + EXTRACT(MILLISECOND FROM CURRENT_TIMESTAMP)) AS `scored_ts`
FROM ML_PREDICT(
  TABLE `contacts_changed`,
  MODEL `lead_scorer_shadow_c9bf9fac`,
  DESCRIPTOR(`Id`, `_ObjectType`, `LastModifiedDate`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`)
)
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
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `source_time`) * 1000 + EXTRACT(MILLISECOND FROM `source_time`)) AS `source_ts`
FROM ML_PREDICT(
  TABLE `contacts_changed`,
  MODEL `lead_scorer_shadow_c9bf9fac`,
  DESCRIPTOR(`Id`, `_ObjectType`, `LastModifiedDate`, `LeadSource`, `Lead_Origin__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`)
)
WHERE CASE
    WHEN `score` IS NULL THEN 'model output: score is null'
    WHEN `score` < 0 OR `score` > 100 THEN 'model output: score outside 0-100'
    WHEN `reasons_text` IS NULL THEN 'model output: reasons are null'
    WHEN `model_version` IS NULL THEN 'model output: model version is null'
    ELSE ''
  END <> '';
END;
