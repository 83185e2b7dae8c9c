"""Importing external training runs (CSV, TensorBoard event files) into the catalog."""
import struct

import numpy as np
import pytest

from rnnvis.analysis.dynamics import training_curves
from rnnvis.catalog import Catalog
from rnnvis.errors import RnnvisError
from rnnvis.importrun import crc32c, crc32c_py, import_csv, import_tensorboard, masked_crc, parse_event, read_records


def test_csv_import_round_trips_into_the_catalog(tmp_path):
    csv = tmp_path / "run1.csv"
    csv.write_text("step,epoch,split,loss,acc\n"
                   "10,0.5,train,2.5,0.1\n"
                   "20,1,train,2.0,\n"
                   "20,1,valid,2.2,0.3\n"
                   "30,1.5,train,nan,0.4\n")
    cat = Catalog(tmp_path / "c.sqlite")
    r = import_csv(cat, csv, config={"lr": 0.1})
    assert r.points == 6 and r.skipped == 2 and r.splits == ("train", "valid") and r.keys == ("acc", "loss")
    run = cat.get_run(r.run_id)
    assert run["source"] == "csv" and run["status"] == "finished" and run["name"] == "run1"
    assert run["config"]["lr"] == 0.1
    series = cat.metric_series(r.run_id)
    assert series["train"]["loss"] == [(10, 0.5, 2.5), (20, 1.0, 2.0)]
    assert series["train"]["acc"] == [(10, 0.5, 0.1), (30, 1.5, 0.4)]
    assert series["valid"] == {"loss": [(20, 1.0, 2.2)], "acc": [(20, 1.0, 0.3)]}
    curves = training_curves(series)
    assert curves.splits == ("train", "valid") and curves.get("train", "loss").best() == (20, 2.0)
    assert curves.get("train", "acc").step.tolist() == [10, 30] and len(curves.rows()) == 6


def test_csv_errors_name_the_columns_and_leave_the_catalog_untouched(tmp_path):
    cat = Catalog(tmp_path / "c.sqlite")
    bad = tmp_path / "bad.csv"
    bad.write_text("iteration,loss\n1,2.0\n")
    with pytest.raises(RnnvisError, match=r"no 'step' column.*iteration"):
        import_csv(cat, bad)
    bad.write_text("step,loss,acc\n1,2.0,0.5\n2,oops,0.6\n")
    with pytest.raises(RnnvisError, match=r"line 3.*'loss'.*oops"):
        import_csv(cat, bad)
    bad.write_text("step,loss\n1.5,2.0\n")
    with pytest.raises(RnnvisError, match="not an integer"):
        import_csv(cat, bad)
    assert cat.runs() == []


# -- a tiny TensorBoard event writer, independent of the reader ------------------------------
def _varint(n):
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num, wire, payload):
    key = _varint(num << 3 | wire)
    return key + (_varint(len(payload)) + payload if wire == 2 else payload)


def _event(step, scalars):
    values = b"".join(_field(1, 2, _field(1, 2, tag.encode()) + _field(2, 5, struct.pack("<f", v)))
                      for tag, v in scalars)
    return (_field(1, 1, struct.pack("<d", 1.7e9)) + _field(2, 0, _varint(step))
            + _field(5, 2, values))


def _write_events(path, events):
    with open(path, "wb") as f:
        for data in [_field(3, 2, b"brain.Event:2")] + events:
            head = struct.pack("<Q", len(data))
            f.write(head + struct.pack("<I", masked_crc(head)) + data + struct.pack("<I", masked_crc(data)))


def test_crc32c_known_value():
    assert crc32c(b"123456789") == crc32c_py(b"123456789") == 0xE3069283
    data = bytes(range(256)) * 3
    assert crc32c(data) == crc32c_py(data)


def test_tensorboard_import(tmp_path):
    logs = tmp_path / "logs"
    (logs / "valid").mkdir(parents=True)
    _write_events(logs / "events.out.tfevents.1.host", [
        _event(1, [("train/loss", 3.0), ("lr", 0.5)]), _event(2, [("loss/train", 2.0)])])
    _write_events(logs / "valid" / "events.out.tfevents.2.host", [_event(2, [("loss", 2.5)])])
    assert parse_event(_event(7, [("a", 1.5)])) == (7, [("a", 1.5)])
    assert len(list(read_records(logs / "events.out.tfevents.1.host", verify_data=True))) == 3
    cat = Catalog(tmp_path / "c.sqlite")
    r = import_tensorboard(cat, logs, name="tb")
    assert r.points == 4 and r.splits == ("train", "valid")
    s = cat.metric_series(r.run_id)
    assert s["train"]["loss"] == [(1, None, 3.0), (2, None, 2.0)]
    assert s["train"]["lr"] == [(1, None, 0.5)] and s["valid"]["loss"] == [(2, None, 2.5)]
    assert cat.get_run(r.run_id)["source"] == "tensorboard"
    junk = tmp_path / "junk" / "events.out.tfevents.3"
    junk.parent.mkdir()
    junk.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    with pytest.raises(RnnvisError, match="corrupt"):
        list(read_records(junk))  # our reader (tensorboard's, when installed, only logs bad records)
    with pytest.raises(RnnvisError, match="no TensorBoard event files"):
        import_tensorboard(cat, tmp_path / "nothing")
