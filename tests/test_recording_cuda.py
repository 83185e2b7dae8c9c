"""On a CUDA device: both methods run there and agree with the CPU recording (skipped without GPU)."""
from __future__ import annotations


import numpy as np
import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence


from rnnvis.recording import record, record_corpus

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True)
def _no_tf32():
    """cuDNN may use TF32 (10-bit mantissa) by default; compare in full float32."""
    old = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = old


@pytest.mark.parametrize("method", ["scan", "batched", None])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_cuda_matches_cpu(kind, method):
    torch.manual_seed(0)
    cls = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[kind]
    m = cls(3, 8, num_layers=2, bidirectional=True, batch_first=True).eval()
    x = torch.randn(4, 6, 3)
    lengths = torch.tensor([6, 2, 5, 3])
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    _, ref = record(m, packed, method="scan")
    m_gpu = m.cuda()
    _, got = record(m_gpu, pack_padded_sequence(x.cuda(), lengths, batch_first=True, enforce_sorted=False), method=method)
    assert sorted(got.streams) == sorted(ref.streams)
    for name in ref.streams:
        np.testing.assert_allclose(got[name], ref[name], atol=2e-4, err_msg=name)


def test_cuda_corpus_recording(tmp_path):
    torch.manual_seed(1)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.rnn, self.dec = nn.Embedding(50, 8), nn.LSTM(8, 16, 2, batch_first=True), nn.Linear(16, 50)

        def forward(self, ids):
            return self.dec(self.rnn(self.emb(ids))[0])

    model = LM().eval()
    batches = [{"ids": torch.randint(0, 50, (4, 9)), "lengths": torch.tensor([9, 3, 7, 9]),
                "doc_ids": torch.arange(4) + 4 * i, "start_pos": torch.zeros(4, dtype=torch.long)} for i in range(3)]
    cpu = record_corpus(model, batches, tmp_path / "cpu", vocab_size=50, progress=False, dtype="float32")
    gpu = record_corpus(model.cuda(), batches, tmp_path / "gpu", vocab_size=50, progress=False, dtype="float32")
    assert gpu.meta["method"] == "batched" and cpu.meta["method"] == "scan"
    for name in cpu.streams:
        np.testing.assert_allclose(gpu.read(name), cpu.read(name), atol=2e-4, err_msg=name)
        np.testing.assert_allclose(gpu.stats[name].words.mean.numpy(), cpu.stats[name].words.mean.numpy(), atol=2e-4)
    np.testing.assert_allclose(gpu.output("loss"), cpu.output("loss"), rtol=1e-4)
