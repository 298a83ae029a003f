"""One sync of one integration: the steps, each writing its `crm_sync_log` row.

Pages are streamed: mapped as they arrive, and committed in batches of pages (`BATCH_ROWS` records or
`BATCH_SECONDS`), written one batch behind while the next is mapped, so memory stays flat and a sync
killed mid-way loses nothing (the cursor moves only after every batch has committed). Every write is
idempotent and retried on a fresh connection while the database restarts (`db.RetryingConnection`); the
CRM read-ahead keeps its page meanwhile.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from crm_resources.core import CrmClient, CrmError, ErrorKind
from crm_resources.registry import crm_name
from nurturehub_pipelines.store.accounts import Integration
from nurturehub_pipelines.store.db import DatabaseUnavailable, RetryingConnection, retrying
from nurturehub_pipelines.store.integration_changes import lift_quarantine
from nurturehub_pipelines.store.sync_log import write_event
from nurturehub_pipelines.store.tables import contacts, crm_sync_log, integrations, leads, skipped_records
from nurturehub_pipelines.sync import cursors, sqlite_writer
from nurturehub_pipelines.sync.mapping import map_page
from nurturehub_pipelines.sync.sqlite_writer import SqliteWriter, sqlite_file
from nurturehub_pipelines.sync.upsert import RowBatch, RowBuilder, mark_missing_deleted
from nurturehub_pipelines.sync.write_behind import WriteBehind

log = logging.getLogger(__name__)

STREAMS = {"contacts": ("contact_import", contacts), "leads": ("lead_update", leads)}
SEVERITY = {"success": 0, "warning": 1, "error": 2}
# A batch of pages is committed together once it holds this many records, or is this old.
BATCH_ROWS = 5_000
BATCH_SECONDS = 1.0


@dataclass
class StepResult:
    event_type: str
    outcome: str
    message: str
    affected: int = 0
    skipped: int = 0
    read: int = 0
    requests: int = 0
    seconds: float = 0.0
    skip_reasons: Counter[str] = field(default_factory=Counter)

    def metadata(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "records_synced": self.affected,
            "records_skipped": self.skipped,
            "records_read": self.read,
            "requests_made": self.requests,
            "duration_seconds": round(self.seconds, 3),
        }


class StepFailed(Exception):
    """A step failed and its rows (the step's and `sync_finished`) are written."""

    def __init__(self, result: StepResult) -> None:
        super().__init__(result.message)
        self.result = result


def credentials_unreadable(crm: str) -> CrmError:
    """Stored credentials this deployment's key can't open (the secret key changed): a rejection of the
    credentials (`auth` kind, so the pause rule counts it), in words that say what fixes it."""
    name = crm_name(crm)
    return CrmError(ErrorKind.AUTH, f"NurtureHub can't read the stored {name} credentials — reconnect {name}")


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


class SyncSession:
    """One sync's steps. `client` is None when the stored credentials can't be read: every step then
    fails with `credentials_unreadable`, in the step handler, so the run still writes its rows."""

    def __init__(
        self,
        db: Engine,
        integration: Integration,
        client: CrmClient | None,
        *,
        run_id: str | None,
        trigger: str,
        full: bool,
    ) -> None:
        self.db = db
        self.integration = integration
        self.client = client
        self.run_id = run_id
        self.trigger = trigger
        self.full = full

    # -- steps --

    def auth_refresh(self) -> StepResult:
        return self._step("auth_refresh", self._auth)

    def import_stream(self, stream: str) -> StepResult:
        event_type, _ = STREAMS[stream]
        return self._step(event_type, lambda: self._import(stream, event_type))

    def finish(self, steps: list[StepResult]) -> StepResult:
        outcome = max((s.outcome for s in steps), key=SEVERITY.__getitem__)
        affected = sum(s.affected for s in steps)
        skipped = sum(s.skipped for s in steps)
        by_stream = {s.event_type: s for s in steps}
        written = ", ".join(
            plural(by_stream[event].affected, noun)
            for event, noun in (("contact_import", "contact"), ("lead_update", "lead"))
            if event in by_stream
        )
        message = f"Sync finished: {written} written"
        if skipped:
            reasons = Counter[str]()
            for s in steps:
                reasons.update(s.skip_reasons)
            message += f"; {skipped:,} skipped: {reasons.most_common(1)[0][0]}"
        result = StepResult("sync_finished", outcome, message, affected, skipped)
        self._write(result)
        self._record_failure_kind(None)
        return result

    # -- machinery --

    def _step(self, event_type: str, body: Any) -> StepResult:
        started = time.monotonic()
        requests_before = self._requests()
        try:
            result: StepResult = body()
        except Exception as exc:  # every failure ends as rows a person can read, never a lost run
            error = exc if isinstance(exc, CrmError) else None
            if error is None:
                log.exception("%s failed inside NurtureHub", event_type)
                message = (
                    f"NurtureHub failed while running {event_type} ({type(exc).__name__}) — "
                    "not a problem with your CRM; our engineers can see the details in the run log"
                )
            else:
                message = error.message
            self._record_failure_kind(error.kind.value if error is not None else ErrorKind.INTERNAL.value)
            result = StepResult(event_type, "error", message)
            result.requests = self._requests() - requests_before
            result.seconds = time.monotonic() - started
            self._write(result)
            self._write(StepResult("sync_finished", "error", message))
            if error is not None and error.kind is ErrorKind.RATE_LIMIT and error.retry_at:
                self._rate_limited_until(error.retry_at)
            raise StepFailed(result) from exc
        result.requests = self._requests() - requests_before
        result.seconds = time.monotonic() - started
        self._write(result)
        return result

    def _crm(self) -> CrmClient:
        if self.client is None:
            raise credentials_unreadable(self.integration.crm)
        return self.client

    def _requests(self) -> int:
        return self.client.requests_made if self.client is not None else 0

    def _write(self, result: StepResult) -> None:
        attempts = 0

        def write(conn: Connection) -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1 and self.run_id is not None and self._written(conn, result.event_type):
                return  # the failed attempt's commit did land: never a second row for the step
            write_event(
                conn,
                integration_id=self.integration.id,
                run_id=self.run_id,
                trigger=self.trigger,
                event_type=result.event_type,
                outcome=result.outcome,
                message=result.message,
                records_affected=result.affected,
                records_skipped=result.skipped,
            )

        retrying(self.db, write)

    def _written(self, conn: Connection, event_type: str) -> bool:
        query = select(crm_sync_log.c.id).where(
            crm_sync_log.c.run_id == self.run_id, crm_sync_log.c.event_type == event_type
        )
        return conn.execute(query.limit(1)).first() is not None

    def _record_failure_kind(self, kind: str | None) -> None:
        """The kind of the latest failure (None: a completed sync), which the alerts' quarantine rule reads.

        Written before the failure's rows, so an alert evaluation that sees them sees the kind too. A
        completed sync also lifts the rejected-credentials quarantine, whatever started it.
        """

        def record(conn: Connection) -> None:
            conn.execute(
                update(integrations).where(integrations.c.id == self.integration.id).values(last_failure_kind=kind)
            )
            if kind is None:
                lift_quarantine(conn, self.integration.id)

        retrying(self.db, record)

    def _rate_limited_until(self, moment: datetime) -> None:
        retrying(
            self.db,
            lambda conn: conn.execute(
                update(integrations).where(integrations.c.id == self.integration.id).values(rate_limited_until=moment)
            ),
        )

    def _auth(self) -> StepResult:
        return StepResult("auth_refresh", "success", self._crm().authenticate())

    def _import(self, stream: str, event_type: str) -> StepResult:
        # One connection for the stream and a transaction per batch on it: no pool checkout per batch.
        with _heap_frozen(), RetryingConnection(self.db) as conn:
            try:
                return self._import_on(conn, stream, event_type)
            except DatabaseUnavailable as down:
                raise CrmError(
                    ErrorKind.INTERNAL,
                    f"{down} while writing {stream} — not a problem with your CRM; what was written before "
                    "that is kept, and the next sync carries on from there",
                ) from down

    def _import_on(self, conn: RetryingConnection, stream: str, event_type: str) -> StepResult:
        client = self._crm()
        spec = client.spec
        table = STREAMS[stream][1]
        mapper = spec.map_contact if stream == "contacts" else spec.map_lead
        since = None
        if not self.full and spec.since_param:
            since = conn.run(lambda c: cursors.read_from(c, self.integration.id, stream))
        result = StepResult(event_type, "success", "")
        high_water: datetime | None = None
        seen: set[str] = set()
        builder = RowBuilder(table, self.integration.id, self.db.dialect)
        batch = PageBatch(RowBatch(builder))
        with self._writer(conn, stream) as writer:
            try:
                for page in client.pages(stream, since):
                    mapped = map_page(page, mapper, builder.build)
                    for index, reason, named in mapped.skips:
                        raw = page.records[index]
                        external_id = self._skipped(batch, stream, page.endpoint.prefix, raw, reason, named)
                        result.skip_reasons[reason] += 1
                        if external_id:  # still there at the CRM: never read as gone (deleted)
                            seen.add(external_id)
                    batch.rows.extend(mapped.rows)
                    seen.update(external_id for external_id, _ in mapped.rows)
                    if mapped.high_water is not None and (high_water is None or mapped.high_water > high_water):
                        high_water = mapped.high_water
                    if mapped.failure is not None:  # a mapper failed: the records before it are kept
                        raise mapped.failure
                    result.read += len(page.records)
                    if batch.full():
                        result.skipped += len(batch.skips)
                        writer.submit(batch)
                        batch = PageBatch(RowBatch(builder))
            except Exception:
                if not writer.failed:  # what was read before the CRM (or a mapper) failed is kept
                    writer.submit(batch)
                    writer.drain()
                raise
            result.skipped += len(batch.skips)
            writer.submit(batch)
            result.affected = writer.drain()
        if spec.missing_means_deleted and since is None:
            result.affected += conn.run(lambda c: mark_missing_deleted(c, table, self.integration.id, seen))
        if high_water is not None:
            mark = high_water
            conn.run(lambda c: cursors.advance(c, self.integration.id, stream, mark, full=since is None))
        noun = "contact" if stream == "contacts" else "lead"
        result.message = f"{plural(result.affected, noun)} written ({result.read:,} read)"
        if result.skipped:
            result.outcome = "warning"
            reason, _ = result.skip_reasons.most_common(1)[0]
            result.message += f"; {result.skipped:,} skipped: {reason}"
        return result

    @contextlib.contextmanager
    def _writer(self, conn: RetryingConnection, stream: str) -> Iterator[WriteBehind[PageBatch]]:
        """Batches written one behind the mapping by whatever runs the database's work on the other core:
        PostgreSQL's server, or for a SQLite file a writer process of the sync's own (`sqlite_writer`: its
        work in this process would hold the GIL the mapping needs). An in-memory SQLite writes inline."""
        database = sqlite_file(self.db)
        if database is None:
            behind = self.db.dialect.name == "postgresql"
            with WriteBehind[PageBatch](lambda b: conn.run(b.write), name=stream, behind=behind) as writer:
                yield writer
            return
        with SqliteWriter(database) as process:

            def write(batch: PageBatch) -> int:
                # Skipped records are kept in their batch's transaction, which our connection writes; so is a
                # batch too small to be worth a process (`sqlite_writer.MIN_ROWS`).
                if batch.skips or len(batch.rows) < sqlite_writer.MIN_ROWS:
                    return conn.run(batch.write)
                return process.write(batch.rows.sqlite_statement(), batch.rows.parameters())

            with WriteBehind[PageBatch](write, name=stream) as writer:
                yield writer

    def _skipped(
        self, batch: PageBatch, stream: str, prefix: str, raw: Any, reason: str, named: str | None
    ) -> str | None:
        """Keep a skipped record (with its reason) for the batch's transaction; returns its id if it has one."""
        raw_id = raw.get("id", raw.get("OID")) if isinstance(raw, Mapping) else None
        external_id = named or (f"{prefix}{raw_id}" if isinstance(raw_id, str | int) else None)
        batch.skips.append(
            {
                "integration_id": self.integration.id,
                "run_id": self.run_id,
                "stream": stream,
                "external_id": external_id,
                "reason": reason,
                "raw": raw if isinstance(raw, Mapping) else {"value": raw},
            }
        )
        return external_id


@contextlib.contextmanager
def _heap_frozen() -> Iterator[None]:
    """Keep the collector off what the process held before the stream (Dagster's ~1M objects) while it runs.

    A batch's records live long enough to reach the oldest generation, so a stream sets off full
    collections, and each one walked every object the imports made: ~1 s of a 150,000-record sync
    (bench/README.md). Frozen objects are skipped; unfreezing hands them back, so nothing leaks.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


class PageBatch:
    """Pages awaiting one transaction: bounded by rows and by age, so a commit covers thousands of records
    (not one page) and a slow CRM still commits at least every `BATCH_SECONDS`."""

    def __init__(self, rows: RowBatch) -> None:
        self.rows = rows
        self.skips: list[dict[str, Any]] = []
        self._started = time.monotonic()

    def full(self) -> bool:
        size = len(self.rows) + len(self.skips)
        return size >= BATCH_ROWS or (size > 0 and time.monotonic() - self._started >= BATCH_SECONDS)

    def write(self, conn: Connection) -> int:
        """One transaction: idempotent, so a retry after a lost connection writes nothing twice."""
        written = self.rows.write(conn)
        if self.skips:
            conn.execute(insert(skipped_records), self.skips)
        return written
