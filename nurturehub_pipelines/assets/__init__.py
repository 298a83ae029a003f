"""The Catalog's assets: each CRM's contacts and leads per integration, and the daily sync health report."""

from nurturehub_pipelines.assets.crm_records import CRM_PARTITIONS, CRM_RECORD_ASSETS, asset_key, partitions_name
from nurturehub_pipelines.assets.health_report import (
    sync_health_report,
    sync_health_report_job,
    sync_health_report_schedule,
)

__all__ = [
    "CRM_PARTITIONS",
    "CRM_RECORD_ASSETS",
    "asset_key",
    "partitions_name",
    "sync_health_report",
    "sync_health_report_job",
    "sync_health_report_schedule",
]
