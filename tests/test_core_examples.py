"""The README's runnable examples run as a user would run them."""
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_record_your_model_example_runs():
    r = subprocess.run([sys.executable, str(EXAMPLES / "record_your_model.py")], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "layer0.fwd.gate.i" in r.stdout and "(3, 12, 32)" in r.stdout


def test_readme_shows_the_example_verbatim():
    readme = (EXAMPLES.parent / "README.md").read_text()
    code = (EXAMPLES / "record_your_model.py").read_text()
    body = code.split('"""', 2)[2].strip()
    assert body in readme


def test_flat_public_api_resolves():
    import rnnvis

    missing = [n for n in rnnvis.__all__ if n != "__version__" and getattr(rnnvis, n, None) is None]
    assert not missing


def test_readme_serve_snippet_serves_the_own_model(monkeypatch, tmp_path):
    """The README's `rnnvis.serve(models=..., data=...)` snippet, run with a background server."""
    import json
    import time
    import urllib.error
    import urllib.request

    import rnnvis

    readme = (EXAMPLES.parent / "README.md").read_text()
    section = readme.split("### Your own models in the app", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    started = []
    real_serve = rnnvis.serve

    def serve(**kwargs):
        started.append(real_serve(**kwargs, home=tmp_path / "home", port=0, block=False, quiet=True))

    monkeypatch.setattr(rnnvis, "serve", serve)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    server = started[0]
    try:
        def get(path):
            try:
                with urllib.request.urlopen(server.url.rstrip("/") + path, timeout=60) as r:
                    return r.status, json.load(r)
            except urllib.error.HTTPError as e:
                return e.code, json.load(e)

        status, info = get("/api/models/my-gru/info")
        assert status == 200 and info["own"] and info["cell"] == "gru", info
        deadline = time.time() + 60
        while (res := get("/api/models/my-gru/word?word=cat"))[0] == 409 and time.time() < deadline:
            time.sleep(0.2)
        assert res[0] == 200 and res[1]["count"] == 1 and len(res[1]["response"]) == 32, res
    finally:
        server.stop()
