"""The local web server (FastAPI) of rnnvis."""
from __future__ import annotations

import sys

from ..errors import RnnvisError
from ..workspace import Workspace
from .app import create_app
from .security import is_loopback, new_token

__all__ = ["create_app", "serve"]


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 8000, token: str | None = None) -> None:
    """Serve the app; a non-loopback address always gets an access token."""
    import uvicorn

    if not (1 <= port <= 65535):
        raise RnnvisError(f"port {port} is out of range", "use a port between 1 and 65535, e.g. --port 8000")
    if not is_loopback(host) and not token:
        token = new_token()
    app = create_app(ws, host=host, token=token)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"rnnvis: serving {ws.home} at {url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
