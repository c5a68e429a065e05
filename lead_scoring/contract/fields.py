"""The ONE definition of a lead record's fields (`shared/contracts/lead-record.md`).

Avro schemas, warehouse DDL, Flink DDL, the validator and the model's feature list are all derived
from `LEAD_FIELDS` and `SCORE_FIELDS` below. Change the contract here, never in three places.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FieldType(str, enum.Enum):
    STRING = "string"
    BOOLEAN = "boolean"
    NUMBER = "number"  # double
    INT = "int"
    TIMESTAMP = "timestamp"  # ISO-8601 text in JSON, timestamp-millis in Avro


class Role(str, enum.Enum):
    KEY = "key"  # Id
    ROUTING = "routing"  # _ObjectType, _EventType
    EVENT_TIME = "event_time"
    PII = "pii"  # never a feature, never logged
    CATEGORICAL = "categorical"  # model feature
    NUMERIC = "numeric"  # model feature
    FLAG = "flag"  # boolean model feature
    LABEL = "label"  # IsConverted: never a feature
    LEAKAGE = "leakage"  # written after contact: kept in the warehouse, never a feature
    ATTRIBUTE = "attribute"  # kept, not a feature (CRM status, lead number, ...)


@dataclass(frozen=True)
class LeadField:
    name: str
    type: FieldType
    role: Role
    required: bool = False
    nullable: bool = True
    non_negative: bool = False
    allowed: tuple[str, ...] | None = None
    description: str = ""

    @property
    def is_feature(self) -> bool:
        return self.role in (Role.CATEGORICAL, Role.NUMERIC, Role.FLAG)


OBJECT_TYPES = ("Lead", "Contact")
# `rescore`: the project's own re-score request (promotion.rescore): an unchanged record sent again so a new
# champion scores it; scored even when its features are unchanged, never landed as a CRM change. A value, not a
# Kafka header, so it survives every profile (Confluent's statements carry columns, not headers).
RESCORE_EVENT = "rescore"
EVENT_TYPES = ("created", "updated", "deleted", RESCORE_EVENT)
DEFAULT_EVENT_TYPE = "created"

_S, _B, _N, _T = FieldType.STRING, FieldType.BOOLEAN, FieldType.NUMBER, FieldType.TIMESTAMP

LEAD_FIELDS: tuple[LeadField, ...] = (
    LeadField("Id", _S, Role.KEY, required=True, nullable=False, description="Salesforce record id"),
    LeadField(
        "_ObjectType",
        _S,
        Role.ROUTING,
        required=True,
        nullable=False,
        allowed=OBJECT_TYPES,
        description="routes the record to leads or contacts",
    ),
    LeadField(
        "_EventType",
        _S,
        Role.ROUTING,
        allowed=EVENT_TYPES,
        description="default created; rescore: the project's re-score request, never a CRM change",
    ),
    LeadField("LastModifiedDate", _T, Role.EVENT_TIME, required=True, nullable=False, description="event time"),
    LeadField("CreatedDate", _T, Role.ATTRIBUTE),
    LeadField("FirstName", _S, Role.PII),
    LeadField("LastName", _S, Role.PII),
    LeadField("Company", _S, Role.PII),
    LeadField("Email", _S, Role.PII),
    LeadField("Title", _S, Role.PII),
    LeadField("Lead_Number__c", _S, Role.ATTRIBUTE, description="CRM export's lead number"),
    LeadField("LeadSource", _S, Role.CATEGORICAL, description="Google, Direct Traffic, Olark Chat, ..."),
    LeadField("Lead_Origin__c", _S, Role.CATEGORICAL, description="Landing Page Submission, API, Lead Add Form, ..."),
    LeadField("HasOptedOutOfEmail", _B, Role.FLAG),
    LeadField("DoNotCall", _B, Role.FLAG),
    LeadField("Total_Visits__c", _N, Role.NUMERIC, non_negative=True, description="web visits"),
    LeadField("Time_On_Website__c", _N, Role.NUMERIC, non_negative=True, description="seconds"),
    LeadField("Page_Views_Per_Visit__c", _N, Role.NUMERIC, non_negative=True),
    LeadField("Last_Activity__c", _S, Role.CATEGORICAL, description="Email Opened, SMS Sent, ..."),
    LeadField("Country", _S, Role.CATEGORICAL),
    LeadField("City", _S, Role.CATEGORICAL),
    LeadField("Specialization__c", _S, Role.CATEGORICAL),
    LeadField("Occupation__c", _S, Role.CATEGORICAL, description="Unemployed, Working Professional, Student, ..."),
    LeadField("Course_Priority__c", _S, Role.CATEGORICAL, description="what matters most to the lead"),
    LeadField("Referral_Channel__c", _S, Role.CATEGORICAL, description="how the lead heard about us"),
    LeadField("Ad_Search__c", _B, Role.FLAG),
    LeadField("Ad_Magazine__c", _B, Role.FLAG),
    LeadField("Ad_Newspaper_Article__c", _B, Role.FLAG),
    LeadField("Ad_Forums__c", _B, Role.FLAG),
    LeadField("Ad_Newspaper__c", _B, Role.FLAG),
    LeadField("Ad_Digital__c", _B, Role.FLAG),
    LeadField("Ad_Recommendation__c", _B, Role.FLAG),
    LeadField("Free_Copy_Requested__c", _B, Role.FLAG),
    LeadField("Status", _S, Role.ATTRIBUTE, description="CRM lead status"),
    LeadField("IsConverted", _B, Role.LABEL, description="THE LABEL; arrives later on an updated event"),
    LeadField("Sales_Tags__c", _S, Role.LEAKAGE),
    LeadField("Lead_Quality__c", _S, Role.LEAKAGE),
    LeadField("Lead_Profile__c", _S, Role.LEAKAGE),
    LeadField("Last_Notable_Activity__c", _S, Role.LEAKAGE),
    LeadField("Activity_Index__c", _S, Role.LEAKAGE),
    LeadField("Profile_Index__c", _S, Role.LEAKAGE),
    LeadField("Activity_Score__c", _N, Role.LEAKAGE),
    LeadField("Profile_Score__c", _N, Role.LEAKAGE),
)

FIELDS_BY_NAME: dict[str, LeadField] = {f.name: f for f in LEAD_FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS)
REQUIRED_FIELDS: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS if f.required)

CATEGORICAL_FEATURES: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS if f.role is Role.CATEGORICAL)
NUMERIC_FEATURES: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS if f.role is Role.NUMERIC)
FLAG_FEATURES: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS if f.role is Role.FLAG)
FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES + FLAG_FEATURES
LABEL: str = "IsConverted"
LEAKAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS if f.role is Role.LEAKAGE)
PII_FIELDS: tuple[str, ...] = tuple(f.name for f in LEAD_FIELDS if f.role is Role.PII)
# Never allowed into a model: checked by the quality gate.
FORBIDDEN_FEATURES: frozenset[str] = frozenset(LEAKAGE_FIELDS + PII_FIELDS + (LABEL,))


@dataclass(frozen=True)
class ScoreField:
    name: str
    type: FieldType
    description: str
    nullable: bool = False  # null where the model has nothing to say (a model trained before grades)


SCORE_FIELDS: tuple[ScoreField, ...] = (
    ScoreField("Id", FieldType.STRING, "key of the message too"),
    ScoreField("_ObjectType", FieldType.STRING, "Lead / Contact"),
    ScoreField("_EventType", FieldType.STRING, "always 'updated': the sink updates the record"),
    ScoreField("Lead_Score__c", FieldType.INT, "calibrated conversion probability x 100, 0-100"),
    ScoreField("Lead_Score_Reasons__c", FieldType.STRING, "top factors, signed, human readable"),
    ScoreField("Lead_Score_Model__c", FieldType.STRING, "model version that produced the score"),
    ScoreField(
        "Lead_Grade__c",
        FieldType.STRING,
        "grade A-D of the score; cut-offs fitted at training time (null for a model without grades)",
        nullable=True,
    ),
    ScoreField(
        "features_hash", FieldType.STRING, "hash of the feature values scored (contract.hashing)", nullable=True
    ),
    ScoreField("source_ts", FieldType.TIMESTAMP, "input record's produce time (Kafka timestamp)"),
    ScoreField("scored_ts", FieldType.TIMESTAMP, "when the score was produced"),
)
SCORE_GRADES: tuple[str, ...] = ("A", "B", "C", "D")  # the values of Lead_Grade__c, best first

# `lead_score_history` (contract section 2b): one row per score produced, champion or shadow.
LEDGER_COLUMNS: tuple[str, ...] = (
    "Id",
    "_ObjectType",
    "Lead_Score__c",
    "Lead_Grade__c",
    "Lead_Score_Reasons__c",
    "Lead_Score_Model__c",
    "features_hash",
    "source_ts",
    "scored_ts",
    "shadow",
)
