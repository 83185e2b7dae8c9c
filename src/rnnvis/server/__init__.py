"""The local web server (FastAPI) of rnnvis."""
from __future__ import annotations

import sys

from ..errors import RnnvisError
from ..workspace import Workspace
from .app import create_app
from .security import is_loopback, new_token

__all__ = ["create_app", "serve"]


def serve(ws: Workspace, host: str = "127.0.0.1", port: int = 8000, token: str | None = None,
          max_tokens: int | None = None) -> None:
    """Serve the app; a non-loopback address always gets an access token. The views read whole
    splits, or at most `max_tokens` tokens of each (`rnnvis serve --max-tokens N`)."""
    import uvicorn

    from ..catalog import Catalog
    from ..explore.session import Explorer

    if not (1 <= port <= 65535):
        raise RnnvisError(f"port {port} is out of range", "use a port between 1 and 65535, e.g. --port 8000")
    if not is_loopback(host) and not token:
        token = new_token()
    explorer = Explorer(ws, Catalog(ws.catalog_path), max_tokens=max_tokens)
    app = create_app(ws, host=host, token=token, explorer=explorer)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"rnnvis: serving {ws.home} at {url}  (Ctrl-C stops)", file=sys.stderr, flush=True)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        explorer.jobs.shutdown()
