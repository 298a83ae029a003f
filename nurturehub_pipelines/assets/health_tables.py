"""The sync health report's tables: pandas over `crm_sync_log`, imported only when the report runs.

Kept apart from the asset's definition (`health_report`) so the code location, which every sync's run
worker imports, does not import pandas (a third of its import time) for a report that runs once a day.
What counts as a failed sync comes from the log rules (`store.sync_log.failed_sync`), evaluated in the query.
"""

from datetime import datetime

import pandas as pd
from sqlalchemy import Connection, select

from crm_resources.registry import crm_name
from nurturehub_pipelines.store.sync_log import failed_sync
from nurturehub_pipelines.store.tables import crm_sync_log, integrations, organisations, skipped_records

TOP = 3  # reasons listed per row
COLUMNS = ("Syncs", "Failure rate", "p50", "p95", "Records written", "Top skip reasons", "Top error reasons")


def load(conn: Connection, since: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The syncs that finished since `since`, each with its run's first row's time; and the skips since."""
    who = integrations.join(organisations, organisations.c.id == integrations.c.org_id)
    finished = select(
        crm_sync_log.c.run_id,
        crm_sync_log.c.outcome,
        crm_sync_log.c.records_affected,
        crm_sync_log.c.message,
        crm_sync_log.c.occurred_at,
        failed_sync(crm_sync_log).label("failed"),
        integrations.c.crm,
        integrations.c.org_id,
        organisations.c.name.label("organisation"),
    ).select_from(crm_sync_log.join(who, integrations.c.id == crm_sync_log.c.integration_id))
    finished = finished.where(crm_sync_log.c.event_type == "sync_finished", crm_sync_log.c.occurred_at >= since)
    runs = finished.where(crm_sync_log.c.run_id.is_not(None)).with_only_columns(crm_sync_log.c.run_id)
    rows = select(crm_sync_log.c.run_id, crm_sync_log.c.occurred_at).where(crm_sync_log.c.run_id.in_(runs))
    skips = (
        select(
            integrations.c.crm,
            integrations.c.org_id,
            organisations.c.name.label("organisation"),
            skipped_records.c.reason,
        )
        .select_from(skipped_records.join(who, integrations.c.id == skipped_records.c.integration_id))
        .where(skipped_records.c.occurred_at >= since)
    )
    syncs = pd.DataFrame(conn.execute(finished).mappings().all(), columns=[c.name for c in finished.selected_columns])
    run_rows = pd.DataFrame(conn.execute(rows).mappings().all(), columns=["run_id", "occurred_at"])
    skipped = pd.DataFrame(conn.execute(skips).mappings().all(), columns=["crm", "org_id", "organisation", "reason"])
    return with_durations(syncs, run_rows), skipped


def with_durations(syncs: pd.DataFrame, run_rows: pd.DataFrame) -> pd.DataFrame:
    """A run's duration: its sync_finished time minus its first row's time (none for rows outside a run)."""
    started = pd.to_datetime(run_rows["occurred_at"], utc=True).groupby(run_rows["run_id"]).min()
    finished_at = pd.to_datetime(syncs["occurred_at"], utc=True)
    first_row_at = pd.to_datetime(syncs["run_id"].map(started.to_dict()), utc=True)
    durations = (finished_at - first_row_at).dt.total_seconds().astype(float)
    return syncs.assign(failed=syncs["failed"].astype(bool), seconds=durations)


def top(values: pd.Series) -> str:
    """The most frequent values with their counts; ties in alphabetical order, so the report is stable."""
    counts = values.value_counts().sort_index().sort_values(ascending=False, kind="stable").head(TOP)
    return "; ".join(f"{value} ({count})" for value, count in counts.items())


def summarise(syncs: pd.DataFrame, skipped: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """One row per group: syncs, failure rate, p50/p95 duration (s), records written, top reasons."""
    groups = syncs.groupby(by)
    table = pd.DataFrame(
        {
            "syncs": groups.size(),
            "failure_rate": groups["failed"].mean(),
            "p50_seconds": groups["seconds"].quantile(0.5),
            "p95_seconds": groups["seconds"].quantile(0.95),
            "records_written": groups["records_affected"].sum(),
            "top_errors": syncs[syncs["failed"]].groupby(by)["message"].agg(top),
            "top_skips": skipped.groupby(by)["reason"].agg(top) if len(skipped) else pd.Series(dtype=str),
        }
    )
    table = table[table["syncs"].notna()]
    return table.fillna({"top_errors": "", "top_skips": ""}).sort_index()


def markdown(title: str, table: pd.DataFrame, label: str) -> str:
    def cell(text: object) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ") or "—"

    def seconds(value: float) -> str:
        return "—" if pd.isna(value) else f"{value:.1f} s"

    lines = [f"### {title}", "", f"| {label} | {' | '.join(COLUMNS)} |", "|" + "---|" * (len(COLUMNS) + 1)]
    for name, row in table.iterrows():
        values = [
            f"{int(row['syncs'])}",
            f"{row['failure_rate']:.0%}",
            seconds(row["p50_seconds"]),
            seconds(row["p95_seconds"]),
            f"{int(row['records_written']):,}",
            row["top_skips"],
            row["top_errors"],
        ]
        lines.append(f"| {cell(name)} | {' | '.join(cell(v) for v in values)} |")
    return "\n".join(lines)


def report(syncs: pd.DataFrame, skipped: pd.DataFrame, since: datetime) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    """The Markdown report, and its two tables (by CRM, by organisation)."""
    header = (
        f"## Sync health since {since:%Y-%m-%d %H:%M} UTC\n\n{len(syncs)} syncs, {int(syncs['failed'].sum())} failed."
    )
    if syncs.empty:
        return header + "\n\nNo sync finished in this window.", pd.DataFrame(), pd.DataFrame()
    by_crm = summarise(syncs, skipped, ["crm"]).rename(index=crm_name)
    by_org = summarise(syncs, skipped, ["org_id", "organisation"]).droplevel("org_id")
    body = [markdown("By CRM", by_crm, "CRM"), markdown("By organisation", by_org, "Organisation")]
    return "\n\n".join([header, *body]), by_crm, by_org
