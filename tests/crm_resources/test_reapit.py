"""Reapit against the sandbox over real loopback HTTP: the contract every CRM meets (crm_contract.py)."""

from __future__ import annotations

from crm_contract import CrmContract


class TestReapit(CrmContract):
    CRM = "reapit"
