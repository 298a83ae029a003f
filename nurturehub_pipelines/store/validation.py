"""The input rules (DESIGN.md, "Input rules"): one home, applied at every entry point.

The CLI, the JSON API and the page check names and emails before they write anything; the alert
builder checks them again when it reads them back, because other writers of the database exist.
"""

from __future__ import annotations

import re

from nurturehub_pipelines.store.accounts import AccountError

NAME_MAX = 100
EMAIL_MAX = 254
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")
# One address: local@domain, no spaces or control characters, a dot-free or dotted domain.
_EMAIL = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[^\s@<>,;:\"()\[\]\\]+")


def check_name(value: str, what: str = "name") -> str:
    """1-100 characters, no control characters (no CR, LF or tab): names go into email subjects and cookies."""
    if not isinstance(value, str) or not value.strip():
        raise AccountError(f"the {what} must not be empty")
    if len(value) > NAME_MAX:
        raise AccountError(f"the {what} is {len(value)} characters long; at most {NAME_MAX} are allowed")
    if _CONTROL.search(value):
        raise AccountError(f"the {what} must not contain control characters (line breaks, tabs)")
    return value


def check_email(value: str) -> str:
    """One address, normalised to lower case; refused with the reason, never half-accepted."""
    if not isinstance(value, str):
        raise AccountError("the email address must be text")
    email = value.strip().lower()
    if _CONTROL.search(value) or len(email) > EMAIL_MAX or not _EMAIL.fullmatch(email):
        shown = repr(email) if len(email) <= 80 and not _CONTROL.search(value) else "that value"
        raise AccountError(f"{shown} is not one email address (local@domain, at most {EMAIL_MAX} characters)")
    return email


def is_valid_name(value: str) -> bool:
    """For readers of the database: whether a stored name may go into a header as it is."""
    try:
        check_name(value)
    except AccountError:
        return False
    return True
