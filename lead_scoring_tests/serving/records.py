"""Small, deterministic contract records and a fitted model for the serving tests (no PII used)."""

from __future__ import annotations

import random
from typing import Any

ORIGINS = ["Landing Page Submission", "API", "Lead Add Form", "Lead Import"]
SOURCES = ["Google", "Direct Traffic", "Olark Chat", "Organic Search", "Reference"]
ACTIVITIES = ["Email Opened", "SMS Sent", "Olark Chat Conversation", "Page Visited on Website", "Email Bounced"]
OCCUPATIONS = [None, "Unemployed", "Working Professional", "Student"]


def make_records(n: int, seed: int = 1) -> tuple[list[dict[str, Any]], list[bool]]:
    """`n` valid contract records with a learnable label."""
    rng = random.Random(seed)
    records, labels = [], []
    for i in range(n):
        origin = rng.choice(ORIGINS)
        occupation = rng.choice(OCCUPATIONS)
        activity = rng.choice(ACTIVITIES)
        seconds = rng.choice([0.0, rng.uniform(0, 2400)])
        visits = rng.choice([None, float(rng.randint(0, 12))])
        logit = -1.0 + 2.0 * (origin == "Lead Add Form") + 2.0 * (occupation == "Working Professional")
        logit += 1.2 * (activity == "SMS Sent") - 1.5 * (activity == "Email Bounced") + seconds / 900
        label = rng.random() < 1 / (1 + 2.718281828**-logit)
        records.append(
            {
                "Id": f"00Q{seed:03d}{i:09d}",
                "_ObjectType": "Lead",
                "_EventType": "created",
                "LastModifiedDate": "2026-11-01T10:00:00Z",
                "FirstName": "Test",
                "LastName": f"Person{i}",
                "Email": f"person{i}@example.com",
                "LeadSource": rng.choice(SOURCES),
                "Lead_Origin__c": origin,
                "HasOptedOutOfEmail": rng.random() < 0.1,
                "DoNotCall": False,
                "Total_Visits__c": visits,
                "Time_On_Website__c": seconds,
                "Page_Views_Per_Visit__c": rng.choice([None, round(rng.uniform(0, 6), 1)]),
                "Last_Activity__c": activity,
                "Country": rng.choice([None, "India", "United States"]),
                "Occupation__c": occupation,
                "City": rng.choice([None, "Mumbai", "Thane & Outskirts"]),
                "Specialization__c": rng.choice([None, "Finance Management", "Marketing Management"]),
                "Course_Priority__c": rng.choice([None, "Better Career Prospects"]),
                "Referral_Channel__c": rng.choice([None, "Online Search", "Word Of Mouth"]),
                "Free_Copy_Requested__c": rng.random() < 0.3,
            }
        )
        labels.append(label)
    return records, labels


def fit_model(n: int = 400, seed: int = 1):
    from lead_scoring.training.model import ModelParams, build_pipeline, features_frame, fit

    records, labels = make_records(n, seed)
    return fit(build_pipeline(ModelParams(min_category_frequency=2)), features_frame(records), labels)
