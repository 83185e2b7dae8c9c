"""The command line as a user meets it: help, default command, one-line errors."""
import subprocess
import sys

import pytest

from rnnvis.cli import build_parser, main


def run_cli(*args, home):
    return subprocess.run([sys.executable, "-m", "rnnvis", *args, "--home", str(home)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("cmd", ["serve", "demo", "train", "record", "models", "runs", "import-run"])
def test_every_command_has_help(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    assert "--home" in capsys.readouterr().out


def test_serve_is_the_default_command():
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.port == 8000


def test_unknown_dataset_is_one_line_and_nonzero(tmp_path):
    r = run_cli("data", "get", "no-such-corpus", home=tmp_path)
    assert r.returncode == 2
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and "no-such-corpus" in lines[0] and "known" in lines[0]


def test_missing_training_file_is_a_clear_error(tmp_path):
    r = run_cli("train", "--data", str(tmp_path / "missing.txt"), home=tmp_path)
    assert r.returncode == 2
    assert "missing.txt" in r.stderr and r.stderr.count("\n") == 1
    assert not any((tmp_path / "checkpoints").iterdir())


def test_unknown_cell_type_is_a_clear_error(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the cat sat on the mat\n" * 50)
    r = run_cli("train", "--data", str(text), "--per-line", "--cell", "transformer", home=tmp_path)
    assert r.returncode == 2
    assert "unknown cell type 'transformer'" in r.stderr
    assert not any((tmp_path / "checkpoints").iterdir())


def test_unknown_model_lists_known_ones(tmp_path):
    r = run_cli("record", "nope", home=tmp_path)
    assert r.returncode == 2 and "unknown model 'nope'" in r.stderr


def _one_line_error(r, *needles):
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_empty_corpus_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    _one_line_error(run_cli("train", "--data", str(empty), home=tmp_path), "empty")


def test_csv_without_the_named_column_lists_the_columns(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("review,stars\ngreat film,5\nawful,1\n")
    _one_line_error(run_cli("train", "--data", str(csv), "--text-column", "text", home=tmp_path),
                    "'text'", "review")


def test_corrupted_checkpoint_is_a_clear_error(tmp_path):
    from rnnvis.catalog import Catalog
    from rnnvis.data import load_user_data
    from rnnvis.models import TrainConfig, train
    from rnnvis.workspace import Workspace

    text = tmp_path / "t.txt"
    text.write_text("\n".join(["the cat sat on the mat .", "a dog ran in the park ."] * 10))
    ws = Workspace.open(tmp_path / "home")
    train(load_user_data(text, per_line=True), TrainConfig(name="tiny", emb=4, hidden=4, epochs=1, batch_size=2,
                                                           bptt=4, device="cpu"), ws, Catalog(ws.catalog_path),
          progress=False)
    weights = ws.checkpoints_dir / "tiny" / "best" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # truncated
    r = run_cli("record", "tiny", "--data", str(text), "--per-line", home=tmp_path / "home")
    _one_line_error(r, "model.safetensors")
    assert not any((tmp_path / "home" / "recordings").iterdir())


def test_builtin_data_takes_the_default_options_and_reports_bad_layers(tmp_path):
    # python-stdlib is built in and fetched locally: no network needed
    r = run_cli("train", "--data", "python-stdlib", "--layers", "9", home=tmp_path)
    _one_line_error(r, "layers")


def test_user_data_options_for_a_builtin_are_refused(tmp_path):
    r = run_cli("train", "--data", "python-stdlib", "--label-column", "x", home=tmp_path)
    _one_line_error(r, "label_column")


def test_import_run_from_csv_lands_in_the_catalog(tmp_path):
    import json

    from rnnvis.catalog import Catalog

    csv = tmp_path / "metrics.csv"
    csv.write_text("step,epoch,loss\n1,0,3.5\n2,0,3.1\n3,1,2.8\n")
    r = run_cli("import-run", str(csv), "--name", "outside", home=tmp_path)
    assert r.returncode == 0, r.stderr
    run_id = json.loads(r.stdout)["run_id"]
    series = Catalog(tmp_path / "catalog.sqlite").metric_series(run_id)
    assert [v for _, _, v in series["train"]["loss"]] == [3.5, 3.1, 2.8]
    _one_line_error(run_cli("import-run", str(tmp_path / "missing.csv"), home=tmp_path), "does not exist")
