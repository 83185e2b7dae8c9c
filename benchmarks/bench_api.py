"""Latency of the JSON API of every view, over real HTTP, first request and cached (a script, not a test).

Runs `python -m rnnvis serve --home DIR` on a free loopback port against the demo workspace
(`make demo`; models brown-lstm, brown-gru, movies-lstm, movies-gru, linux-char-lstm):

1. preparation (not timed), in a first server process: make every model's view recording
   (POST /record, then wait for its job), and call every endpoint once, waiting out any 409 job
   (slow analyses are then kept in the catalog, as they are for a user after the first visit);
   the parameters the views need (a word, a document, units) are taken from these answers;
2. measurement, in a fresh server process (empty in-memory caches): for each model, the first
   request of every endpoint ("first": until its answer is not 409), then `--repeats` more
   ("cached").

Prints per endpoint the p50/p95 of the first and of the cached requests (milliseconds) and,
last, `RESULT p95_first_ms=... p95_cached_ms=... non_200=...` over all endpoints and models (non_200:
endpoints whose first answer was an error). The views read each model's whole test split.

    python benchmarks/bench_api.py [--home DIR] [--quick] [--repeats N]

`--quick` takes brown-lstm, brown-gru and movies-lstm and 3 repeats (under a minute once the
recordings exist).
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np

DEMO = ("brown-lstm", "brown-gru", "movies-lstm", "movies-gru", "linux-char-lstm")
QUICK = ("brown-lstm", "brown-gru", "movies-lstm")
PAIRS = (("brown-lstm", "brown-gru"), ("movies-lstm", "movies-gru"))
TYPED = {"word": "the jury said that the city government was not ready for the new plan .",
         "char": "static int foo(struct device *dev)\n{\n\treturn 0;\n}\n"}
REVIEW = "a moving and often funny film , though the ending is not great ."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`rnnvis serve` in a subprocess."""

    def __init__(self, home: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        # the server's log goes to a file: a pipe nobody reads would block it once 64 KB of log piled up
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([sys.executable, "-m", "rnnvis", "serve", "--home", home, "--port",
                                      str(self.port)], stdout=subprocess.DEVNULL, stderr=self.log, env=env,
                                     start_new_session=True)
        self.client = httpx.Client(base_url=self.url, timeout=600)
        deadline = time.time() + 120
        while True:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"the server exited: {self.log.read().decode(errors='replace')[-2000:]}")
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.time() > deadline:
                self.stop()
                raise SystemExit("the server did not start within 120 s")
            time.sleep(0.1)

    def stop(self) -> None:
        self.client.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()

    def call(self, method: str, path: str, body=None, timeout: float = 1800) -> tuple[httpx.Response, float, int]:
        """(answer, seconds until it was not 409, 409s seen): 409 jobs are waited out."""
        t0 = time.perf_counter()
        waits = 0
        while True:
            try:
                r = self.client.request(method, path, json=body)
            except httpx.TransportError:  # the server dropped a kept-alive connection after an error: reconnect
                self.client.close()
                self.client = httpx.Client(base_url=self.url, timeout=600)
                r = self.client.request(method, path, json=body)
            if r.status_code != 409:
                return r, time.perf_counter() - t0, waits
            waits += 1
            job = r.json().get("job") or {}
            if job.get("status") in ("failed", "cancelled"):
                raise SystemExit(f"{path}: job failed: {job.get('error')}")
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"{path}: still 409 after {timeout:.0f} s")
            time.sleep(0.05 if waits < 20 else 0.5)


def wait_job(srv: Server, job: dict, label: str) -> None:
    last = -1.0
    while job["status"] not in ("done", "failed", "cancelled"):
        if job["progress"] - last >= 0.1:
            print(f"  {label}: {job['status']} {job['progress']:.0%} {job.get('message') or ''}", file=sys.stderr)
            last = job["progress"]
        time.sleep(1.0)
        job = srv.client.get(f"/api/jobs/{job['id']}").json()
    if job["status"] != "done":
        raise SystemExit(f"{label}: {job['status']}: {job.get('error')}")


def endpoints(info: dict, p: dict) -> list[tuple[str, str, str, dict | None]]:
    """(name, method, path, body) of every view of one model, given discovered parameters p."""
    ref = info["name"]
    m = f"/api/models/{ref}"
    level = info["level"] if info["level"] in TYPED else "word"
    typed = REVIEW if info["kind"] == "classifier" else TYPED[level]
    out = [
        ("info", "GET", f"{m}/info", None),
        ("cocluster", "GET", f"{m}/cocluster", None),
        ("word", "GET", f"{m}/word?word={quote(p['word'])}", None),
        ("unit", "GET", f"{m}/unit?unit={p['unit']}", None),
        ("documents", "GET", f"{m}/documents", None),
        ("sentence_doc", "POST", f"{m}/sentence", {"doc": p["doc"], "start": 0, "stop": min(60, p["doc_tokens"])}),
        ("sentence_typed", "POST", f"{m}/sentence", {"text": typed}),
        ("saturation", "GET", f"{m}/saturation", None),
        ("radar", "GET", f"{m}/radar?words={quote(','.join(p['words']))}", None),
        ("saliency", "POST", f"{m}/saliency", {"text": typed, "steps": 16}),
        ("projection_units", "GET", f"{m}/projection?what=units", None),
        ("projection_trajectory", "GET",
         f"{m}/projection?what=trajectory&doc={p['doc']}&stop={min(200, p['doc_tokens'])}", None),
        ("discovery", "GET", f"{m}/discovery", None),
        ("pattern_select", "POST", f"{m}/pattern/select",
         {"doc": p["doc"], "start": 2, "stop": 6, "threshold": {"kind": "abs", "value": 0.3}}),
        ("pattern_match", "POST", f"{m}/pattern/match",
         {"units": p["units"], "threshold": {"kind": "abs", "value": 0.3}, "min_fraction": 0.8}),
        ("metrics", "GET", f"{m}/metrics", None),
        ("errors", "GET", f"{m}/errors", None),
        ("training", "GET", f"{m}/training", None),
    ]
    return out


def compare_endpoints(a: str, b: str, doc: int, lm: bool) -> list[tuple[str, str, str, None]]:
    out = [("compare", "GET", f"/api/compare?a={a}&b={b}", None)]
    if lm:  # per-token losses: language models only
        out.append(("compare_tokens", "GET", f"/api/compare/tokens?a={a}&b={b}&doc={doc}", None))
    return out


def discover(srv: Server, ref: str) -> dict:
    """Parameters of the views from the model's own answers: a frequent word, a document, units."""
    cc = srv.call("GET", f"/api/models/{ref}/cocluster")[0].json()
    words = [w["word"] for c in cc["word_clusters"] for w in c["words"][:2] if "," not in w["word"]][:4]
    word = words[0]
    docs = srv.call("GET", f"/api/models/{ref}/documents?limit=20")[0].json()["documents"]
    best = max(docs, key=lambda d: d["tokens"])
    doc = best["doc"]
    sel = srv.call("POST", f"/api/models/{ref}/pattern/select",
                   {"doc": doc, "start": 2, "stop": 6, "threshold": {"kind": "abs", "value": 0.3}})[0]
    units = (sel.json().get("units") or [0])[:8] if sel.status_code == 200 else [0]
    return {"word": word, "words": words, "doc": int(doc), "doc_tokens": int(best["tokens"]), "unit": 0,
            "units": units or [0]}


def prepare(home: str, models: list[str]) -> dict:
    srv = Server(home)
    try:
        have = {m["name"] for m in srv.client.get("/api/models").json()}
        missing = [m for m in models if m not in have]
        if missing:
            raise SystemExit(f"models {missing} are not in {home}: run `rnnvis demo --home {home} --no-serve`")
        for ref in models:
            t = time.perf_counter()
            job = srv.client.post(f"/api/models/{ref}/record").json()
            wait_job(srv, job, f"record {ref}")
            print(f"prepared the view recording of {ref} ({time.perf_counter() - t:.1f}s)", file=sys.stderr)
        params, infos = {}, {}
        for ref in models:
            infos[ref] = srv.call("GET", f"/api/models/{ref}/info")[0].json()
            params[ref] = discover(srv, ref)
            for name, method, path, body in endpoints(infos[ref], params[ref]):
                r, dt, _ = srv.call(method, path, body)
                if r.status_code != 200:
                    print(f"  warning: {ref} {name}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            print(f"warmed the views of {ref}", file=sys.stderr)
        for a, b in PAIRS:
            if a in models and b in models:
                for _, method, path, body in compare_endpoints(a, b, params[a]["doc"],
                                                               infos[a]["kind"] == "lm"):
                    srv.call(method, path, body)
        return {"params": params, "infos": infos}
    finally:
        srv.stop()


def measure(home: str, models: list[str], prep: dict, repeats: int) -> tuple[dict, dict, list[str]]:
    srv = Server(home)
    failed: list[str] = []  # endpoints whose first answer was not 200 (their times are still counted)
    first: dict[str, list[float]] = {}
    cached: dict[str, list[float]] = {}
    try:
        calls = []
        for ref in models:
            calls += [(name, method, path, body) for name, method, path, body in
                      endpoints(prep["infos"][ref], prep["params"][ref])]
        for a, b in PAIRS:
            if a in models and b in models:
                calls += compare_endpoints(a, b, prep["params"][a]["doc"], prep["infos"][a]["kind"] == "lm")
        for name, method, path, body in calls:
            r, dt, waits = srv.call(method, path, body)
            if r.status_code != 200:
                print(f"  warning: {path}: {r.status_code} {r.text[:200]}", file=sys.stderr)
                failed.append(f"{name}:{r.status_code}")
            first.setdefault(name, []).append(dt * 1000)
            for _ in range(repeats):
                r, dt, _ = srv.call(method, path, body)
                cached.setdefault(name, []).append(dt * 1000)
    finally:
        srv.stop()
    return first, cached, failed


def pct(v: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(v), q)) if v else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default=os.environ.get("RNNVIS_HOME", str(Path.home() / ".rnnvis")),
                    help="workspace with the demo models (default $RNNVIS_HOME or ~/.rnnvis)")
    ap.add_argument("--quick", action="store_true", help="3 models, 3 repeats")
    ap.add_argument("--repeats", type=int, help="cached requests per endpoint and model (default 10, quick 3)")
    args = ap.parse_args()
    models = list(QUICK if args.quick else DEMO)
    repeats = args.repeats or (3 if args.quick else 10)
    t0 = time.perf_counter()
    prep = prepare(args.home, models)
    t1 = time.perf_counter()
    first, cached, failed = measure(args.home, models, prep, repeats)
    t2 = time.perf_counter()
    print(f"models: {', '.join(models)}; {repeats} cached repeats; preparation {t1 - t0:.0f}s, "
          f"measurement {t2 - t1:.0f}s")
    print(f"{'endpoint':<24}{'n':>4}{'first p50':>11}{'first p95':>11}{'cached p50':>12}{'cached p95':>12}  (ms)")
    for name in first:
        f, c = first[name], cached.get(name, [])
        print(f"{name:<24}{len(f):>4}{pct(f, 50):>11.1f}{pct(f, 95):>11.1f}{pct(c, 50):>12.1f}{pct(c, 95):>12.1f}")
    all_first = [v for vs in first.values() for v in vs]
    all_cached = [v for vs in cached.values() for v in vs]
    slow = max(first, key=lambda n: max(first[n]))
    print(f"slowest first request: {slow} {max(first[slow]):.0f} ms")
    if failed:
        print(f"answers other than 200: {', '.join(failed)}")
    print(f"RESULT p95_first_ms={pct(all_first, 95):.1f} p95_cached_ms={pct(all_cached, 95):.1f} "
          f"non_200={len(failed)}")


if __name__ == "__main__":
    main()
