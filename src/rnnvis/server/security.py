"""Make a local server safe to leave running.

- Requests whose Host header is not one of the server's own names are refused
  (defeats DNS rebinding: a web page cannot reach us under its own host name).
- When bound to anything but loopback, every request needs the access token,
  given once as ?token=... (then kept in a cookie) or as `Authorization: token ...`.
- No CORS headers are ever sent, so other origins cannot read our responses.
- /api requests sent by a page of another site are refused (an `Origin` header whose host is not
  one of ours, or `Sec-Fetch-Site: cross-site`): without a token on loopback, a foreign page could
  otherwise start recordings and analyses with a no-cors fetch or an <img>, blind but effective.
"""
from __future__ import annotations

import hmac
import ipaddress
import secrets

from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}
COOKIE = "rnnvis_token"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str) -> set[str]:
    hosts = set(LOOPBACK_NAMES)
    if bind_host not in ("0.0.0.0", "::"):
        hosts.add(bind_host)
    return hosts


def host_name(header: str) -> str:
    """The host part of a Host header: 'a:8000' -> 'a', '[::1]:8000' -> '[::1]'."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def origin_host(origin: str) -> str:
    """The host part of an Origin header: 'http://a:8000' -> 'a'; 'null' -> 'null'."""
    netloc = origin.split("://", 1)[1] if "://" in origin else origin
    return host_name(netloc.split("/", 1)[0])


def new_token() -> str:
    return secrets.token_urlsafe(24)


class GuardMiddleware(BaseHTTPMiddleware):
    """Host-header check for every request; token check when `token` is set."""

    def __init__(self, app, hosts: set[str] | None, token: str | None):
        super().__init__(app)
        self.hosts = hosts  # None: any host (bound to all interfaces, token required)
        self.token = token

    async def dispatch(self, request: Request, call_next) -> Response:
        host = host_name(request.headers.get("host", ""))
        if self.hosts is not None and host not in self.hosts:
            return JSONResponse({"error": f"host {host!r} is not allowed",
                                 "fix": "open rnnvis through the address it printed at start"},
                                status_code=403)
        if request.url.path.startswith("/api") and self._cross_site(request, host):
            return JSONResponse({"error": "requests from other web sites are not allowed",
                                 "fix": "use rnnvis through the address it printed at start, not from another page"},
                                status_code=403)
        if self.token:
            given = (request.query_params.get("token")
                     or request.cookies.get(COOKIE)
                     or request.headers.get("authorization", "").removeprefix("token ").strip())
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return JSONResponse({"error": "missing or wrong access token",
                                     "fix": "open the URL with ?token=... that `rnnvis serve` printed"},
                                    status_code=401)
            response = await call_next(request)
            if request.query_params.get("token"):
                response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
            return response
        return await call_next(request)

    def _cross_site(self, request: Request, host: str) -> bool:
        """Sent by a page of another origin (the browser says so; other clients send neither header)."""
        if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False
        return origin_host(origin.strip()) not in (self.hosts if self.hosts is not None else {host})
