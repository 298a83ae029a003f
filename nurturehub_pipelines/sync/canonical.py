"""A record's canonical JSON (sorted keys, compact, ASCII): what `content_hash` hashes and `raw` stores.

orjson writes it ~10× faster than `json.dumps(sort_keys=True)`; the bytes must stay exactly the standard
library's, or every stored hash would differ once and an upgrade would rewrite (and count) every record.
orjson's output is byte-identical for ASCII text without DEL and for floats outside (0, 1e-4); anything
else (accented names, `1e-05`, big integers, odd types) takes the standard library's path. Records are
parsed JSON, so never NaN or Infinity (the client refuses them; orjson would write null).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson

# Types orjson would write its own way (datetimes, subclasses) are refused, so `default=str` decides them.
_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
# A float exponent orjson writes differently (`1e-5`, json `1e-05`); looked for only after a cheap `in`.
_SHORT_EXPONENT = re.compile(rb"\de-\d")


def _same_as_json(fast: bytes) -> bool:
    """False where orjson and `json.dumps` may differ: non-ASCII and DEL (json escapes both), and small
    floats (`0.00001`, `1e-5`). A false alarm (an "e-1" or "0.0000" in a string) only costs speed."""
    return (
        fast.isascii()
        and b"\x7f" not in fast
        and b"0.0000" not in fast
        and (b"e-" not in fast or _SHORT_EXPONENT.search(fast) is None)
    )


def canonical_json(raw: Any) -> bytes:
    try:
        fast = orjson.dumps(raw, option=_OPTIONS)
    except TypeError:  # an integer beyond 64 bits, a non-string key, a datetime or other non-JSON type
        fast = None
    if fast is not None and _same_as_json(fast):
        return fast
    return json.dumps(raw, sort_keys=True, default=str, separators=(",", ":")).encode()


def content_hash(raw: Any) -> str:
    return hashlib.sha256(canonical_json(raw)).hexdigest()


def digest(canonical: bytes) -> str:
    """The content hash of JSON already made canonical (serialised once, hashed and stored)."""
    return hashlib.sha256(canonical).hexdigest()
