"""How a request proves who it is: a static header, or an OAuth2 client-credentials token that renews itself."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator

import httpx


class HeaderAuth(httpx.Auth):
    """A static credential in one header: an API key, or a bearer token."""

    def __init__(self, header: str, value: str) -> None:
        self._header = header
        self._value = value

    @classmethod
    def bearer(cls, token: str) -> HeaderAuth:
        return cls("Authorization", f"Bearer {token}")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers[self._header] = self._value
        yield request


class TokenRefused(Exception):
    """The token endpoint said no; the client classifies its response like any other."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"token endpoint answered {response.status_code}")
        self.response = response


class OAuth2ClientCredentials(httpx.Auth):
    """Client-credentials grant with a token cache that knows when the token expires.

    A 401 on a data call gets one fresh token and one more try (crm-apis.md); a second 401 is
    the CRM rejecting the credentials.
    """

    requires_response_body = True

    def __init__(
        self,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        client_id_in_form: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token_url = token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._client_id_in_form = client_id_in_form
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self.expires_in: float | None = None

    def token_request(self) -> httpx.Request:
        form = {"grant_type": "client_credentials"}
        if self._client_id_in_form:
            form["client_id"] = self._client_id
        request = httpx.Request("POST", self.token_url, data=form, headers={"Accept": "application/json"})
        return next(httpx.BasicAuth(self._client_id, self._client_secret).auth_flow(request))

    def accept(self, response: httpx.Response) -> None:
        if response.status_code != 200:
            raise TokenRefused(response)
        try:
            body = response.json()
            token = body["access_token"]
            expires_in = float(body.get("expires_in") or 3600)
        except (ValueError, KeyError, TypeError):
            raise TokenRefused(response) from None
        if not isinstance(token, str) or not token:
            raise TokenRefused(response)
        self._token = token
        self.expires_in = expires_in
        # Renew a minute early (or at 90% of a short lifetime) so a page never races the expiry.
        self._expires_at = self._clock() + max(expires_in - 60, expires_in * 0.9)

    def forget(self) -> None:
        self._token = None

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self._valid():
            self.accept((yield self.token_request()))
        request.headers["Authorization"] = f"Bearer {self._token}"
        response = yield request
        if response.status_code == 401:
            self.forget()
            self.accept((yield self.token_request()))
            request.headers["Authorization"] = f"Bearer {self._token}"
            yield request
