"""`rnnvis demo` makes each model's view recording before serving, so a first visit does not wait."""
import pytest

from rnnvis.commands import _prepare_view_recordings
from rnnvis.errors import NotFound


def test_view_recordings_are_made_once_and_found_by_the_server(ws, catalog, tmp_path, one_thread):
    from rnnvis.data import load_user_data
    from rnnvis.explore.session import Explorer
    from rnnvis.models import TrainConfig, train

    text = tmp_path / "lines.txt"
    text.write_text("\n".join(["the cat sat on the mat .", "a dog ran in the park ."] * 12))
    train(load_user_data(text, per_line=True, name="lines"),
          TrainConfig(name="tiny", emb=4, hidden=6, epochs=1, batch_size=2, bptt=4, device="cpu"), ws, catalog,
          progress=False)
    assert catalog.recordings() == []
    _prepare_view_recordings(ws, catalog, ["tiny"])
    assert len(catalog.recordings()) == 1
    assert catalog.recordings()[0]["options"]["max_tokens"] is None  # the whole test split, as the server reads
    ex = Explorer(ws, catalog, warm=False)  # what the server builds: the store is ready, no job, no 409
    try:
        assert ex.store("tiny").n_tokens > 0
        assert ex.jobs.list() == []
    finally:
        ex.jobs.shutdown()
    _prepare_view_recordings(ws, catalog, ["tiny"])  # a second demo run records nothing new
    assert len(catalog.recordings()) == 1
    with pytest.raises(NotFound):
        _prepare_view_recordings(ws, catalog, ["no-such-model"])
