"""The `rnnvis` command line. `serve` is the default command.

Every command takes --home DIR (default $RNNVIS_HOME or ~/.rnnvis). Errors a
user can fix are printed on one line and exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence

from .errors import RnnvisError

COMMANDS = ("serve", "demo", "data", "train", "record", "models", "runs", "import-run")


def _add_home(p: argparse.ArgumentParser) -> None:
    p.add_argument("--home", metavar="DIR", help="workspace folder (default: $RNNVIS_HOME or ~/.rnnvis)")


def _add_serve_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1; any other address requires a token)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--token", help="access token required when not bound to localhost (default: generated)")
    p.add_argument("--no-browser", action="store_true", help="accepted for compatibility; rnnvis never opens one")
    p.add_argument("--max-tokens", type=int, metavar="N", help="views read at most N tokens of each split "
                   "(default: the whole split)")
    p.add_argument("--read-timeout", type=float, metavar="S", default=10.0,
                   help="a request must be sent within S seconds, else 408 (default 10)")
    p.add_argument("--deadline", type=float, metavar="S", default=60.0,
                   help="a view's answer must start within S seconds, else 503 and the work goes on in the "
                   "background (default 60)")
    p.add_argument("--cache-mb", type=int, metavar="N", help="memory for view results, in MB (default 512)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnvis",
        description="Visual analysis of recurrent neural networks (RNN, GRU, LSTM). "
        "Run without a command to serve the web app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the web app and JSON API (default command)",
                       description="Serve the web app and its JSON API (OpenAPI at /docs).")
    _add_home(p)
    _add_serve_options(p)

    p = sub.add_parser("demo", help="fetch the demo data, train the demo models once, then serve",
                       description="Fetch the built-in demo corpora, train the demo models (first run "
                       "about 10 minutes on 2 CPU cores; later runs reuse them), then serve the app.")
    _add_home(p)
    _add_serve_options(p)
    p.add_argument("--no-serve", action="store_true", help="prepare the demo models and exit")
    p.add_argument("--only", action="append", metavar="MODEL", help="prepare only this demo model (repeatable)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")

    p = sub.add_parser("data", help="list and fetch built-in data sets",
                       description="List and fetch the built-in real corpora.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    q = dsub.add_parser("list", help="list the built-in data sets, their size and whether fetched")
    _add_home(q)
    q.add_argument("--json", action="store_true", help="print JSON")
    q = dsub.add_parser("get", help="fetch one or more built-in data sets")
    _add_home(q)
    q.add_argument("names", nargs="+", metavar="NAME")
    q = dsub.add_parser("show", help="summarise a built-in data set or a file of your own")
    _add_home(q)
    q.add_argument("ref", metavar="NAME_OR_PATH")
    _add_user_data_options(q)

    p = sub.add_parser("train", help="train a model on a built-in data set or your own file",
                       description="Train a language model or a sequence classifier. Metrics are "
                       "logged in the catalog; checkpoints are saved per epoch and for the best epoch.")
    _add_home(p)
    _add_train_options(p)

    p = sub.add_parser("record", help="record a model's hidden states and statistics over a corpus split",
                       description="Record per-token states and streaming statistics into the workspace. By "
                       "default h of every layer is stored per token (float16) with full-precision keyframes; "
                       "the cell state and every gate of any window are recomputed exactly from the model.")
    _add_home(p)
    p.add_argument("model", metavar="MODEL", help="model name or id (see `rnnvis models`)")
    p.add_argument("--data", help="data set name or path (default: the model's training data)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test", "all"],
                   help="which documents of the data (all: the whole corpus)")
    p.add_argument("--streams", default="*.h", help="comma-separated glob patterns of streams to store per "
                   "token (default *.h; '*' stores c and every gate too)")
    p.add_argument("--word-stats", default="*.h,*.c", help="comma-separated glob patterns of streams with per-word "
                   "statistics (expected response; default *.h,*.c; '*' adds the gates)")
    p.add_argument("--workers", type=int, help="record on a local Dask cluster of this many worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="record on the Dask cluster at this scheduler address "
                   "(e.g. tcp://10.0.0.5:8786); the workspace must be on a filesystem every worker sees")
    p.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--window", type=int, default=200, help="tokens per window for long documents")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-tokens", type=int, help="record exactly this many tokens of the split (or all it has); "
                   "a classifier keeps whole documents: it stops before the one that would pass N")
    p.add_argument("--replace", action="store_true", help="record again even if a recording with the same "
                   "options exists (a damaged one is replaced without it)")
    _add_user_data_options(p)

    p = sub.add_parser("import-run", help="import a run trained elsewhere (CSV of metrics or TensorBoard logs)",
                       description="Import the metric curves of a run trained outside rnnvis into the catalog: "
                       "a CSV with a step column (optional epoch and split columns, then one column per metric) "
                       "or a TensorBoard log directory / event file (scalar summaries).")
    _add_home(p)
    p.add_argument("path", metavar="PATH")
    p.add_argument("--name", help="run name (default: the file or folder name)")
    p.add_argument("--format", dest="run_format", choices=["csv", "tensorboard"],
                   help="default: csv for a .csv file, tensorboard otherwise")
    p.add_argument("--split", default="train", help="split of metrics that name none (default train)")

    p = sub.add_parser("intervene", help="ablate, clamp or scale units and measure the effect against random units",
                       description="Test what units do: set them to zero, their mean or a constant (or scale "
                       "them) inside the recurrence, over the model's view recording of a split, and print the "
                       "change of loss (classifiers: of p(gold) and accuracy) by group, next to the same edit "
                       "of as many random units (the controls). With --text: that text, token by token.")
    _add_home(p)
    p.add_argument("model", metavar="MODEL", help="model name or id")
    p.add_argument("--units", required=True, help="comma-separated units, e.g. 3,17")
    p.add_argument("--layer", type=int, default=0)
    p.add_argument("--what", default="h", help="h, c or gate.<name>, e.g. gate.f (default h)")
    p.add_argument("--direction", default="fwd", choices=["fwd", "bwd"])
    p.add_argument("--stream", help="the stream by name instead (e.g. layer1.fwd.gate.f)")
    p.add_argument("--set", dest="set_to", default="zero", metavar="zero|mean|VALUE",
                   help="what the units become (default zero)")
    p.add_argument("--scale", type=float, help="multiply the units by this factor instead of setting them")
    p.add_argument("--split", help="the split whose view recording is used (default: the model's, test)")
    p.add_argument("--controls", type=int, default=5, help="random-unit control draws (default 5)")
    p.add_argument("--seed", type=int, default=0, help="seed of the control draws")
    p.add_argument("--text", help="measure on this text only, per token")
    p.add_argument("--top", type=int, default=8, help="groups shown per family (default 8)")
    p.add_argument("--json", action="store_true", help="print the JSON of the API instead of a table")

    p = sub.add_parser("models", help="list trained models")
    _add_home(p)
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("runs", help="list training runs and their final metrics")
    _add_home(p)
    p.add_argument("--json", action="store_true")
    return parser


def _add_user_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("your own data (when the data is a file or folder)")
    g.add_argument("--format", dest="fmt", choices=["text", "csv", "jsonl"], help="default: from the suffix")
    g.add_argument("--text-column", default="text", help="CSV/JSONL column holding the text (default: text)")
    g.add_argument("--label-column", help="CSV/JSONL column holding a class label (makes a classification task)")
    g.add_argument("--per-line", action="store_true", help="a text file holds one document per line")


def _add_train_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="built-in data set name (see `rnnvis data list`) or a path")
    p.add_argument("--name", help="model name (default: <data>-<cell>)")
    p.add_argument("--level", choices=["word", "char"], help="tokenization (default: the data set's own)")
    p.add_argument("--task", choices=["lm", "classify"], help="default: classify when the data has labels")
    p.add_argument("--cell", default="lstm", help="rnn, gru or lstm (default lstm)")
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--emb", type=int, default=128, help="embedding size")
    p.add_argument("--hidden", type=int, default=256, help="hidden size")
    p.add_argument("--dropout", type=float, default=0.2)
    p.add_argument("--bidirectional", action="store_true", help="classifiers only")
    p.add_argument("--pooling", default="last", choices=["last", "mean", "max"], help="classifiers only")
    p.add_argument("--max-vocab", type=int, default=10000)
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--lr-schedule", default="plateau", choices=["none", "plateau", "cosine", "step"])
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0 disables)")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--bptt", type=int, default=35, help="language models: tokens per backprop window")
    p.add_argument("--max-train-tokens", type=int, help="cap on training tokens per epoch")
    p.add_argument("--time-budget", type=float, dest="time_budget_s", help="stop after this many seconds")
    p.add_argument("--patience", type=int, default=2, help="early stopping: epochs without improvement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    _add_user_data_options(p)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help")):
        argv = ["serve", *argv]  # serve is the default command
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "data" and not getattr(args, "data_command", None):
        parser.parse_args(["data", "--help"])
    try:
        from . import commands

        return int(getattr(commands, f"cmd_{args.command.replace('-', '_')}")(args) or 0)
    except RnnvisError as exc:
        print(f"rnnvis: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("rnnvis: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed: not an error
        sys.stderr.close()
        return 0


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
