"""Corpora, tokenizers, the registry of built-in real data sets and loaders for the user's own data."""
from .corpus import Corpus, Document, Splits, make_splits
from .registry import (
    DATASETS,
    DatasetSpec,
    fetch_dataset,
    list_datasets,
    load_corpus,
    load_dataset,
)
from .tokenize import (
    CharTokenizer,
    Vocab,
    WordTokenizer,
    make_tokenizer,
    tokenizer_from_json,
)
from .user import load_user_data

__all__ = [
    "Document", "Corpus", "Splits", "make_splits",
    "Vocab", "WordTokenizer", "CharTokenizer", "make_tokenizer", "tokenizer_from_json",
    "DATASETS", "DatasetSpec", "list_datasets", "fetch_dataset", "load_dataset", "load_corpus",
    "load_user_data",
]
