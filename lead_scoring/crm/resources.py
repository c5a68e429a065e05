"""The CRM the writeback writes scores to: the role (`CrmResource`) and the local implementation.

Local profile: `crm_leads` in the warehouse (`LocalCrm`). gcp profile: Salesforce (`SalesforceCrm`, in
salesforce.py), written through Bulk API 2.0.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import dagster as dg

from lead_scoring.crm.writeback import CrmWriter, LocalCrmWriter
from lead_scoring.warehouse.resources import Warehouse


class CrmResource(dg.ConfigurableResource, ABC):
    """Where scores are written back."""

    @abstractmethod
    def writer(self, warehouse: Warehouse) -> CrmWriter:
        """A writer of score records (per-record failures returned, transient errors raised)."""


class LocalCrm(CrmResource):
    """The local profile's CRM: the `crm_leads` table of the warehouse."""

    def writer(self, warehouse: Warehouse) -> CrmWriter:
        return LocalCrmWriter(warehouse)
