"""NurtureHub Pipelines: CRM syncs on Dagster, and the integrations page that shows their health."""
