"""The paging styles of the six CRMs, each a small frozen dataclass: where a page ends and the next begins."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import httpx

from crm_resources.core.errors import CrmError, ErrorKind


def dig(body: Any, path: str | None) -> Any:
    """`a.b.c` into nested dicts; None where any step is missing."""
    if path is None:
        return None
    for part in path.split("."):
        if not isinstance(body, Mapping):
            return None
        body = body.get(part)
    return body


@dataclass(frozen=True)
class PageRequest:
    url: str
    params: Mapping[str, str]
    page: int = 1  # page number, or offset for path paging
    read: int = 0  # records read from this endpoint before this page

    def key(self) -> str:
        return self.url + "?" + "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))


class Paginator(Protocol):
    @property
    def page_size(self) -> int:  # every paginator is a frozen dataclass with one: `with_page_size` replaces it
        ...

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest: ...

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None: ...


def with_page_size(paginator: Paginator, page_size: int) -> Paginator:
    """The same paging with another page size: the key check asks for 1, tests for small pages."""
    return replace(paginator, page_size=page_size)  # type: ignore[type-var]


def _more_claimed_but_empty(crm: str, request: PageRequest) -> CrmError:
    return CrmError(
        ErrorKind.BAD_RESPONSE,
        f"{crm} said more records follow {request.url} but sent an empty page — stopped rather than loop",
    )


@dataclass(frozen=True)
class PageNumberPaginator:
    """Page numbers (Reapit, Street, Loop). A declared total stops paging even if a next link says more;
    without a total, a next link (Reapit `_links.next`, JSON:API `links.next`) is followed as given."""

    page_param: str
    size_param: str
    page_size: int
    total_pages: str | None = None
    total_count: str | None = None
    next_link: str | None = None

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest:
        return PageRequest(url, {**params, self.page_param: "1", self.size_param: str(self.page_size)})

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None:
        read = request.read + count
        total_pages = dig(body, self.total_pages)
        total_count = dig(body, self.total_count)
        link = dig(body, self.next_link)
        if isinstance(total_pages, int):
            more = request.page < total_pages
        elif isinstance(total_count, int):
            more = read < total_count
        else:
            more = bool(link)
        if not more:
            return None
        if count == 0:
            raise _more_claimed_but_empty(crm, request)
        if isinstance(link, str) and link:
            url = httpx.URL(link)
            params = dict(url.params)
            page = (
                int(params.get(self.page_param, request.page + 1))
                if params.get(self.page_param, "").isdigit()
                else request.page + 1
            )
            return PageRequest(str(url.copy_with(query=None)), params, page, read)
        page = request.page + 1
        return PageRequest(request.url, {**request.params, self.page_param: str(page)}, page, read)


@dataclass(frozen=True)
class OffsetPathPaginator:
    """`/{offset}/{count}` in the path (agentOS); the envelope's total says where it ends."""

    page_size: int
    total_count: str

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest:
        return PageRequest(url.format(offset=0, count=self.page_size), dict(params), page=0)

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None:
        total = dig(body, self.total_count)
        offset = request.page + count
        if not isinstance(total, int) or offset >= total:
            return None
        if count == 0:
            raise _more_claimed_but_empty(crm, request)
        template = request.url.rsplit("/", 2)[0] + "/{offset}/{count}"
        return PageRequest(template.format(offset=offset, count=self.page_size), request.params, offset, offset)


@dataclass(frozen=True)
class CursorPaginator:
    """An opaque cursor or next-token (Alto, Open API) until the envelope says there is no more."""

    cursor_param: str
    next_cursor: str
    size_param: str
    page_size: int
    has_more: str | None = None

    def first(self, url: str, params: Mapping[str, str]) -> PageRequest:
        return PageRequest(url, {**params, self.size_param: str(self.page_size)})

    def next(self, request: PageRequest, body: Mapping[str, Any], count: int, crm: str) -> PageRequest | None:
        cursor = dig(body, self.next_cursor)
        has_more = dig(body, self.has_more)
        more = has_more if isinstance(has_more, bool) else cursor not in (None, "")
        if not more:
            return None
        if not isinstance(cursor, str) or not cursor:
            raise CrmError(ErrorKind.BAD_RESPONSE, f"{crm} said more records follow {request.url} but sent no cursor")
        return PageRequest(request.url, {**request.params, self.cursor_param: cursor}, request.page + 1)
