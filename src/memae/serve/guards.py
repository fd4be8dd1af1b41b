"""What every request passes before the routes: the token (when the server has one), then
the body's size and deadline. Plain ASGI middleware, so a refusal costs no routing."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs

from starlette.requests import cookie_parser
from starlette.responses import JSONResponse, Response

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
T = TypeVar("T")


def error_response(status: int, message: str, limit: str | None = None, close: bool = False) -> JSONResponse:
    """The JSON answer of every refusal: ``{"error": message, "limit": name or null}``;
    ``close`` ends the connection after it (the request's body was not read to its end)."""
    response = JSONResponse({"error": message, "limit": limit}, status_code=status)
    if close:
        response.headers["Connection"] = "close"
    return response


class BodyTooLarge(Exception):
    """The request body passed ``max_body_bytes``."""


class BodyTimeout(Exception):
    """The request body did not arrive within ``body_timeout``."""


class BodyGuard:
    """Refuses request bodies over ``max_bytes`` with 413 — at once when ``Content-Length``
    says so, else as soon as the streamed body passes the limit — and bodies that have not
    fully arrived ``timeout`` seconds after the request's headers with 408, so a slow client
    holds its connection for a bounded time. Both answers close the connection.

    The application's exception handlers answer :class:`BodyTooLarge` and :class:`BodyTimeout`
    raised while a route reads the body; this class answers those raised elsewhere.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float) -> None:
        self.app, self.max_bytes, self.timeout = app, max_bytes, timeout
        self.too_large = f"the request body is larger than the {max_bytes} bytes allowed (max_body_bytes)"
        self.too_slow = f"the request body did not arrive within {timeout:g} s (body_timeout)"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await error_response(413, self.too_large, "max_body_bytes", close=True)(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        seen, complete, started = 0, False, False

        async def guarded() -> dict[str, Any]:
            nonlocal seen, complete
            if complete:  # after the body: a wait for the disconnect, which has no deadline
                return await receive()
            try:
                event = await _before(deadline, receive())
            except asyncio.TimeoutError:
                raise BodyTimeout(self.too_slow) from None
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.too_large)
                complete = not event.get("more_body", False)
            return event

        async def tracked(event: dict[str, Any]) -> None:
            nonlocal started
            started = started or event["type"] == "http.response.start"
            await send(event)

        try:
            await self.app(scope, guarded, tracked)
        except (BodyTooLarge, BodyTimeout) as err:  # raised where no exception handler saw it
            if not started:
                await self.refusal(err)(scope, receive, send)

    @staticmethod
    def refusal(err: BodyTooLarge | BodyTimeout) -> Response:
        if isinstance(err, BodyTooLarge):
            return error_response(413, str(err), "max_body_bytes", close=True)
        return error_response(408, str(err), "body_timeout", close=True)


async def _before(deadline: float, awaitable: Awaitable[T]) -> T:
    """``awaitable``'s result, or ``TimeoutError`` at the event loop's time ``deadline``
    (``asyncio.timeout_at`` where there is one: a timer, not a task per call)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout_at(deadline):
            return await awaitable
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(awaitable, max(deadline - loop.time(), 0.0))


#: The query parameter that hands a browser the token (``GET /?token=...``), as Jupyter does.
TOKEN_QUERY = "token"


class TokenGuard:
    """Every request — the page, the API, the WebSocket streams — must carry the token:
    ``Authorization: Bearer <token>``, or the cookie a browser gets from ``GET /?token=<token>``
    (answered with a redirect to ``/`` that sets the cookie, HttpOnly and SameSite=Strict, so
    the token leaves the address bar and the page's own requests carry the cookie). Tokens
    and cookies are compared in constant time; the cookie holds a value derived from the
    token, not the token itself, and its name holds the server's port (cookies are shared
    between the ports of a host).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token.encode()
        self.cookie_value = hmac.new(self.token, b"memae serve cookie", hashlib.sha256).hexdigest()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        if self._bearer(headers) or self._cookie(headers, scope):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        given = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(TOKEN_QUERY)
        if given and scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
            if hmac.compare_digest(given[-1].encode(), self.token):
                await self._hand_cookie(scope)(scope, receive, send)
                return
            response = error_response(401, "wrong token in the address (?token=...)")
        else:
            response = error_response(
                401,
                "missing or wrong token: send Authorization: Bearer <token>, or open "
                "/?token=<token> in a browser (it sets a cookie)",
            )
        response.headers["WWW-Authenticate"] = "Bearer"
        await response(scope, receive, send)

    def _bearer(self, headers: dict[bytes, bytes]) -> bool:
        scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.token)

    def _cookie(self, headers: dict[bytes, bytes], scope: Scope) -> bool:
        raw = headers.get(b"cookie")
        if raw is None:
            return False
        value = cookie_parser(raw.decode("latin-1")).get(_cookie_name(scope), "")
        return hmac.compare_digest(value.encode(), self.cookie_value.encode())

    def _hand_cookie(self, scope: Scope) -> Response:
        response = Response(status_code=303, headers={"Location": "/", "Cache-Control": "no-store"})
        response.set_cookie(
            _cookie_name(scope), self.cookie_value, path="/", httponly=True, samesite="strict"
        )
        return response


def _cookie_name(scope: Scope) -> str:
    server = scope.get("server") or ("", 0)
    return f"memae_token_{server[1]}"
