"""Make a local server safe to leave running.

- Requests whose Host header is not one of the server's own names are refused
  (defeats DNS rebinding: a web page cannot reach us under its own host name).
- When bound to anything but loopback, every request needs the access token,
  given once as ?token=... (then kept in a cookie) or as `Authorization: token ...`.
- No CORS headers are ever sent, so other origins cannot read our responses.
- /api requests sent by a page of another origin are refused (an `Origin` header that is not the
  server's own origin — scheme, host AND port — or `Sec-Fetch-Site: cross-site`): without a token on
  loopback, a foreign page (another local web app on http://localhost:3000 included) could otherwise
  start recordings and analyses with a no-cors fetch or an <img>, blind but effective.
- Host names are compared case-insensitively (`Host: LOCALHOST` is ours).
- The token is checked before anything reads the request body (see `create_app`: this middleware
  runs outside the body-size limit), so a client without the token gets 401, whatever it sends.
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
        hosts.add(bind_host.lower())
    return hosts


def host_name(header: str) -> str:
    """The host part of a Host header, lower-cased: 'A:8000' -> 'a', '[::1]:8000' -> '[::1]'."""
    if header.startswith("["):
        return header.split("]", 1)[0].lower() + "]"
    return (header.rsplit(":", 1)[0] if header.count(":") == 1 else header).lower()


def host_port(header: str, scheme: str) -> int | None:
    """The port of a Host header (or of an Origin's netloc); the scheme's default when it names none;
    None when it is not a number."""
    rest = header.split("]", 1)[1] if header.startswith("[") else header if header.count(":") == 1 else ""
    if ":" not in rest:
        return DEFAULT_PORTS.get(scheme)
    port = rest.rsplit(":", 1)[1]
    return int(port) if port.isdigit() and len(port) <= 5 else None


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_host(origin: str) -> str:
    """The host part of an Origin header: 'http://a:8000' -> 'a'; 'null' -> 'null'."""
    netloc = origin.split("://", 1)[1] if "://" in origin else origin
    return host_name(netloc.split("/", 1)[0])


def origin_parts(origin: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of an Origin header: 'http://a:8000' -> ('http', 'a', 8000),
    'https://a' -> ('https', 'a', 443); 'null' -> ('', 'null', None)."""
    scheme = origin.split("://", 1)[0].lower() if "://" in origin else ""
    netloc = (origin.split("://", 1)[1] if "://" in origin else origin).split("/", 1)[0]
    return scheme, host_name(netloc), host_port(netloc, scheme) if scheme else None


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
        """Sent by a page of another origin (the browser says so; other clients send neither header).

        Same origin means our scheme, one of our host names and the port the request came to (the
        Host header's, as the browser sent it): http://localhost:3000 is another site's page."""
        if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
            return True
        origin = request.headers.get("origin")
        if origin is None:
            return False
        scheme, o_host, o_port = origin_parts(origin.strip())
        own_scheme = request.url.scheme.lower()
        own_port = host_port(request.headers.get("host", ""), own_scheme)
        return not (scheme == own_scheme and o_host in (self.hosts if self.hosts is not None else {host})
                    and o_port is not None and o_port == own_port)
