"""Implementations of the CLI commands: thin wrappers over the Python API."""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys

from .catalog import Catalog
from .cli import print_json
from .errors import RnnvisError
from .workspace import Workspace


def _open(args: argparse.Namespace) -> tuple[Workspace, Catalog]:
    from .heal import heal_and_log

    ws = Workspace.open(getattr(args, "home", None))
    catalog = Catalog(ws.catalog_path)
    heal_and_log(ws, catalog)  # once per command: stale runs, leftover temporaries, a new catalog's rescan
    return ws, catalog


def _user_data_options(args: argparse.Namespace) -> dict:
    """Only the options the user set, so built-in data sets (which take none) accept the defaults."""
    opts = {}
    if args.text_column != "text":
        opts["text_column"] = args.text_column
    if args.per_line:
        opts["per_line"] = True
    if args.fmt:
        opts["fmt"] = args.fmt
    if args.label_column:
        opts["label_column"] = args.label_column
    return opts


def _fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return "?"


# -- data ---------------------------------------------------------------------------
def cmd_data(args: argparse.Namespace) -> int:
    from .data import fetch_dataset, list_datasets, load_corpus

    ws, cat = _open(args)
    if args.data_command == "list":
        rows = list_datasets(ws)
        if args.json:
            print_json(rows)
            return 0
        print(f"{'name':<15} {'level':<5} {'task':<8} {'size':>9}  {'fetched':<7}  {'client':<6} source")
        for r in rows:
            print(f"{r['name']:<15} {r['level']:<5} {r['task']:<8} {_fmt_bytes(r.get('size_bytes')):>9}  "
                  f"{'yes' if r['fetched'] else 'no':<7}  {r['client']:<6} {r['package']}")
        print(f"\nworkspace: {ws.home}   fetch with: rnnvis data get NAME")
        return 0
    if args.data_command == "get":
        failed = []
        for name in args.names:
            try:
                path = fetch_dataset(name, ws, catalog=cat, log=lambda m: print(m, file=sys.stderr))
                print(f"{name}: {path}")
            except RnnvisError as exc:  # one data set failing must not stop the others
                print(f"rnnvis: error: {name}: {exc}", file=sys.stderr)
                failed.append(name)
        return 2 if failed else 0
    if args.data_command == "show":
        corpus = load_corpus(args.ref, ws, catalog=cat, **_user_data_options(args))
        n_words = sum(len(d.words()) for d in corpus.documents)
        n_chars = sum(len(d.chars()) for d in corpus.documents)
        print_json({"name": corpus.name, "documents": len(corpus), "words": n_words, "characters": n_chars,
                    "level": corpus.level, "task": corpus.task, "label_names": corpus.label_names,
                    "info": corpus.info})
        return 0
    raise RnnvisError(f"unknown data action {args.data_command!r}", "use list, get or show")


# -- training -----------------------------------------------------------------------
def cmd_train(args: argparse.Namespace) -> int:
    from .data import load_corpus
    from .models import TrainConfig, train

    ws, cat = _open(args)
    corpus = load_corpus(args.data, ws, catalog=cat, **_user_data_options(args))
    level = args.level or corpus.level
    task = args.task or corpus.task
    if task == "classify" and corpus.task != "classify":
        raise RnnvisError(f"the data {args.data!r} has no labels, so it cannot train a classifier",
                          "give --label-column for CSV/JSONL data, or use --task lm")
    # --name '' is refused by TrainConfig.validate, not replaced by the default name
    config = TrainConfig(
        name=f"{corpus.name}-{args.cell}" if args.name is None else args.name, task=task, level=level,
        cell=args.cell,
        layers=args.layers, emb=args.emb, hidden=args.hidden, dropout=args.dropout,
        bidirectional=args.bidirectional, pooling=args.pooling, max_vocab=args.max_vocab,
        min_count=args.min_count, optimizer=args.optimizer, lr=args.lr, lr_schedule=args.lr_schedule,
        clip=args.clip, epochs=args.epochs, batch_size=args.batch_size, bptt=args.bptt,
        max_train_tokens=args.max_train_tokens, time_budget_s=args.time_budget_s, patience=args.patience,
        seed=args.seed, device=args.device,
    )
    result = train(corpus, config, ws, cat, progress=True)
    print_json({"run_id": result.run_id, "model_id": result.model_id,
                "checkpoint": str(result.checkpoint_path), "metrics": result.metrics,
                "epochs_run": result.epochs_run, "interrupted": result.interrupted})
    return 130 if result.interrupted else 0


# -- catalog listings ------------------------------------------------------------------
def cmd_models(args: argparse.Namespace) -> int:
    _, cat = _open(args)
    rows = cat.models()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no models yet: train one with `rnnvis train` or run `rnnvis demo`")
    for m in rows:
        test = m["metrics"].get("test", {})
        fig = ", ".join(f"{k}={v:.4g}" for k, v in test.items() if isinstance(v, (int, float)))
        print(f"{m['id'][:12]}  {m['name']:<22} {m['kind']:<10} {m['tag'] or '':<5} epoch={m['epoch']}  {fig}")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    _, cat = _open(args)
    rows = cat.runs()
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no training runs yet")
    best = {m["run_id"]: m for m in cat.models() if m["tag"] == "best"}
    for r in rows:
        test = best.get(r["id"], {}).get("metrics", {}).get("test", {})
        key = next((k for k in ("bpc", "ppl", "accuracy") if k in test), None)
        fig = f"test {key}={test[key]:.4g}" if key else ""
        print(f"{r['id']:>4}  {r['name']:<22} {r['status']:<9} {r['source']:<11} {fig}")
    return 0


def cmd_import_run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .importrun import import_csv, import_tensorboard

    _, cat = _open(args)
    path = Path(args.path)
    if not path.exists():
        raise RnnvisError(f"{path} does not exist", "give a metrics CSV or a TensorBoard log directory")
    fmt = args.run_format or ("csv" if path.suffix.lower() == ".csv" else "tensorboard")
    do = import_csv if fmt == "csv" else import_tensorboard
    run = do(cat, path, name=args.name, split=args.split)
    print_json(dataclasses.asdict(run))
    return 0


# -- recording ----------------------------------------------------------------------
def _patterns(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())


def cmd_record(args: argparse.Namespace) -> int:
    from .recorder import record_model

    ws, cat = _open(args)
    store = record_model(
        args.model, ws, cat, data=args.data, split=args.split,
        store_streams=_patterns(args.streams), word_stats=_patterns(args.word_stats),
        dtype=args.dtype, window=args.window, batch_size=args.batch_size, device=args.device,
        max_tokens=args.max_tokens, data_options=_user_data_options(args), progress=True,
        workers=args.workers, scheduler=args.scheduler, replace=getattr(args, "replace", False),
        log=lambda m: print(f"rnnvis: {m}", file=sys.stderr, flush=True),
    )
    print_json({"path": str(store.path), "tokens": store.n_tokens, "streams": store.streams})
    return 0


# -- interventions --------------------------------------------------------------------
def _edit_mode(args: argparse.Namespace) -> tuple[str, float | None]:
    if args.scale is not None:
        return "scale", args.scale
    if args.set_to in ("zero", "mean"):
        return args.set_to, None
    try:
        return "value", float(args.set_to)
    except ValueError:
        raise RnnvisError(f"--set {args.set_to!r} is neither zero, mean nor a number",
                          "e.g. --set mean or --set 0.5") from None


def _effect_row(g: dict) -> str:
    def f(v, w=8, d=3):
        return f"{v:>{w}.{d}f}" if v is not None else f"{'-':>{w}}"
    name = f"{g['family']}: {g['name']}" if g["family"] != "all" else "all"
    z = g.get("z")
    return (f"{name[:34]:<34} {g['tokens']:>8,} {f(g['before'])} {f(g['delta'], 9)} "
            f"{f(g['control_mean'], 9)} ± {f(g['control_std'], 6)} {f(g['excess'], 9)} {f(z, 7, 1)}")


def cmd_intervene(args: argparse.Namespace) -> int:
    from .explore.interventions import intervene

    ws, _ = _open(args)
    mode, value = _edit_mode(args)
    out = intervene(args.model, args.units, split=args.split, stream=args.stream, layer=args.layer, what=args.what,
                    direction=args.direction, mode=mode, value=value, controls=args.controls, seed=args.seed,
                    text=args.text, home=ws.home)
    if args.json:
        print_json(out)
        return 0
    what = f"{out['mode']}{'' if out['value'] is None else ' ' + str(out['value'])}"
    units = ",".join(str(u) for u in out["units"])
    if args.text is not None:
        print(f"{what} of units {units} of {out['stream']} on {out['model']}; Δ = change of the loss of each token")
        if out["kind"] == "classifier":
            print(f"p(class) before {out['before']}  after {out['after']}")
            return 0
        ctrl = out["control_delta"] or [None] * len(out["tokens"])
        for t, b, d, c in zip(out["tokens"], out["loss_before"], out["delta"], ctrl):
            cs = "" if c is None else f"  control Δ {c:+.3f}"
            print(f"{t!r:>16} " + ("" if b is None else f"loss {b:.3f}  Δ {d:+.3f}{cs}"))
        return 0
    measure = "loss" if out["measure"] == "loss" else "acc"
    print(f"{what} of units {units} of {out['stream']} on {out['model']} ({out['split']}), {out['tokens']:,} "
          f"{'tokens' if out['kind'] == 'lm' else 'examples'}; controls: {out['controls']} draws of "
          f"{len(out['units'])} random units")
    print(f"{'group':<34} {'n':>8} {measure:>8} {'Δ' + out['measure']:>9} {'control Δ':>9}   {'sd':>6} "
          f"{'excess':>9} {'z':>7}")
    if out["overall"]:
        print(_effect_row(out["overall"]))
    for fam, rows in out["groups"].items():
        for g in rows[:args.top]:
            print(_effect_row(g))
    return 0


# -- demo and server ------------------------------------------------------------------
def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import prepare_demo

    ws, cat = _open(args)
    rows = prepare_demo(ws, cat, only=args.only, device=args.device)
    _prepare_view_recordings(ws, cat, [r["model"] for r in rows if r["status"] == "ready"],
                             getattr(args, "max_tokens", None))
    if args.no_serve:
        return 0
    return cmd_serve(args)


def _prepare_view_recordings(ws: Workspace, cat, names: list[str], max_tokens: int | None = None) -> None:
    """Make the web app's view recording of each demo model now (once; cached), so that the first
    visit to a model does not wait for it."""
    from .explore.session import Explorer

    ex = Explorer(ws, cat, warm=False, max_tokens=max_tokens)
    try:
        for name in names:
            job = ex.jobs.wait(ex.start_recording(name).id)
            if job.status != "done":
                err = job.error or {}
                raise RnnvisError(f"the view recording of {name} failed: {err.get('error', job.status)}",
                                  err.get("fix") or "run `rnnvis demo` again")
            print(f"rnnvis: view recording of {name} ready", file=sys.stderr, flush=True)
    finally:
        ex.jobs.shutdown()


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve

    for flag, value in (("--read-timeout", args.read_timeout), ("--deadline", args.deadline)):
        if not math.isfinite(value) or not 0 < value <= 86400:
            raise RnnvisError(f"{flag} {value} is out of range", f"give {flag} a number of seconds in (0, 86400]")
    if args.cache_mb is not None and not 0 <= args.cache_mb <= 1 << 20:
        raise RnnvisError(f"--cache-mb {args.cache_mb} is out of range", "give a size in MB from 0 to 1048576")
    ws = Workspace.open(getattr(args, "home", None))
    serve(ws, host=args.host, port=args.port, token=args.token, max_tokens=args.max_tokens,
          read_timeout=args.read_timeout, deadline=args.deadline,
          cache_bytes=None if args.cache_mb is None else args.cache_mb << 20)
    return 0
