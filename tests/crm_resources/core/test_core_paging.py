"""The paginators: where each CRM's paging style says a stream ends, and what it sends for the next page."""

from __future__ import annotations

import httpx
import pytest
from mock_crm import ClientFactory, page, read_ids

from crm_resources.core import (
    CrmError,
    CursorPaginator,
    Endpoint,
    ErrorKind,
    OffsetPathPaginator,
    PageNumberPaginator,
    PageRequest,
    dig,
    with_page_size,
)

PAGES = PageNumberPaginator("pageNumber", "pageSize", 2, total_pages="totalPageCount", next_link="_links.next.href")


def test_dig_follows_dotted_paths_and_answers_none_where_a_step_is_missing() -> None:
    body = {"meta": {"pagination": {"total_pages": 3}}, "links": "x"}
    assert dig(body, "meta.pagination.total_pages") == 3
    assert dig(body, "meta.nothing.total_pages") is None
    assert dig(body, "links.next") is None  # a string is not a step
    assert dig(body, None) is None


def test_page_numbers_start_at_one_with_the_page_size() -> None:
    first = PAGES.first("/contacts", {"since": "x"})
    assert (first.url, first.page) == ("/contacts", 1)
    assert dict(first.params) == {"since": "x", "pageNumber": "1", "pageSize": "2"}


def test_a_declared_page_count_stops_paging_though_a_next_link_says_more() -> None:
    last = PageRequest("/contacts", {"pageNumber": "2", "pageSize": "2"}, page=2, read=2)
    body = {"totalPageCount": 2, "_links": {"next": {"href": "/contacts?pageNumber=3&pageSize=2"}}}
    assert PAGES.next(last, body, 2, "MockCRM") is None
    # Before the last page the count says more, and the link is where the next page is.
    following = PAGES.next(PageRequest("/contacts", {}, page=1), {**body, "totalPageCount": 3}, 2, "MockCRM")
    assert following is not None and following.page == 3 and following.params["pageNumber"] == "3"


def test_a_declared_total_count_stops_paging_when_every_record_is_read() -> None:
    paginator = PageNumberPaginator("pageNumber", "pageSize", 2, total_count="totalCount")
    first = paginator.first("/contacts", {})
    second = paginator.next(first, {"totalCount": 3}, 2, "Loop")
    assert second is not None and (second.page, second.read, second.params["pageNumber"]) == (2, 2, "2")
    assert paginator.next(second, {"totalCount": 3}, 1, "Loop") is None


def test_without_totals_a_next_link_is_followed_as_given_and_its_absence_ends_the_stream() -> None:
    paginator = PageNumberPaginator("page[number]", "page[size]", 2, next_link="links.next")
    first = paginator.first("/people", {})
    link = "http://street.test/v1/people?page%5Bnumber%5D=7&page%5Bsize%5D=2&filter=a"
    following = paginator.next(first, {"links": {"next": link}}, 2, "Street")
    assert following is not None
    assert following.url == "http://street.test/v1/people"
    assert dict(following.params) == {"page[number]": "7", "page[size]": "2", "filter": "a"}
    assert following.page == 7 and following.read == 2
    assert paginator.next(following, {"links": {"next": None}}, 2, "Street") is None


def test_offset_paging_puts_offset_and_count_in_the_path_until_the_total() -> None:
    paginator = OffsetPathPaginator(3, total_count="Count")
    first = paginator.first("/v4/landlords/{offset}/{count}", {})
    assert first.url == "/v4/landlords/0/3" and first.page == 0
    second = paginator.next(first, {"Count": 5}, 3, "agentOS")
    assert second is not None and second.url == "/v4/landlords/3/3" and second.page == 3
    assert paginator.next(second, {"Count": 5}, 2, "agentOS") is None
    assert paginator.next(first, {}, 3, "agentOS") is None  # no total: nothing says more follows


def test_a_cursor_is_followed_while_has_more_says_so() -> None:
    paginator = CursorPaginator("cursor", "meta.next_cursor", "limit", 2, has_more="meta.has_more")
    first = paginator.first("/contacts", {})
    assert dict(first.params) == {"limit": "2"}
    following = paginator.next(first, {"meta": {"has_more": True, "next_cursor": "c2"}}, 2, "Open API")
    assert following is not None and dict(following.params) == {"limit": "2", "cursor": "c2"}
    # has_more decides, even when a cursor is still sent.
    assert paginator.next(following, {"meta": {"has_more": False, "next_cursor": "c3"}}, 2, "Open API") is None
    with pytest.raises(CrmError, match="sent no cursor") as caught:
        paginator.next(following, {"meta": {"has_more": True, "next_cursor": ""}}, 2, "Open API")
    assert caught.value.kind is ErrorKind.BAD_RESPONSE


def test_without_has_more_a_cursor_means_more_and_none_means_the_end() -> None:
    paginator = CursorPaginator("next-token", "meta.nextToken", "max-results", 2)
    first = paginator.first("/contacts/all", {})
    following = paginator.next(first, {"meta": {"nextToken": "t2"}}, 2, "Alto")
    assert following is not None and following.params["next-token"] == "t2"
    assert paginator.next(following, {"meta": {"nextToken": None}}, 2, "Alto") is None
    assert paginator.next(following, {"meta": {}}, 2, "Alto") is None


@pytest.mark.parametrize(
    "paginator,request_,body",
    [
        (PAGES, PageRequest("/contacts", {}, page=1), {"totalPageCount": 3}),
        (
            PageNumberPaginator("p", "s", 2, total_count="total"),
            PageRequest("/contacts", {}, page=1, read=2),
            {"total": 10},
        ),
        (OffsetPathPaginator(2, total_count="Count"), PageRequest("/x/0/2", {}, page=0), {"Count": 10}),
    ],
    ids=["page-count", "total-count", "offset"],
)
def test_an_empty_page_that_claims_more_is_an_error_not_a_loop(
    paginator: PageNumberPaginator | OffsetPathPaginator, request_: PageRequest, body: dict[str, int]
) -> None:
    with pytest.raises(CrmError, match="said more records follow .* but sent an empty page") as caught:
        paginator.next(request_, body, 0, "MockCRM")
    assert caught.value.kind is ErrorKind.BAD_RESPONSE


def test_with_page_size_changes_only_the_page_size() -> None:
    small = with_page_size(PAGES, 1)
    assert isinstance(small, PageNumberPaginator)
    assert small.page_size == 1 and small.total_pages == PAGES.total_pages and PAGES.page_size == 2
    assert small.first("/c", {}).params["pageSize"] == "1"


def test_the_client_reads_every_page_of_every_endpoint_in_order(make_client: ClientFactory) -> None:
    asked: list[str] = []

    def crm(request: httpx.Request) -> httpx.Response:
        asked.append(f"{request.url.path}?{request.url.query.decode()}")
        number = int(request.url.params["page"])
        return page([{"id": f"{request.url.path[-5:]}{number}a"}, {"id": f"{request.url.path[-5:]}{number}b"}], pages=2)

    client = make_client(crm, leads=(Endpoint("/sales"), Endpoint("/lets_")))
    expected = [f"{e}{n}{half}" for e in ("sales", "lets_") for n in (1, 2) for half in "ab"]
    assert read_ids(client, "leads") == expected
    assert asked == [f"/api/{e}?page={n}&size=2" for e in ("sales", "lets_") for n in (1, 2)]


def test_an_empty_page_claiming_more_stops_the_client_with_the_crms_name(make_client: ClientFactory) -> None:
    client = make_client(lambda request: page([], pages=5))
    with pytest.raises(CrmError, match="MockCRM said more records follow /contacts but sent an empty page"):
        read_ids(client)
