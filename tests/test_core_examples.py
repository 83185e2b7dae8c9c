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
