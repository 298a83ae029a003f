"""`crm_sync_summary`: what a card reads of `crm_sync_log`, kept by the database's own triggers (0007).

A card needs, per integration, the newest rows of a few kinds (`read_model.kinds.KIND_SEEKS`, and the newest
run row of `read_model.activity`) and the failure streak. Seeking them costs a handful of statements per
card; the triggers here keep them in two small tables instead, so an organisation's cards are one read
whatever its size or the log's. Triggers, not the writing code, because rows reach the log from outside a
run too (by hand, another service, `integration remove`, retention): whatever writes the log, the summary
follows in the same transaction.

- `crm_sync_summary_rows`: a copy of each row that is among the newest `limit` of its tag (`TAGS`);
- `crm_sync_summary (integration_id, consecutive_failures, card)`: the failed syncs after the newest completed
  one, and `card`, the kept rows a card shows as one JSON value (`derive_statement`), so that the page reads
  one narrow row per integration.

An INSERT is folded in incrementally (the new row joins its tags' newest if it is newer than their oldest;
a newer completed sync recounts the streak behind it, which for a row written in order is an empty range).
A DELETE that touches a kept row or the streak, and any UPDATE, recompute the integration from the log with
the same index seeks the card used to send (`refresh`); a delete of anything else (retention's old rows)
costs one lookup of the summary. SQLite runs its triggers a row at a time. PostgreSQL runs them once per
statement (transition tables): an INSERT statement folds in an integration's row when it brings one, and
recomputes the integration once when it brings several (a bulk load of one integration would otherwise
rewrite its summary row once per row, inside one transaction). On PostgreSQL each integration's summary
row is locked (`FOR UPDATE`, in integration order) before it is read, so concurrent writers of one
integration take turns: at READ COMMITTED (the default) each sees the other's committed rows; at
REPEATABLE READ or SERIALIZABLE a writer that raced gets a serialization error, never a wrong summary.
Writers of different integrations never share a summary row. SQLite has one writer at a time. TRUNCATE
(PostgreSQL) empties the summary.

What is never stored: the staleness rule and the run activity window depend on the time of the read; the
kept run row is judged against them by the reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text


@dataclass(frozen=True)
class Tag:
    """A kind of log row the card reads: `where` on a row's columns (prefixed), the newest `limit` kept."""

    name: str
    limit: int
    where: str

    def matches(self, row: str) -> str:
        return self.where.format(r=row)


TAGS = (
    Tag("success", 1, "{r}.event_type = 'sync_finished' AND {r}.outcome = 'success'"),
    Tag("warning", 1, "{r}.event_type = 'sync_finished' AND {r}.outcome = 'warning'"),
    Tag("failed", 5, "{r}.event_type = 'sync_finished' AND {r}.outcome = 'error'"),
    Tag("refused", 5, "{r}.event_type = 'sync_requested' AND {r}.outcome = 'error'"),
    Tag("writing", 1, "{r}.run_id IS NOT NULL AND {r}.event_type <> 'sync_requested'"),
)
COMPLETED_TAGS = "('success', 'warning')"
ROW_COLUMNS = "occurred_at, event_type, records_affected, records_skipped, outcome, message, run_id, trigger"
RECENT_ERRORS = 5  # `read_model.RECENT_ERRORS`: the card's errors, newest first
FUNCTIONS = (
    "crm_sync_summary_refresh(integer)",
    "crm_sync_summary_insert()",
    "crm_sync_summary_changed()",
    "crm_sync_summary_truncated()",
)
TRIGGERS_PG = (
    "crm_sync_summary_insert",
    "crm_sync_summary_delete",
    "crm_sync_summary_update",
    "crm_sync_summary_truncate",
)
TRIGGERS_SQLITE = (
    "crm_sync_summary_insert",
    "crm_sync_summary_delete",
    "crm_sync_summary_update_old",
    "crm_sync_summary_update_new",
)


def _q(name: str, sqlite: bool) -> str:
    """`trigger` is a keyword on SQLite, a plain name on PostgreSQL."""
    return '"trigger"' if sqlite and name == "trigger" else name


def _cols(prefix: str, sqlite: bool) -> str:
    return ", ".join(f"{prefix}{_q(c.strip(), sqlite)}" for c in ROW_COLUMNS.split(","))


def _target(sqlite: bool) -> str:
    return f"crm_sync_summary_rows (integration_id, tag, log_id, {_cols('', sqlite)})"


def _newer_completed(i: str, row: str) -> str:
    """A kept completed sync after `row` in log order (so `row` is not after the newest completed one)."""
    return (
        f"EXISTS (SELECT 1 FROM crm_sync_summary_rows k WHERE k.integration_id = {i} "
        f"AND k.tag IN {COMPLETED_TAGS} AND (k.occurred_at, k.log_id) > ({row}.occurred_at, {row}.id))"
    )


def _refresh_rows(i: str, sqlite: bool) -> list[str]:
    """Recompute one integration's kept rows from the log: one index seek a tag (the card's own seeks)."""
    seeks = " UNION ALL ".join(
        f"SELECT * FROM (SELECT {i}, '{tag.name}', l.id, {_cols('l.', sqlite)} FROM crm_sync_log l "
        f"WHERE l.integration_id = {i} AND {tag.matches('l')} "
        f"ORDER BY l.occurred_at DESC, l.id DESC LIMIT {tag.limit}) AS {tag.name}_rows"
        for tag in TAGS
    )
    return [
        f"DELETE FROM crm_sync_summary_rows WHERE integration_id = {i}",
        f"INSERT INTO {_target(sqlite)} {seeks}",
    ]


def _streak_counts(i: str) -> list[str]:
    """The streak behind the newest kept completed sync (all failed syncs when none has completed)."""
    newest = (
        f"(SELECT k.occurred_at, k.log_id FROM crm_sync_summary_rows k WHERE k.integration_id = {i} "
        f"AND k.tag IN {COMPLETED_TAGS} ORDER BY k.occurred_at DESC, k.log_id DESC LIMIT 1)"
    )
    failed = f"l.integration_id = {i} AND l.event_type = 'sync_finished' AND l.outcome = 'error'"
    any_completed = (
        f"EXISTS (SELECT 1 FROM crm_sync_summary_rows k WHERE k.integration_id = {i} AND k.tag IN {COMPLETED_TAGS})"
    )
    return [
        f"UPDATE crm_sync_summary SET consecutive_failures = (SELECT count(*) FROM crm_sync_log l "
        f"WHERE {failed} AND (l.occurred_at, l.id) > {newest}) WHERE integration_id = {i} AND {any_completed}",
        f"UPDATE crm_sync_summary SET consecutive_failures = (SELECT count(*) FROM crm_sync_log l WHERE {failed}) "
        f"WHERE integration_id = {i} AND NOT {any_completed}",
    ]


def _ensure(i: str, sqlite: bool, where: str = "") -> str:
    verb = "INSERT OR IGNORE INTO" if sqlite else "INSERT INTO"
    tail = "" if sqlite else " ON CONFLICT (integration_id) DO NOTHING"
    condition = f" WHERE {where}" if where else ""
    return f"{verb} crm_sync_summary (integration_id, consecutive_failures) SELECT {i}, 0{condition}{tail}"


def _gone(i: str) -> str:
    """An integration with no row of any tag (removed, or never synced) has no summary row: so the
    triggers and `rebuild` agree row for row."""
    return (
        f"DELETE FROM crm_sync_summary WHERE integration_id = {i} "
        f"AND NOT EXISTS (SELECT 1 FROM crm_sync_summary_rows k WHERE k.integration_id = {i})"
    )


def _event_json(sqlite: bool) -> str:
    """A kept row as a JSON array in `LogEvent`'s field order; its time as UTC text on both engines."""
    at = "k.occurred_at" if sqlite else "to_char(k.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    build = "json_array" if sqlite else "json_build_array"
    return f"{build}(k.log_id, {at}, {_cols('k.', sqlite).replace('k.occurred_at, ', '')})"


def _newest_kept(i: str, tags: str, sqlite: bool, limit: int = 1) -> str:
    return (
        f"SELECT {_event_json(sqlite)} AS e, k.occurred_at AS at, k.log_id AS id FROM crm_sync_summary_rows k "
        f"WHERE k.integration_id = {i} AND k.tag IN {tags} ORDER BY k.occurred_at DESC, k.log_id DESC LIMIT {limit}"
    )


def derive_statement(i: str, sqlite: bool) -> str:
    """`card`: what the card reads of the kept rows, as one JSON array, recomputed after every change of them:
    [newest completed sync, newest finished sync, the RECENT_ERRORS newest errors, newest run row]."""
    completed, finished = "('success', 'warning')", "('success', 'warning', 'failed')"
    errors = "('failed', 'refused')"
    if sqlite:
        one = "json((SELECT e FROM ({q})))"
        many = "(SELECT json_group_array(json(e)) FROM ({q}))"
        card = "json_array({0}, {1}, json({2}), {3})"
    else:
        one = "(SELECT e FROM ({q}) AS one)"
        many = "(SELECT coalesce(json_agg(e ORDER BY at DESC, id DESC), '[]') FROM ({q}) AS many)"
        card = "json_build_array({0}, {1}, {2}, {3})::text"
    parts = (
        one.format(q=_newest_kept(i, completed, sqlite)),
        one.format(q=_newest_kept(i, finished, sqlite)),
        many.format(q=_newest_kept(i, errors, sqlite, RECENT_ERRORS)),
        one.format(q=_newest_kept(i, "('writing')", sqlite)),
    )
    return f"UPDATE crm_sync_summary SET card = {card.format(*parts)} WHERE integration_id = {i}"


def refresh_statements(i: str, sqlite: bool) -> list[str]:
    """The whole recompute of integration `i` (an SQL expression), in order."""
    return [_ensure(i, sqlite), *_refresh_rows(i, sqlite), *_streak_counts(i), derive_statement(i, sqlite), _gone(i)]


def insert_statements(sqlite: bool) -> list[str]:
    """Fold the row `NEW` into its integration's summary (the order matters: the streak first)."""
    i = "NEW.integration_id"
    failed, completed = TAGS[2], (TAGS[0], TAGS[1])
    is_completed = " OR ".join(f"({tag.matches('NEW')})" for tag in completed)
    tagged = " OR ".join(f"({tag.matches('NEW')})" for tag in TAGS)
    statements = [
        _ensure(i, sqlite, tagged),
        # A failed sync after the newest completed one lengthens the streak.
        f"UPDATE crm_sync_summary SET consecutive_failures = consecutive_failures + 1 WHERE integration_id = {i} "
        f"AND {failed.matches('NEW')} AND NOT {_newer_completed(i, 'NEW')}",
        # A completed sync that is now the newest: the streak is the failed syncs after it (written out of
        # order, some may be).
        f"UPDATE crm_sync_summary SET consecutive_failures = (SELECT count(*) FROM crm_sync_log l "
        f"WHERE l.integration_id = {i} AND l.event_type = 'sync_finished' AND l.outcome = 'error' "
        f"AND (l.occurred_at, l.id) > (NEW.occurred_at, NEW.id)) "
        f"WHERE integration_id = {i} AND ({is_completed}) AND NOT {_newer_completed(i, 'NEW')}",
    ]
    for tag in TAGS:
        statements.append(
            f"INSERT INTO {_target(sqlite)} SELECT {i}, '{tag.name}', NEW.id, {_cols('NEW.', sqlite)} "
            f"WHERE {tag.matches('NEW')}"
        )
        statements.append(
            f"DELETE FROM crm_sync_summary_rows WHERE integration_id = {i} AND tag = '{tag.name}' "
            f"AND {tag.matches('NEW')} AND log_id NOT IN (SELECT k.log_id FROM crm_sync_summary_rows k "
            f"WHERE k.integration_id = {i} AND k.tag = '{tag.name}' "
            f"ORDER BY k.occurred_at DESC, k.log_id DESC LIMIT {tag.limit})"
        )
    statements.append(derive_statement(i, sqlite) + f" AND ({tagged})")
    return statements


def _delete_matters(row: str) -> str:
    """Deleting `row` changes the summary: it is kept, or a failed sync of the current streak."""
    i = f"{row}.integration_id"
    kept = f"EXISTS (SELECT 1 FROM crm_sync_summary_rows k WHERE k.integration_id = {i} AND k.log_id = {row}.id)"
    return f"({kept} OR ({TAGS[2].matches(row)} AND NOT {_newer_completed(i, row)}))"


def _body(statements: list[str]) -> str:
    return "".join(f"    {statement};\n" for statement in statements)


def sqlite_ddl() -> list[str]:
    refresh_old, refresh_new = (
        refresh_statements("OLD.integration_id", True),
        refresh_statements("NEW.integration_id", True),
    )
    return [
        f"CREATE TRIGGER crm_sync_summary_insert AFTER INSERT ON crm_sync_log FOR EACH ROW BEGIN\n"
        f"{_body(insert_statements(True))}END",
        f"CREATE TRIGGER crm_sync_summary_delete AFTER DELETE ON crm_sync_log FOR EACH ROW "
        f"WHEN {_delete_matters('OLD')} BEGIN\n{_body(refresh_old)}END",
        f"CREATE TRIGGER crm_sync_summary_update_old AFTER UPDATE ON crm_sync_log FOR EACH ROW BEGIN\n"
        f"{_body(refresh_old)}END",
        f"CREATE TRIGGER crm_sync_summary_update_new AFTER UPDATE ON crm_sync_log FOR EACH ROW "
        f"WHEN NEW.integration_id <> OLD.integration_id BEGIN\n{_body(refresh_new)}END",
    ]


_LOCK = "PERFORM 1 FROM crm_sync_summary WHERE integration_id = {i} FOR UPDATE"


def _postgres_insert_block() -> str:
    """`insert_statements` for the record `r`, each run only when its condition holds (a plpgsql statement
    costs even when its WHERE is false): a run's step row runs 5 of them, its `sync_finished` 7, a row of no
    tag none."""
    ensure, lengthen, recount, *per_tag, derive = insert_statements(False)
    failed, completed = TAGS[2].matches("NEW"), f"({TAGS[0].matches('NEW')}) OR ({TAGS[1].matches('NEW')})"
    lines = [
        f"{ensure};",
        f"{_LOCK.format(i='NEW.integration_id')};",
        f"IF {failed} THEN\n    {lengthen};\nEND IF;",
        f"IF {completed} THEN\n    {recount};\nEND IF;",
    ]
    for tag, (add, trim) in zip(TAGS, zip(per_tag[::2], per_tag[1::2], strict=True), strict=True):
        lines.append(f"IF {tag.matches('NEW')} THEN\n    {add};\n    {trim};\nEND IF;")
    lines.append(f"{derive};")
    tagged = " OR ".join(f"({tag.matches('NEW')})" for tag in TAGS)
    block = f"IF {tagged} THEN\n" + "".join(f"    {line}\n" for line in "\n".join(lines).split("\n")) + "END IF;"
    return block.replace("NEW.", "r.")


def postgres_ddl() -> list[str]:
    lock = _LOCK.format(i="i")
    refresh = _body([_ensure("i", False), lock, *refresh_statements("i", False)[1:]])
    block = "".join(f"            {line}\n" for line in _postgres_insert_block().split("\n"))
    return [
        "CREATE FUNCTION crm_sync_summary_refresh(i integer) RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n"
        f"{refresh}END\n$$",
        # An INSERT statement's rows, integration by integration (in id order, so two statements never
        # deadlock on each other's summaries): one new row is folded in, several recompute the integration
        # once (a row at a time would rewrite its summary row as often, within one transaction).
        "CREATE FUNCTION crm_sync_summary_insert() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "DECLARE r record; done integer;\nBEGIN\n"
        "    FOR r IN SELECT n.*, count(*) OVER (PARTITION BY n.integration_id) AS rows_of_integration "
        "FROM new_rows n ORDER BY n.integration_id, n.occurred_at, n.id LOOP\n"
        "        IF r.rows_of_integration = 1 THEN\n"
        f"{block}"
        "        ELSIF done IS DISTINCT FROM r.integration_id THEN\n"
        "            PERFORM crm_sync_summary_refresh(r.integration_id);\n"
        "            done := r.integration_id;\n"
        "        END IF;\n"
        "    END LOOP;\n"
        "    RETURN NULL;\nEND\n$$",
        # One function for DELETE and UPDATE statements: lock every integration they touch (in id order, so
        # two statements never deadlock on each other's summaries), then recompute those that need it.
        "CREATE FUNCTION crm_sync_summary_changed() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "DECLARE i integer;\nBEGIN\n"
        "    IF TG_OP = 'DELETE' THEN\n"
        "        FOR i IN SELECT DISTINCT o.integration_id FROM old_rows o ORDER BY 1 LOOP\n"
        f"            {lock};\n"
        "        END LOOP;\n"
        "        FOR i IN SELECT DISTINCT o.integration_id FROM old_rows o "
        f"WHERE {_delete_matters('o')} ORDER BY 1 LOOP\n"
        "            PERFORM crm_sync_summary_refresh(i);\n"
        "        END LOOP;\n"
        "    ELSE\n"
        "        FOR i IN SELECT integration_id FROM old_rows UNION SELECT integration_id FROM new_rows "
        "ORDER BY 1 LOOP\n"
        "            PERFORM crm_sync_summary_refresh(i);\n"
        "        END LOOP;\n"
        "    END IF;\n"
        "    RETURN NULL;\nEND\n$$",
        # TRUNCATE fires no DELETE trigger (SQLite has none: its DELETE without WHERE still fires them).
        "CREATE FUNCTION crm_sync_summary_truncated() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n"
        "    DELETE FROM crm_sync_summary_rows;\n    DELETE FROM crm_sync_summary;\n    RETURN NULL;\nEND\n$$",
        "CREATE TRIGGER crm_sync_summary_truncate AFTER TRUNCATE ON crm_sync_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION crm_sync_summary_truncated()",
        "CREATE TRIGGER crm_sync_summary_insert AFTER INSERT ON crm_sync_log REFERENCING NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION crm_sync_summary_insert()",
        "CREATE TRIGGER crm_sync_summary_delete AFTER DELETE ON crm_sync_log REFERENCING OLD TABLE AS old_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION crm_sync_summary_changed()",
        "CREATE TRIGGER crm_sync_summary_update AFTER UPDATE ON crm_sync_log "
        "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        "FOR EACH STATEMENT EXECUTE FUNCTION crm_sync_summary_changed()",
    ]


def create_triggers(conn: Connection) -> None:
    for statement in sqlite_ddl() if conn.dialect.name == "sqlite" else postgres_ddl():
        conn.exec_driver_sql(statement)


def drop_triggers(conn: Connection) -> None:
    """The triggers (and on PostgreSQL their functions); the tables stay."""
    if conn.dialect.name == "sqlite":
        for name in TRIGGERS_SQLITE:
            conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name}")
        return
    for name in TRIGGERS_PG:
        conn.exec_driver_sql(f"DROP TRIGGER IF EXISTS {name} ON crm_sync_log")
    for function in FUNCTIONS:
        conn.exec_driver_sql(f"DROP FUNCTION IF EXISTS {function}")


def rebuild(conn: Connection) -> int:
    """Recompute every integration's summary from the log (the backfill, and after a bulk load that went
    around the triggers); returns the integrations summarised. A few index seeks per integration."""
    conn.exec_driver_sql("DELETE FROM crm_sync_summary_rows")
    conn.exec_driver_sql("DELETE FROM crm_sync_summary")
    ids = [row[0] for row in conn.execute(text("SELECT DISTINCT integration_id FROM crm_sync_log ORDER BY 1"))]
    sqlite = conn.dialect.name == "sqlite"
    for integration_id in ids:
        if sqlite:
            for statement in refresh_statements(":i", True):
                conn.execute(text(statement), {"i": integration_id})
        else:
            conn.execute(text("SELECT crm_sync_summary_refresh(:i)"), {"i": integration_id})
    return len(ids)
