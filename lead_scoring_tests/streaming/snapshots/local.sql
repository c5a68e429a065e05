-- dialect: flink; model m20261123-120000-abc123 (kserve)

SET 'table.local-time-zone' = 'UTC';

SET 'execution.checkpointing.interval' = '60 s';

SET 'restart-strategy.type' = 'exponential-delay';

SET 'table.exec.async-ml-predict.max-concurrent-operations' = '2048';

SET 'table.exec.async-ml-predict.timeout' = '10 min';

SET 'table.exec.state.ttl' = '5 min';

SET 'execution.buffer-timeout.interval' = '5 ms';

SET 'table.optimizer.reuse-optimize-block-with-digest-enabled' = 'true';

SET 'pipeline.object-reuse' = 'true';

CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS CONTRACT_CHECK AS 'io.leadscoring.flink.contract.ContractCheck';

-- table input_raw
CREATE TABLE `input_raw` (
  `payload` STRING,
  `source_time` TIMESTAMP_LTZ(3) METADATA FROM 'timestamp'
)
WITH (
  'connector' = 'kafka',
  'topic' = 'input_raw',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.format' = 'raw'
);

-- table input_avro
CREATE TABLE `input_avro` (
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
WITH (
  'connector' = 'kafka',
  'topic' = 'input_avro',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'raw',
  'key.fields' = 'Id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.avro.timestamp_mapping.legacy' = 'false',
  'value.format' = 'avro'
);

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

-- table lead_scores
CREATE TABLE `lead_scores` (
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
  'topic' = 'lead_scores',
  'properties.bootstrap.servers' = '127.0.0.1:9092',
  'key.format' = 'raw',
  'key.fields' = 'Id',
  'value.fields-include' = 'ALL',
  'sink.delivery-guarantee' = 'at-least-once',
  'properties.linger.ms' = '2',
  'value.format' = 'json'
);

-- table contact_scores
CREATE TABLE `contact_scores` (
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
  'topic' = 'contact_scores',
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
CREATE TEMPORARY VIEW `input_raw_checked` AS
SELECT `payload`, `source_time`, CONTRACT_CHECK(`payload`, '{"max_string_length":1000,"timestamp_pattern":"^\\d{4}-\\d{2}-\\d{2}[T ]\\d{2}:\\d{2}(:\\d{2}(\\.\\d{1,9})?)?(Z|[+-]\\d{2}:?\\d{2})?$","fields":[{"name":"Id","type":"string","required":true,"nullable":false,"non_negative":false,"allowed":null},{"name":"_ObjectType","type":"string","required":true,"nullable":false,"non_negative":false,"allowed":["Lead","Contact"]},{"name":"_EventType","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":["created","updated","deleted","rescore"]},{"name":"LastModifiedDate","type":"timestamp","required":true,"nullable":false,"non_negative":false,"allowed":null},{"name":"CreatedDate","type":"timestamp","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"FirstName","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"LastName","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Company","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Email","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Title","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Lead_Number__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"LeadSource","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Lead_Origin__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"HasOptedOutOfEmail","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"DoNotCall","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Total_Visits__c","type":"number","required":false,"nullable":true,"non_negative":true,"allowed":null},{"name":"Time_On_Website__c","type":"number","required":false,"nullable":true,"non_negative":true,"allowed":null},{"name":"Page_Views_Per_Visit__c","type":"number","required":false,"nullable":true,"non_negative":true,"allowed":null},{"name":"Last_Activity__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Country","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"City","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Specialization__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Occupation__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Course_Priority__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Referral_Channel__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Search__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Magazine__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Newspaper_Article__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Forums__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Newspaper__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Digital__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Ad_Recommendation__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Free_Copy_Requested__c","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Status","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"IsConverted","type":"boolean","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Sales_Tags__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Lead_Quality__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Lead_Profile__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Last_Notable_Activity__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Activity_Index__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Profile_Index__c","type":"string","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Activity_Score__c","type":"number","required":false,"nullable":true,"non_negative":false,"allowed":null},{"name":"Profile_Score__c","type":"number","required":false,"nullable":true,"non_negative":false,"allowed":null}]}') AS `c`
FROM `input_raw`;

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

-- model lead_scorer_810f0678
CREATE TEMPORARY MODEL `lead_scorer_810f0678`
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
  'endpoint' = 'http://127.0.0.1:8080/v1/models/lead_scorer:predict',
  'timeout' = '10s',
  'retry-timeout' = '5 min',
  'batch-size' = '256',
  'batch-linger' = '10 ms'
);

-- statement lead-scoring-validate-f975bbab
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `input_avro`
SELECT
  `v`.`c`.`vals`[1] AS `Id`,
  `v`.`c`.`vals`[2] AS `_ObjectType`,
  COALESCE(`v`.`c`.`vals`[3], 'created') AS `_EventType`,
  TO_TIMESTAMP_LTZ(CAST(`v`.`c`.`vals`[4] AS BIGINT), 3) AS `LastModifiedDate`,
  TO_TIMESTAMP_LTZ(CAST(`v`.`c`.`vals`[5] AS BIGINT), 3) AS `CreatedDate`,
  `v`.`c`.`vals`[6] AS `FirstName`,
  `v`.`c`.`vals`[7] AS `LastName`,
  `v`.`c`.`vals`[8] AS `Company`,
  `v`.`c`.`vals`[9] AS `Email`,
  `v`.`c`.`vals`[10] AS `Title`,
  `v`.`c`.`vals`[11] AS `Lead_Number__c`,
  `v`.`c`.`vals`[12] AS `LeadSource`,
  `v`.`c`.`vals`[13] AS `Lead_Origin__c`,
  CAST(`v`.`c`.`vals`[14] AS BOOLEAN) AS `HasOptedOutOfEmail`,
  CAST(`v`.`c`.`vals`[15] AS BOOLEAN) AS `DoNotCall`,
  CAST(`v`.`c`.`vals`[16] AS DOUBLE) AS `Total_Visits__c`,
  CAST(`v`.`c`.`vals`[17] AS DOUBLE) AS `Time_On_Website__c`,
  CAST(`v`.`c`.`vals`[18] AS DOUBLE) AS `Page_Views_Per_Visit__c`,
  `v`.`c`.`vals`[19] AS `Last_Activity__c`,
  `v`.`c`.`vals`[20] AS `Country`,
  `v`.`c`.`vals`[21] AS `City`,
  `v`.`c`.`vals`[22] AS `Specialization__c`,
  `v`.`c`.`vals`[23] AS `Occupation__c`,
  `v`.`c`.`vals`[24] AS `Course_Priority__c`,
  `v`.`c`.`vals`[25] AS `Referral_Channel__c`,
  CAST(`v`.`c`.`vals`[26] AS BOOLEAN) AS `Ad_Search__c`,
  CAST(`v`.`c`.`vals`[27] AS BOOLEAN) AS `Ad_Magazine__c`,
  CAST(`v`.`c`.`vals`[28] AS BOOLEAN) AS `Ad_Newspaper_Article__c`,
  CAST(`v`.`c`.`vals`[29] AS BOOLEAN) AS `Ad_Forums__c`,
  CAST(`v`.`c`.`vals`[30] AS BOOLEAN) AS `Ad_Newspaper__c`,
  CAST(`v`.`c`.`vals`[31] AS BOOLEAN) AS `Ad_Digital__c`,
  CAST(`v`.`c`.`vals`[32] AS BOOLEAN) AS `Ad_Recommendation__c`,
  CAST(`v`.`c`.`vals`[33] AS BOOLEAN) AS `Free_Copy_Requested__c`,
  `v`.`c`.`vals`[34] AS `Status`,
  CAST(`v`.`c`.`vals`[35] AS BOOLEAN) AS `IsConverted`,
  `v`.`c`.`vals`[36] AS `Sales_Tags__c`,
  `v`.`c`.`vals`[37] AS `Lead_Quality__c`,
  `v`.`c`.`vals`[38] AS `Lead_Profile__c`,
  `v`.`c`.`vals`[39] AS `Last_Notable_Activity__c`,
  `v`.`c`.`vals`[40] AS `Activity_Index__c`,
  `v`.`c`.`vals`[41] AS `Profile_Index__c`,
  CAST(`v`.`c`.`vals`[42] AS DOUBLE) AS `Activity_Score__c`,
  CAST(`v`.`c`.`vals`[43] AS DOUBLE) AS `Profile_Score__c`,
  `v`.`source_time`
FROM `input_raw_checked` AS `v`
WHERE `v`.`c`.`reason` = '';
INSERT INTO `dlq`
SELECT `v`.`payload`, `v`.`c`.`reason`, (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `v`.`source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `v`.`source_time`) * 1000 + EXTRACT(MILLISECOND FROM `v`.`source_time`)) AS `source_ts`
FROM `input_raw_checked` AS `v`
WHERE `v`.`c`.`reason` <> '';
END;

-- statement lead-scoring-route-eac06ce9
EXECUTE STATEMENT SET
BEGIN
INSERT INTO `leads`
SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
FROM `input_avro` WHERE `_ObjectType` = 'Lead';
INSERT INTO `contacts`
SELECT `Id`, `_ObjectType`, `_EventType`, `LastModifiedDate`, `CreatedDate`, `FirstName`, `LastName`, `Company`, `Email`, `Title`, `Lead_Number__c`, `LeadSource`, `Lead_Origin__c`, `HasOptedOutOfEmail`, `DoNotCall`, `Total_Visits__c`, `Time_On_Website__c`, `Page_Views_Per_Visit__c`, `Last_Activity__c`, `Country`, `City`, `Specialization__c`, `Occupation__c`, `Course_Priority__c`, `Referral_Channel__c`, `Ad_Search__c`, `Ad_Magazine__c`, `Ad_Newspaper_Article__c`, `Ad_Forums__c`, `Ad_Newspaper__c`, `Ad_Digital__c`, `Ad_Recommendation__c`, `Free_Copy_Requested__c`, `Status`, `IsConverted`, `Sales_Tags__c`, `Lead_Quality__c`, `Lead_Profile__c`, `Last_Notable_Activity__c`, `Activity_Index__c`, `Profile_Index__c`, `Activity_Score__c`, `Profile_Score__c`, `source_time`
FROM `input_avro` WHERE `_ObjectType` = 'Contact';
END;

-- statement lead-scoring-score-leads-4fef23a8
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
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `source_time`) * 1000 + EXTRACT(MILLISECOND FROM `source_time`)) AS `source_ts`,
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), CURRENT_TIMESTAMP) AS BIGINT) * 60000 + EXTRACT(SECOND FROM CURRENT_TIMESTAMP) * 1000 + EXTRACT(MILLISECOND FROM CURRENT_TIMESTAMP)) AS `scored_ts`
FROM ML_PREDICT(
  TABLE `leads_changed`,
  MODEL `lead_scorer_810f0678`,
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
  MODEL `lead_scorer_810f0678`,
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

-- statement lead-scoring-score-contacts-266d166b
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
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), `source_time`) AS BIGINT) * 60000 + EXTRACT(SECOND FROM `source_time`) * 1000 + EXTRACT(MILLISECOND FROM `source_time`)) AS `source_ts`,
  (CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), CURRENT_TIMESTAMP) AS BIGINT) * 60000 + EXTRACT(SECOND FROM CURRENT_TIMESTAMP) * 1000 + EXTRACT(MILLISECOND FROM CURRENT_TIMESTAMP)) AS `scored_ts`
FROM ML_PREDICT(
  TABLE `contacts_changed`,
  MODEL `lead_scorer_810f0678`,
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
  MODEL `lead_scorer_810f0678`,
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
