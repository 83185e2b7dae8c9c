"""Serve your own models from Python: `rnnvis.serve(models=..., data=...)` and, in a notebook, `rnnvis.show`.

    rnnvis.serve(models={"my-lm": (module, tokenizer)}, data={"notes": ["some text", ...]})

starts the web app (the catalog's models and yours) on http://127.0.0.1:8000/ and blocks until
Ctrl-C; with `block=False` it runs in a background thread and returns a `Server` handle with
`.url` and `.stop()`. `rnnvis.show(...)` does the latter on a free port and returns an IPython
IFrame of the app. The command line (`rnnvis serve --host --port --home`) is unchanged.

A model is given as a torch module, as `(module, tokenizer)`, as `(module, tokenizer, spec)`, or as a
dict of `Explorer.add_model` arguments: {"module": m, "tokenizer": t, "spec": {...}, "kind":
"classifier", "labels": [...], "data": "notes", "split_by": "chars"}. The module is called as it is:
the spec (rnnvis/models/spec.py) says how where one probe call cannot tell, e.g. the standard PyTorch
word language model (time-major, forward(input, hidden), flattened log-softmax output) needs none,
or spelled out {"layout": "time", "extra": {"hidden": "init_hidden"}, "output": 0}. A tokenizer is
an rnnvis tokenizer, a vocabulary (a list of tokens, or a dict token -> id, split on whitespace or
by `split_by`), or any object with `.encode(text)` or `__call__(text)` returning ids (HuggingFace
style: its tokens come from `.itos`, `.get_vocab()` or `.decode`); or `encode=` and `itos=` in the
dict form.
"""
from __future__ import annotations

import socket
import sys
import threading
import time
from typing import Any, Mapping

from .errors import RnnvisError

_RUNNING: list["Server"] = []  # servers started by show() stay referenced while the kernel lives


class Server:
    """A server running in a background thread: `.url`, `.explorer`, `.stop()`; a context manager."""

    def __init__(self, server, thread: threading.Thread, url: str, explorer):
        self._server, self._thread = server, thread
        self.url = url
        self.explorer = explorer

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the server thread (and its background jobs) to end."""
        self._server.should_exit = True
        self._thread.join(timeout)
        try:
            self.explorer.jobs.shutdown()
        except Exception:  # noqa: BLE001 - stopping must not fail
            pass
        if self in _RUNNING:
            _RUNNING.remove(self)

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Server({self.url!r}, {'running' if self.running else 'stopped'})"


def _add_models(ex, models: Mapping[str, Any] | None) -> None:
    import torch

    for name, spec in (models or {}).items():
        if not isinstance(name, str) or not name:
            raise RnnvisError(f"model name {name!r} is not a non-empty string", "name each model, e.g. {'my-lm': m}")
        if isinstance(spec, torch.nn.Module):
            kwargs = {"module": spec, "tokenizer": getattr(spec, "tokenizer", None)}
        elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
            kwargs = {"module": spec[0], "tokenizer": spec[1], **({"spec": spec[2]} if len(spec) == 3 else {})}
        elif isinstance(spec, Mapping) and "module" in spec:
            kwargs = dict(spec)
        else:
            raise RnnvisError(f"own model {name!r} is a {type(spec).__name__}",
                              "give a torch module, (module, tokenizer), (module, tokenizer, spec) or "
                              "{'module': m, 'tokenizer': t, 'spec': {...}, ...}")
        module = kwargs.pop("module")
        ex.add_model(name, module, **kwargs)


def _explorer(models, data, home, max_tokens: int | None, quiet: bool = False, cache_bytes: int | None = None):
    from .catalog import Catalog
    from .explore.session import Explorer
    from .heal import heal, heal_and_log
    from .workspace import Workspace

    ws = Workspace.open(home)
    catalog = Catalog(ws.catalog_path)
    (heal if quiet else heal_and_log)(ws, catalog)  # what killed processes left behind, before jobs start
    ex = Explorer(ws, catalog, max_tokens=max_tokens,
                  **({} if cache_bytes is None else {"cache_bytes": cache_bytes}))
    for name, texts in (data or {}).items():
        ex.add_data(name, texts)
    _add_models(ex, models)
    return ex


def _bound_port(server) -> int | None:
    for s in getattr(server, "servers", None) or []:
        for sock in getattr(s, "sockets", None) or []:
            try:
                return int(sock.getsockname()[1])
            except (OSError, IndexError, TypeError):
                continue
    return None


def serve(models: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None, home=None,
          host: str = "127.0.0.1", port: int = 8000, block: bool = True, token: str | None = None,
          max_tokens: int | None = None, quiet: bool = False, read_timeout: float = 10.0,
          deadline: float | None = 60.0, cache_bytes: int | None = None) -> "Server | None":
    """Serve the web app with the workspace's models and your own (see the module docstring).

    The views read a view recording of each model: a whole split of its data (the test split
    unless chosen in the app), or at most `max_tokens` tokens of it.

    `port=0` picks a free port. A non-loopback `host` always gets an access token (printed in the
    URL). `block=False` returns a running `Server`; `block=True` serves until Ctrl-C and returns None.
    `read_timeout`: seconds a client has to send a request (408 after); `deadline`: seconds before a
    view's answer must start (503 "retry" after; None: no deadline); the defaults are those of
    `rnnvis.server.limits`. `cache_bytes`: memory for view results (default 512 MiB).
    """
    import uvicorn

    from .server import check_address
    from .server.app import create_app
    from .server.limits import uvicorn_options
    from .server.security import is_loopback, new_token

    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise RnnvisError(f"port {port!r} is out of range", "use a port between 1 and 65535 (0: any free port)")
    check_address(host, port)  # a bad host or a port in use: one clear error before anything starts
    ex = _explorer(models, data, home, max_tokens, quiet=quiet, cache_bytes=cache_bytes)
    if not is_loopback(host) and not token:
        token = new_token()
    app = create_app(ex.ws, host=host, token=token, explorer=ex, read_timeout=read_timeout, deadline=deadline)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                            **uvicorn_options(read_timeout))
    server = uvicorn.Server(config)

    def url_for(p: int) -> str:
        shown = f"[{host}]" if ":" in host else host
        if host in ("0.0.0.0", "::"):
            shown = "127.0.0.1"
        return f"http://{shown}:{p}/" + (f"?token={token}" if token else "")

    if block:
        if port == 0:
            with socket.socket() as s:
                s.bind((host if host not in ("::",) else "0.0.0.0", 0))
                port = s.getsockname()[1]
            config.port = port
        if not quiet:
            print(f"rnnvis: serving {ex.ws.home} at {url_for(port)}  (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            server.run()
        finally:
            ex.jobs.shutdown()
        return None
    thread = threading.Thread(target=server.run, name="rnnvis-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive():
            ex.jobs.shutdown()
            raise RnnvisError(f"the server could not start on {host}:{port}",
                              "the port may be in use: choose another one, or port=0 for any free port")
        if time.monotonic() > deadline:
            server.should_exit = True
            raise RnnvisError("the server did not start within 60 s", "check the log above and retry")
        time.sleep(0.02)
    handle = Server(server, thread, url_for(_bound_port(server) or port), ex)
    if not quiet:
        print(f"rnnvis: serving {ex.ws.home} at {handle.url}", file=sys.stderr, flush=True)
    return handle


def show(models: Mapping[str, Any] | None = None, data: Mapping[str, Any] | None = None, home=None,
         height: int = 700, width: str | int = "100%", **kwargs):
    """Start the app in the background (free port) and return an IPython IFrame showing it.

    The server keeps running while the kernel lives; `iframe.server.stop()` stops it.
    """
    try:
        from IPython.display import IFrame
    except ImportError:
        raise RnnvisError("rnnvis.show needs IPython (a Jupyter notebook or IPython shell)",
                          "pip install ipython, or call rnnvis.serve(...) and open its URL in a browser") from None
    kwargs.setdefault("port", 0)
    kwargs.setdefault("quiet", True)
    handle = serve(models=models, data=data, home=home, block=False, **kwargs)
    _RUNNING.append(handle)
    frame = IFrame(handle.url, width=width, height=height)
    frame.server = handle
    return frame


__all__ = ["Server", "serve", "show"]
