"""The local web server (FastAPI) of rnnvis."""
from __future__ import annotations

import errno
import ipaddress
import re
import socket
import sys

from ..errors import RnnvisError
from ..workspace import Workspace
from .app import create_app
from .limits import DEADLINE_S, READ_TIMEOUT_S, bound_malloc_arenas, uvicorn_options
from .security import is_loopback, new_token

__all__ = ["check_address", "create_app", "serve"]

_HOST_FIX = "use --host 127.0.0.1 (this machine only), 0.0.0.0 (every interface) or an address of this machine"


def check_address(host: str, port: int) -> None:
    """Refuse, with a RnnvisError, an address the server could not listen on (not an address, not one of
    this machine's, the port taken or privileged), before the server announces it. Binds a socket the
    way uvicorn does (SO_REUSEADDR) and closes it at once."""
    if re.fullmatch(r"[0-9.]+", host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise RnnvisError(f"cannot serve on host {host!r}: it is not a valid IP address", _HOST_FIX) from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise RnnvisError(f"cannot serve on host {host!r}: it is not an address or a known host name "
                          f"({getattr(exc, 'strerror', None) or exc})", _HOST_FIX) from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                other = port + 1 if port < 65535 else 8000
                what, fix = (f"port {port} on {host} is already in use",
                             f"stop the program using it, or choose another port, e.g. --port {other}")
            elif exc.errno == errno.EADDRNOTAVAIL:
                what, fix = f"cannot serve on host {host!r}: it is not an address of this machine", _HOST_FIX
            elif exc.errno == errno.EACCES:
                what, fix = f"port {port} needs administrator rights", "use a port above 1023, e.g. --port 8000"
            else:
                what, fix = f"cannot serve on {host}:{port}: {exc.strerror}", "choose another --host or --port"
            raise RnnvisError(what, fix) from None


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_tokens: int | None = None, read_timeout: float = READ_TIMEOUT_S, deadline: float | None = DEADLINE_S,
          cache_bytes: int | None = None) -> None:
    """Serve the app; a non-loopback address always gets an access token. The views read whole
    splits, or at most `max_tokens` tokens of each (`rnnvis serve --max-tokens N`); a request must be
    sent within `read_timeout` s and an answer start within `deadline` s; view results are kept in
    `cache_bytes` of memory (None: `explore.cache.CACHE_BYTES`)."""
    import uvicorn

    from ..catalog import Catalog
    from ..explore.session import Explorer
    from ..heal import heal_and_log

    if not (1 <= port <= 65535):
        raise RnnvisError(f"port {port} is out of range", "use a port between 1 and 65535, e.g. --port 8000")
    check_address(host, port)  # one clear error now, not "serving ... at ..." and then a uvicorn ERROR line
    if not is_loopback(host) and not token:
        token = new_token()
    bound_malloc_arenas()  # before the server's threads: bounded memory under concurrent requests
    catalog = Catalog(ws.catalog_path)
    heal_and_log(ws, catalog)  # before the server's own jobs start: what killed processes left behind
    explorer = Explorer(ws, catalog, max_tokens=max_tokens,
                        **({} if cache_bytes is None else {"cache_bytes": cache_bytes}))
    app = create_app(ws, host=host, token=token, explorer=explorer, read_timeout=read_timeout, deadline=deadline)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"rnnvis: serving {ws.home} at {url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", **uvicorn_options(read_timeout))
    finally:
        explorer.jobs.shutdown()
