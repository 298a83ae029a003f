"""The connector core: one httpx engine that every CRM declares itself on.

A CRM module states *what* its API is (auth, paging, envelope, rate, error words) as a `CrmSpec` and a
`CrmResource`; the core does *how*. One job a module: `errors` (kinds, words, `Retry-After`), `ratelimit`,
`auth`, `paging`, `spec` (the declaration), `client` (the engine), `readahead`, `resource` (Dagster) and
`london` (UK time). The names are re-exported here so a CRM module imports them from one place.
"""

from crm_resources.core.auth import HeaderAuth, OAuth2ClientCredentials, TokenRefused
from crm_resources.core.client import CrmClient
from crm_resources.core.errors import CrmError, ErrorKind, error_detail, parse_retry_after
from crm_resources.core.paging import (
    CursorPaginator,
    OffsetPathPaginator,
    PageNumberPaginator,
    PageRequest,
    Paginator,
    dig,
    with_page_size,
)
from crm_resources.core.ratelimit import Rate, RateLimiter
from crm_resources.core.readahead import read_ahead
from crm_resources.core.resource import Connection, CrmResource
from crm_resources.core.spec import CrmSpec, Endpoint, Page, Tuning, default_auth_message, iso_z

__all__ = [
    "Connection",
    "CrmClient",
    "CrmError",
    "CrmResource",
    "CrmSpec",
    "CursorPaginator",
    "Endpoint",
    "ErrorKind",
    "HeaderAuth",
    "OAuth2ClientCredentials",
    "OffsetPathPaginator",
    "Page",
    "PageNumberPaginator",
    "PageRequest",
    "Paginator",
    "Rate",
    "RateLimiter",
    "TokenRefused",
    "Tuning",
    "default_auth_message",
    "dig",
    "error_detail",
    "iso_z",
    "parse_retry_after",
    "read_ahead",
    "with_page_size",
]
