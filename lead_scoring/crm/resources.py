"""The CRM the writeback writes to, chosen per profile: the warehouse's `crm_leads` or Salesforce."""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg

from lead_scoring.crm.salesforce import SalesforceResource
from lead_scoring.settings import Profile, current_profile


class LocalCrmResource(dg.ConfigurableResource):
    """The local profile's CRM: the `crm_leads` table of the warehouse resource."""

    def writer(self, warehouse: Any) -> Any:
        from lead_scoring.crm.writeback import LocalCrmWriter

        return LocalCrmWriter(warehouse)


def resources_for_profile(profile: Optional[Profile] = None) -> dict[str, Any]:
    """`crm`: LocalCrmResource (local) or SalesforceResource with credentials from the environment (gcp)."""
    profile = profile or current_profile()
    if profile is Profile.GCP:
        return {"crm": SalesforceResource.from_env()}
    return {"crm": LocalCrmResource()}
