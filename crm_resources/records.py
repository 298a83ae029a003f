"""Normalised records (what we store) and the small parsers every CRM mapper shares."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import phonenumbers

CONSENTS = ("granted", "denied", "unknown")
LEAD_KINDS = ("sales", "lettings", "valuation", "enquiry", "unknown")


class SkipRecord(Exception):
    """A record we cannot use: skipped and counted with its reason, never a failed sync."""

    def __init__(self, reason: str, external_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.external_id = external_id


@dataclass(slots=True)
class Contact:
    external_id: str
    first_name: str | None
    last_name: str | None
    email: str | None
    phone: str | None
    marketing_consent: str
    source_updated_at: datetime | None
    deleted: bool
    raw: Mapping[str, Any]


@dataclass(slots=True)
class Lead:
    external_id: str
    contact_external_id: str | None
    kind: str
    status: str | None
    source_updated_at: datetime | None
    deleted: bool
    raw: Mapping[str, Any]


def is_object(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """A JSON object: parsed pages hold dicts, so the exact-type test answers first (the ABC check is slow)."""
    return type(value) is dict or isinstance(value, Mapping)


def record_id(raw: Mapping[str, Any], key: str, prefix: str = "") -> str:
    """The record's id as a string, or a skip: ids must be non-empty strings or integers."""
    value = raw.get(key)
    if value is None or value == "":
        raise SkipRecord("missing id")
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise SkipRecord("id is not a string or number")
    return f"{prefix}{value}"


def timestamp(raw: Mapping[str, Any], key: str, external_id: str, required: bool = True) -> datetime | None:
    value = raw.get(key)
    if value is None or value == "":
        if required:
            raise SkipRecord(f"missing {key}", external_id)
        return None
    if not isinstance(value, str):
        raise SkipRecord(f"malformed timestamp in {key}", external_id)
    try:
        parsed = datetime.fromisoformat(value)  # Python 3.11 reads a trailing "Z" as UTC
    except ValueError:
        raise SkipRecord(f"malformed timestamp in {key}", external_id) from None
    if parsed.tzinfo is UTC:  # the common case ("Z", "+00:00"): already what we store
        return parsed
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def text(raw: Mapping[str, Any], key: str, external_id: str) -> str | None:
    """An optional text field; a number where text belongs is a wrong type, so the record is skipped."""
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise SkipRecord(f"{key} is not text", external_id)
    return value.strip() or None


def email(value: Any, external_id: str) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise SkipRecord("email is not text", external_id)
    return value.strip().lower() or None


_LAYOUT = str.maketrans("", "", " ()-.")
# GB numbers of 10 national digits: geographic (01, 02), non-geographic (03) and mobile (07).
_GB_TEN_DIGITS = re.compile(r"(?:\+44|0044|0)([1237]\d{9})")


def phone(value: Any, external_id: str) -> str | None:
    """E.164 with GB as the default region; a number that does not parse is kept as given."""
    if value is None or value == "":
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise SkipRecord("phone is not text", external_id)
    given = str(value).strip()
    # The commonest shapes, GB mobiles and landlines, without phonenumbers' ~20-90 us parse: the same
    # answer (every 10-digit 01/02/03/07 number is possible, and E.164 is +44 and its digits), checked in tests.
    if number := _GB_TEN_DIGITS.fullmatch(given.translate(_LAYOUT)):
        return "+44" + number.group(1)
    return _parsed_phone(given)


@functools.lru_cache(maxsize=4096)
def _parsed_phone(given: str) -> str:
    """The other shapes, through phonenumbers; remembered, since a CRM's placeholders ("n/a", "TBC", a
    branch's switchboard) repeat across thousands of records and each costs a full parse."""
    try:
        parsed = phonenumbers.parse(given, "GB")
    except phonenumbers.NumberParseException:
        return given
    if not phonenumbers.is_possible_number(parsed):
        return given
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def first_present(raw: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if raw.get(key) not in (None, ""):
            return raw[key]
    return None


def primary_value(entries: Any, external_id: str, value_key: str = "value") -> Any:
    """The entry marked primary, else the first (Street, Open API)."""
    if entries is None:
        return None
    if type(entries) is not list:
        raise SkipRecord("contact details are not a list", external_id)
    chosen = None
    for entry in entries:
        if not is_object(entry):
            raise SkipRecord("contact details are not a list", external_id)
        if chosen is None and entry.get("primary") is True:
            chosen = entry
    if not entries:
        return None
    return (chosen or entries[0]).get(value_key)


def consent(value: Any, mapping: Mapping[Any, str]) -> str:
    """A CRM value that does not map becomes unknown, never an error."""
    try:
        return mapping.get(value, "unknown")
    except TypeError:  # unhashable (a list or dict where a word belongs)
        return "unknown"


def lead_kind(value: Any, mapping: Mapping[str, str]) -> str:
    if not isinstance(value, str):
        return "unknown"
    if value in mapping:
        return mapping[value]
    return next(
        (kind for prefix, kind in mapping.items() if prefix.endswith("…") and value.startswith(prefix[:-1])),
        "unknown",
    )
