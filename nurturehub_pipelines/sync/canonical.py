"""A record's canonical JSON (sorted keys, compact, ASCII): what `content_hash` hashes and `raw` stores.

orjson writes it ~10× faster than `json.dumps(sort_keys=True)`; the bytes must stay exactly the standard
library's, or every stored hash would differ once and an upgrade would rewrite (and count) every record.
orjson's output is byte-identical for ASCII text without DEL and for floats outside (0, 1e-4); anything
else (accented names, `1e-05`, big integers, odd types) takes the standard library's path.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import orjson

# Where orjson and `json.dumps` may differ: non-ASCII and DEL (json escapes both), and small floats
# (orjson `1e-5`/`0.00001`, json `1e-05`). A false alarm (an "e-1" in a string) only costs speed.
# Types orjson would write its own way (datetimes, subclasses) are refused, so `default=str` decides them.
_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)
_MAY_DIFFER = re.compile(rb"[^\x00-\x7e]|e-\d|0\.0000")


def canonical_json(raw: Any) -> bytes:
    try:
        fast = orjson.dumps(raw, option=_OPTIONS)
    except TypeError:  # an integer beyond 64 bits, a non-string key, a datetime or other non-JSON type
        fast = None
    if fast is not None and _MAY_DIFFER.search(fast) is None:
        return fast
    return json.dumps(raw, sort_keys=True, default=str, separators=(",", ":")).encode()


def content_hash(raw: Any) -> str:
    return hashlib.sha256(canonical_json(raw)).hexdigest()


def digest(canonical: bytes) -> str:
    """The content hash of JSON already made canonical (serialised once, hashed and stored)."""
    return hashlib.sha256(canonical).hexdigest()
