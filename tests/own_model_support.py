"""Users' models as they write them: the standard PyTorch word-language-model shape (time-major,
forward(input, hidden), init_hidden(bsz), tied weights, dropout, flattened log-softmax output),
and small batch-major, packed and bidirectional models; a HuggingFace-style fake tokenizer."""
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TEXTS = ["the cat sat on the mat", "a dog ran in the park", "the bird sang a song", "the dog sat on the cat"] * 3
ITOS = ["<unk>"] + sorted({w for t in TEXTS for w in t.split()})


class WordLM(nn.Module):
    """Time-major word LM in the pytorch/examples style (written here, not copied)."""

    def __init__(self, cell: str, ntoken: int, ninp: int = 8, nlayers: int = 2, dropout: float = 0.3):
        super().__init__()
        self.cell, self.nhid, self.nlayers, self.ntoken = cell, ninp, nlayers, ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        if cell in ("LSTM", "GRU"):
            self.rnn = getattr(nn, cell)(ninp, ninp, nlayers, dropout=dropout)
        else:
            self.rnn = nn.RNN(ninp, ninp, nlayers, nonlinearity=cell[4:].lower(), dropout=dropout)
        self.decoder = nn.Linear(ninp, ntoken)
        self.decoder.weight = self.encoder.weight  # tied: nhid == ninp

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))  # (T, B, E)
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(self.drop(output)).view(-1, self.ntoken)  # (T·B, V)
        return torch.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.cell == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def word_lm(cell: str, seed: int = 0) -> WordLM:
    torch.manual_seed(seed)
    return WordLM(cell, len(ITOS)).eval()


class BatchLM(nn.Module):
    """Batch-major LM returning (logits (B, T, V), state)."""

    def __init__(self, vocab: int, bidirectional: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 6)
        self.rnn = nn.GRU(6, 5, batch_first=True, bidirectional=bidirectional)
        self.out = nn.Linear(10 if bidirectional else 5, vocab)

    def forward(self, ids):
        h, state = self.rnn(self.embedding(ids))
        return self.out(h), state


class TimeBiLM(nn.Module):
    """Time-major bidirectional LSTM LM: ids (T, B) -> logits (T, B, V)."""

    def __init__(self, vocab: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 6)
        self.rnn = nn.LSTM(6, 5, bidirectional=True)
        self.out = nn.Linear(10, vocab)

    def forward(self, ids):
        return self.out(self.rnn(self.embedding(ids))[0])


class PackedClassifier(nn.Module):
    """A classifier that packs its (batch-major) input internally: forward(ids, lengths)."""

    def __init__(self, vocab: int, classes: int = 3):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 6)
        self.rnn = nn.LSTM(6, 5, batch_first=True)
        self.out = nn.Linear(5, classes)

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.rnn(packed)
        h, _ = pad_packed_sequence(h, batch_first=True)
        last = h[torch.arange(h.shape[0]), lengths - 1]  # (B, H)
        return self.out(last)


class FakeHFTokenizer:
    """The interface of a HuggingFace tokenizer object: __call__ -> {"input_ids"}, encode with
    special tokens added by default, decode, get_vocab, vocab_size."""

    def __init__(self, itos):
        self.vocab_list = ["[CLS]"] + list(itos)
        self.stoi = {w: i for i, w in enumerate(self.vocab_list)}
        self.vocab_size = len(self.vocab_list)

    def encode(self, text, add_special_tokens=True):
        ids = [self.stoi.get(w, self.stoi["<unk>"]) for w in text.split()]
        return ([0] if add_special_tokens else []) + ids

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self.encode(text, add_special_tokens), "attention_mask": [1] * len(text.split())}

    def decode(self, ids):
        return " ".join(self.vocab_list[i] for i in ids)

    def get_vocab(self):
        return dict(self.stoi)


class CallOnlyTokenizer:
    """A tokenizer object that is only callable (returns a tensor of ids), with decode and vocab_size."""

    def __init__(self, itos):
        self.itos_ = list(itos)
        self.vocab_size = len(self.itos_)

    def __call__(self, text):
        return torch.tensor([[self.itos_.index(w) if w in self.itos_ else 0 for w in text.split()]])

    def decode(self, ids):
        return " ".join(self.itos_[i] for i in ids)
