"""Many clients at once over every view: errors, latency and the server's memory growth (a script, not a test).

Runs `python -m rnnvis serve --home DIR` on a free loopback port against the demo workspace (`make
demo`), through `bench_api`'s server, endpoint list and parameter discovery:

1. preparation: make every model's view recording, then a warm-up pass over every endpoint (409 jobs
   waited out), so that the analyses behind the views exist, as they do for a user after a first visit;
2. RSS of the server at the start (VmRSS of /proc/<pid>/status, after the warm-up);
3. load: `--clients` threads, each sending `--requests` requests drawn (seeded) from the endpoints of
   every model; each typed sentence, saliency and typed trajectory gets a text of its own, so the
   server's caches see a stream of distinct typed texts;
4. RSS at the end (and its peak, sampled every 0.5 s during the load).

Prints per endpoint the count, errors and p50/p95 (milliseconds), and last
`RESULT errors=... p50_ms=... p95_ms=... rss_growth_mb=...`. Goals: 0 errors, RSS growth at most
200 MB, p95 under 1 s for the views whose analyses are cached.

    python benchmarks/bench_load.py [--home DIR] [--clients 20] [--requests 200] [--quick] [--models a,b]

`--quick` takes brown-lstm alone, 4 clients × 25 requests (a check that it works, not a figure).
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_api import DEMO, PAIRS, Server, compare_endpoints, discover, endpoints, pct, wait_job  # noqa: E402

QUICK = ("brown-lstm",)
TYPED_VIEWS = {"sentence_typed", "saliency"}  # POST bodies with a "text"
WORDS = ("the", "a", "city", "jury", "said", "new", "plan", "was", "not", "ready", "film", "good", "great")


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def distinct_text(base: str, level: str, n: int) -> str:
    """`base` made unique by request number `n` (words for word models, characters for char models)."""
    if level == "char":
        return f"{base}/* {n} */\n"
    rng = random.Random(n)
    return f"{base} {' '.join(rng.choice(WORDS) for _ in range(6))} {n} ."


def prepare(srv: Server, models: list[str]) -> tuple[list[tuple], dict]:
    """Record every model, warm every endpoint; return the calls of the load (name, method, path, body,
    level) and the model infos."""
    calls, infos, params = [], {}, {}
    for ref in models:
        t = time.perf_counter()
        job = srv.client.post(f"/api/models/{ref}/record").json()
        wait_job(srv, job, f"record {ref}")
        print(f"view recording of {ref} ready ({time.perf_counter() - t:.1f}s)", file=sys.stderr)
        infos[ref] = srv.call("GET", f"/api/models/{ref}/info")[0].json()
        params[ref] = discover(srv, ref)
        level = infos[ref]["level"]
        for name, method, path, body in endpoints(infos[ref], params[ref]):
            r, _, _ = srv.call(method, path, body)
            if r.status_code != 200:
                print(f"  warning: warm-up {ref} {name}: {r.status_code} {r.text[:200]}", file=sys.stderr)
            calls.append((name, method, path, body, level))
        # a typed trajectory too: a text of its own per request, like the sentence view
        typed = endpoints(infos[ref], params[ref])
        text = next(b["text"] for n, _, _, b in typed if n == "sentence_typed")
        calls.append(("projection_typed", "GET", f"/api/models/{ref}/projection?what=trajectory&text=",
                      {"text": text}, level))
        print(f"warmed the views of {ref}", file=sys.stderr)
    for a, b in PAIRS:
        if a in models and b in models:
            for name, method, path, body in compare_endpoints(a, b, params[a]["doc"], infos[a]["kind"] == "lm"):
                srv.call(method, path, body)
                calls.append((name, method, path, body, "word"))
    return calls, infos


def client(url: str, calls: list[tuple], n: int, seed: int, out: list, counter) -> None:
    """One client: `n` requests drawn from `calls`; appends (name, status, ms) to `out`."""
    rng = random.Random(seed)
    with httpx.Client(base_url=url, timeout=120) as c:
        for _ in range(n):
            name, method, path, body, level = rng.choice(calls)
            k = next(counter)
            if name in TYPED_VIEWS:
                body = {**body, "text": distinct_text(body["text"], level, k)}
            elif name == "projection_typed":
                path, body = path + quote(distinct_text(body["text"], level, k)), None
            t = time.perf_counter()
            try:
                status = c.request(method, path, json=body).status_code
            except httpx.HTTPError as e:  # a dropped connection or a timeout is an error too
                status = f"{type(e).__name__}"
            out.append((name, status, (time.perf_counter() - t) * 1000))


def main() -> None:
    import itertools

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--home", default=os.environ.get("RNNVIS_HOME", str(Path.home() / ".rnnvis")),
                    help="workspace with the demo models (default $RNNVIS_HOME or ~/.rnnvis)")
    ap.add_argument("--clients", type=int, help="concurrent clients (default 20, quick 4)")
    ap.add_argument("--requests", type=int, help="requests per client (default 200, quick 25)")
    ap.add_argument("--quick", action="store_true", help="brown-lstm alone, 4 clients x 25 requests")
    ap.add_argument("--models", help="comma-separated model names (default: the demo models)")
    args = ap.parse_args()
    models = args.models.split(",") if args.models else list(QUICK if args.quick else DEMO)
    n_clients = args.clients or (4 if args.quick else 20)
    n_requests = args.requests or (25 if args.quick else 200)

    srv = Server(args.home)
    try:
        have = {m["name"] for m in srv.client.get("/api/models").json()}
        missing = [m for m in models if m not in have]
        if missing:
            raise SystemExit(f"models {missing} are not in {args.home}: run `rnnvis demo --home {args.home} --no-serve`")
        t0 = time.perf_counter()
        calls, _ = prepare(srv, models)
        rss0 = rss_mb(srv.proc.pid)
        peak = [rss0]
        done = threading.Event()

        def sample():
            while not done.wait(0.5):
                peak[0] = max(peak[0], rss_mb(srv.proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        results: list[tuple] = []
        counter = itertools.count()
        t1 = time.perf_counter()
        threads = [threading.Thread(target=client, args=(srv.url, calls, n_requests, i, results, counter))
                   for i in range(n_clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t2 = time.perf_counter()
        done.set()
        sampler.join()
        rss1 = rss_mb(srv.proc.pid)
    finally:
        srv.stop()

    by_name: dict[str, list[tuple]] = {}
    for name, status, ms in results:
        by_name.setdefault(name, []).append((status, ms))
    print(f"models: {', '.join(models)}; {n_clients} clients x {n_requests} requests; preparation {t1 - t0:.0f}s, "
          f"load {t2 - t1:.0f}s ({len(results) / max(t2 - t1, 1e-9):.1f} requests/s)")
    print(f"{'endpoint':<24}{'n':>6}{'errors':>8}{'p50':>10}{'p95':>10}  (ms)")
    for name, rows in sorted(by_name.items()):
        ms = [m for _, m in rows]
        errs = sum(1 for s, _ in rows if s != 200)
        print(f"{name:<24}{len(rows):>6}{errs:>8}{pct(ms, 50):>10.1f}{pct(ms, 95):>10.1f}")
    errors = [(n, s) for n, s, _ in results if s != 200]
    if errors:
        kinds: dict[str, int] = {}
        for n, s in errors:
            kinds[f"{n}:{s}"] = kinds.get(f"{n}:{s}", 0) + 1
        print("errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items())))
    all_ms = [m for _, _, m in results]
    print(f"server RSS: {rss0:.0f} MB after the warm-up, {rss1:.0f} MB at the end, peak {peak[0]:.0f} MB")
    print(f"RESULT errors={len(errors)} p50_ms={pct(all_ms, 50):.1f} p95_ms={pct(all_ms, 95):.1f} "
          f"rss_growth_mb={rss1 - rss0:.1f}")


if __name__ == "__main__":
    main()
