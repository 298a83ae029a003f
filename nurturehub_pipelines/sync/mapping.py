"""A page's records mapped into the rows its batch writes, its skips and its newest time, in one loop.

The per-record work of a sync (bench/README.md, "Where a full sync's CPU went") is here and in
`upsert.RowBuilder`; the engine handles what comes back a page at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from crm_resources.core import Endpoint, Page
from crm_resources.records import Contact, Lead, SkipRecord, is_object

Mapper = Callable[[Any, Endpoint], Contact | Lead]
Build = Callable[[Contact | Lead], Any]


@dataclass
class MappedPage:
    rows: list[tuple[str, Any]] = field(default_factory=list)  # (external_id, row as the batch writes it)
    skips: list[tuple[int, str, str | None]] = field(default_factory=list)  # (index, reason, id it names)
    high_water: datetime | None = None  # the newest `source_updated_at` of the page's rows
    failure: Exception | None = None  # a mapper's own failure: the rows before it are kept


def map_page(page: Page, mapper: Mapper, build: Build) -> MappedPage:
    """A failure other than a skip ends the page there, so the caller can keep the rows before it."""
    mapped = MappedPage()
    rows, high_water = mapped.rows, None
    endpoint = page.endpoint
    for index, raw in enumerate(page.records):
        try:
            if not is_object(raw):
                raise SkipRecord("record is not an object")
            record = mapper(raw, endpoint)
        except SkipRecord as skip:
            mapped.skips.append((index, skip.reason, skip.external_id))
            continue
        except Exception as failure:  # noqa: BLE001 - raised by the engine once the rows before it are kept
            mapped.failure = failure
            break
        rows.append((record.external_id, build(record)))
        if (updated := record.source_updated_at) and (high_water is None or updated > high_water):
            high_water = updated
    mapped.high_water = high_water
    return mapped
