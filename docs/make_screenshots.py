"""Screenshots of every view of the web app with the demo models, into docs/screenshots/.

Run after `make demo` (the demo models must be in the workspace) and `make frontend`:

    .venv/bin/python docs/make_screenshots.py [--home DIR] [--out docs/screenshots]

It serves the workspace on a free loopback port, makes the view recordings it needs (once; they are
cached), then opens each view in Debian's headless Chromium (Playwright with executable_path, never
a downloaded browser), waits until every chart has drawn, and saves one PNG per view.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import rnnvis

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
C_SNIPPET = ('static int count_open(const char *s)\n{\n\tint depth = 0; /* brackets seen so far */\n'
             '\twhile (*s) {\n\t\tif (*s == \'(\')\n\t\t\tdepth++;\n\t\ts++;\n\t}\n\treturn depth;\n}\n')

# (file name, query string, what it shows)
SHOTS = [
    ("main", {"view": "main", "model": "movies-lstm", "word": "great"},
     "Memory chips and word clouds of the sentiment LSTM; units coloured by their response to 'great'"),
    ("summary-lm", {"view": "summary", "model": "brown-lstm"}, "Summary of the Brown word LSTM"),
    ("summary-classifier", {"view": "summary", "model": "movies-lstm"}, "Summary of the sentiment LSTM"),
    ("sentence", {"view": "sentence", "model": "movies-lstm",
                  "text": "the acting was great but the story was boring and far too long"},
     "Sentence glyphs per unit cluster"),
    ("detail", {"view": "detail", "model": "linux-char-lstm", "text": C_SNIPPET},
     "Kernel-style C coloured by one cell, with the units x time heatmaps"),
    ("radar", {"view": "radar", "model": "movies-lstm", "words": "good,bad,great,boring,not"},
     "Semantic radar of five words"),
    ("projection", {"view": "projection", "model": "brown-lstm"}, "PCA of the units by response profile"),
    ("discovery", {"view": "discovery", "model": "linux-char-lstm"}, "Units that track code structure"),
    ("pattern", {"view": "pattern", "model": "brown-lstm", "pdoc": "20", "start": "14", "stop": "16",
                 "thkind": "pct", "threshold": "80"},
     "Pattern select and match: the units on over 'and five' (80th percentile) and the phrases that match"),
    ("compare", {"view": "compare", "model": "brown-lstm", "model_b": "brown-gru", "compare": "1"},
     "Brown LSTM vs GRU"),
    ("compare-main", {"view": "main", "model": "brown-lstm", "model_b": "brown-gru", "compare": "1"},
     "Compare mode: memory chips of both models side by side"),
]


def _call(url: str, method: str = "GET") -> dict:
    req = urllib.request.Request(url, data=b"{}" if method == "POST" else None, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def ensure_recordings(base: str, refs: set[str]) -> None:
    for ref in sorted(refs):
        job = _call(f"{base}/api/models/{ref}/record", "POST")
        while job["status"] in ("queued", "running"):
            print(f"  recording {ref}: {job['progress']:.0%} {job.get('message') or ''}", file=sys.stderr)
            time.sleep(5)
            job = _call(f"{base}/api/jobs/{job['id']}")
        if job["status"] != "done":
            raise SystemExit(f"recording {ref} failed: {job.get('error')}")


def settle(page, timeout_s: float) -> None:
    """Wait until no chart is loading or waiting for a job, twice in a row."""
    deadline, calm = time.time() + timeout_s, 0
    busy = "[data-test=chart-loading], [data-test=recording-progress]"
    while time.time() < deadline and calm < 2:
        page.wait_for_timeout(1000)
        calm = calm + 1 if page.locator(busy).count() == 0 else 0
    page.wait_for_timeout(800)  # transitions, word-cloud layout


def main() -> None:
    from playwright.sync_api import sync_playwright

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", help="workspace holding the demo models")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "screenshots"))
    ap.add_argument("--only", nargs="*", help="names of the shots to take (default: all)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds to wait for one view")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shots = [s for s in SHOTS if not args.only or s[0] in args.only]
    with rnnvis.serve(home=args.home, port=0, block=False) as server:
        base = server.url.rstrip("/")
        ensure_recordings(base, {q["model"] for _, q, _ in shots} | {q["model_b"] for _, q, _ in shots
                                                                      if "model_b" in q})
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900}, device_scale_factor=1)
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            for name, query, what in shots:
                t0 = time.time()
                page.goto(f"{base}/?{urllib.parse.urlencode(query)}")
                page.wait_for_selector(f"[data-test=view-{query['view']}]", timeout=60_000)
                settle(page, args.timeout)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(f"{name}.png  {time.time() - t0:5.1f} s  {what}", file=sys.stderr)
            browser.close()
    if errors:
        raise SystemExit(f"console errors while taking screenshots: {errors}")


if __name__ == "__main__":
    main()
