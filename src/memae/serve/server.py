"""The HTTP server around the application: uvicorn on uvloop (where installed) and httptools,
with deadlines for slow and idle clients.

uvicorn closes a keep-alive connection idle for :data:`KEEP_ALIVE_S` after a response, but
has no deadline before a request's headers are complete: a client that connects and sends
nothing, or its headers a byte at a time, would hold its connection forever. The protocol
here closes such a connection after ``ServeConfig.body_timeout`` (the body's own deadline is
:class:`memae.serve.guards.BodyGuard`'s, which answers 408).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from memae.serve.config import ServeConfig

#: Seconds a keep-alive connection may stay idle between requests (uvicorn's default).
KEEP_ALIVE_S = 5.0


def server_config(app: Any, config: ServeConfig, **options: Any) -> Any:
    """The ``uvicorn.Config`` that serves ``app`` (the guarded ASGI application) as ``config``
    says; ``options`` override uvicorn's settings (a test passes none, ``fd``/``sockets`` go to
    ``Server.serve``)."""
    import uvicorn

    settings: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "http": deadline_protocol(config.body_timeout),
        "loop": "auto",  # uvloop when installed
        "lifespan": "on",
        "log_level": "warning",
        "access_log": False,
        "proxy_headers": False,
        "timeout_keep_alive": KEEP_ALIVE_S,
        "limit_concurrency": config.max_connections,
        **options,
    }
    return uvicorn.Config(app, **settings)


def deadline_protocol(timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol with two rules for slow clients:

    * a request's head — from the connection, or from the first byte of a later request on
      it, to the end of its headers — must arrive within ``timeout`` seconds, else the
      connection is closed (with a 408 when part of the head had come);
    * a response sent before its request's body has fully arrived closes the connection:
      nobody reads the rest, and a client could trickle it forever.
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    message = f"the request's headers did not arrive within {timeout:g} s (body_timeout)"
    body = json.dumps({"error": message, "limit": "body_timeout"}).encode()
    refusal = (
        b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
        + f"content-length: {len(body)}\r\n".encode()
        + b"connection: close\r\n\r\n"
        + body
    )

    class DeadlineProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _head_begun = False

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_begun = True
            self._arm()

        def on_headers_complete(self) -> None:
            self._disarm()
            self._head_begun = False
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            if not self.pipeline and self.cycle is not None and self.cycle.more_body:
                self.transport.close()
            super().on_response_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(timeout, self._head_timed_out)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            if self.transport.is_closing():
                return
            if self._head_begun:
                self.transport.write(refusal)
            self.transport.close()

    DeadlineProtocol.__doc__ = deadline_protocol.__doc__
    return DeadlineProtocol
