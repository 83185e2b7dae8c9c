"""Bounded requests: each is read in full within a time limit, its body within a size limit, and a
synchronous view answers within a deadline.

- `TimedH11Protocol` (uvicorn's h11 protocol with a read timer): the request line and headers must
  arrive within `read_timeout` seconds of the connection (or of the previous answer on a kept-alive
  one), else the client gets 408 and the connection is closed. uvicorn alone keeps a half-sent
  request open for ever (its keep-alive timer stops at the first byte).
- `RequestLimits` (ASGI middleware): a body over `max_body` bytes answers 413 (by its Content-Length,
  or while a chunked body is read); a body not in full within `read_timeout` seconds answers 408
  (and the connection closes); an /api request whose answer has not started after `deadline`
  seconds answers 503 with Retry-After. Its computation goes on in the background and keeps its
  result, so the retry is quick; work longer than the deadline belongs in jobs.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import json
import os

import h11
from starlette.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_BODY = 1 << 20  # bytes of a request body
READ_TIMEOUT_S = 10.0  # seconds to send a request's headers, and then its body
DEADLINE_S = 60.0  # seconds a synchronous view may take before the client is told to retry
RETRY_AFTER_S = 5  # seconds a 503 asks the client to wait
MALLOC_ARENAS = 2  # glibc malloc arenas of a server process (see `bound_malloc_arenas`)


def _timeout_body(timeout: float) -> dict:
    return {"error": f"the request was not sent in full within {timeout:g} s",
            "fix": "send the whole request at once; check the client and the network"}


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a 408 for a request whose headers are not in within `read_timeout`."""

    read_timeout = READ_TIMEOUT_S
    _read_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_read_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_read_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # the request line and headers are in
            self._cancel_read_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm_read_timer()  # the next request on this connection gets the same time

    def _arm_read_timer(self) -> None:
        self._cancel_read_timer()
        self._read_timer = self.loop.call_later(self.read_timeout, self._read_timed_out)

    def _cancel_read_timer(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _read_timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        # no request was parsed, so h11 cannot frame an answer: write it as it is, then close
        body = json.dumps(_timeout_body(self.read_timeout)).encode()
        self.transport.write(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        self.transport.close()


def http_protocol(read_timeout: float = READ_TIMEOUT_S) -> type[TimedH11Protocol]:
    """The protocol class to give uvicorn (`uvicorn.Config(http=...)`) for this read timeout."""
    return type("TimedH11Protocol", (TimedH11Protocol,), {"read_timeout": float(read_timeout)})


def bound_malloc_arenas(n: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX=n would) before the server's threads start.

    glibc gives threads that allocate at once arenas of their own (up to 8 per core) and rarely
    returns their memory: 4 clients × 150 requests on brown-lstm (benchmarks/bench_load.py) grew
    the server by 120-146 MB, by 26-102 MB (mean 68) with 2 arenas, at the same latency. Returns
    whether it was applied (not on other C libraries, nor when the user set MALLOC_ARENA_MAX)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-8, int(n)))  # -8: M_ARENA_MAX
    except (OSError, AttributeError):
        return False


def uvicorn_options(read_timeout: float = READ_TIMEOUT_S) -> dict:
    """uvicorn settings of an rnnvis server: the timed protocol; idle kept-alive connections close after 5 s."""
    return {"http": http_protocol(read_timeout), "timeout_keep_alive": 5}


class RequestLimits:
    """ASGI middleware: body size (413), body read time (408) and /api answer deadline (503); see above."""

    def __init__(self, app, max_body: int = MAX_BODY, read_timeout: float = READ_TIMEOUT_S,
                 deadline: float | None = DEADLINE_S):
        self.app = app
        self.max_body = max_body
        self.read_timeout = read_timeout
        self.deadline = deadline

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            return await _too_large(self.max_body)(scope, receive, send)
        messages, seen = [], 0
        loop = asyncio.get_running_loop()
        end = loop.time() + self.read_timeout
        while True:  # the whole body, before the app sees it: a stalled client costs no worker thread
            try:
                message = await asyncio.wait_for(receive(), max(0.0, end - loop.time()))
            except asyncio.TimeoutError:
                return await JSONResponse(_timeout_body(self.read_timeout), status_code=408,
                                          headers={"Connection": "close"})(scope, receive, send)
            messages.append(message)
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                return await _too_large(self.max_body)(scope, receive, send)
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        if self.deadline is None or not scope.get("path", "").startswith("/api"):
            return await self.app(scope, replay, send)
        await self._with_deadline(scope, replay, send)

    async def _with_deadline(self, scope, receive, send) -> None:
        """Run the app; when its answer has not started within the deadline, answer 503 and let the app
        finish in the background (what it sends then is dropped)."""
        state = {"started": False, "abandoned": False}

        async def guarded(message):
            if state["abandoned"]:
                return
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded))
        done, _ = await asyncio.wait({task}, timeout=self.deadline)
        if task in done or state["started"]:
            return await task
        state["abandoned"] = True
        task.add_done_callback(_consume)
        await JSONResponse(
            {"error": f"the answer took longer than {self.deadline:g} s",
             "fix": f"retry in a few seconds: the computation goes on and keeps its result (Retry-After: "
                    f"{RETRY_AFTER_S})"},
            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})(scope, receive, send)


def _consume(task: asyncio.Task) -> None:
    """Retrieve an abandoned request's outcome (its error was answered as 503 already)."""
    if not task.cancelled():
        task.exception()


def _too_large(limit: int) -> JSONResponse:
    from ..explore.sentence import MAX_TEXT

    return JSONResponse({"error": f"the request body is larger than {limit // 1024} KiB",
                         "fix": f"send a shorter text (at most {MAX_TEXT:,} characters)"}, status_code=413)
