"""The CRM domain: the connector-config assets and the `crm` resource of each profile."""

from __future__ import annotations

import dagster as dg

from lead_scoring.crm.assets import CONNECTOR_ASSETS
from lead_scoring.crm.resources import CrmResource, LocalCrm
from lead_scoring.crm.salesforce import SalesforceResource
from lead_scoring.settings import Profile


def crm(profile: Profile) -> CrmResource:
    """`crm`: the warehouse's crm_leads (local, cluster) or Salesforce with credentials from the environment (gcp)."""
    return SalesforceResource.from_env() if profile is Profile.GCP else LocalCrm()


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(assets=CONNECTOR_ASSETS, resources={"crm": crm(profile)})
