"""Token annotations: hypotheses a unit may track, as one value per token.

Each annotation is a function fn(tokens: list[str]) -> np.ndarray (tokens,) over one document;
`annotate` applies it per document, so no state (an open quote, a bracket) leaks across a
document boundary. Binary annotations return bool arrays, scalar ones float arrays.

Conventions (checked by hand in the tests):
- inside_quotes: tokens between an opening and a closing double quote, both quotes included
  (" toggles; “ opens, ” closes; `` opens and '' closes for PTB-style text).
- bracket_depth: number of ( [ { still open after reading the token — what a causal model can
  know at that step: "(a)" -> 1 1 0. Unmatched closers are ignored (depth never < 0).
- c_string / c_comment / py_string / py_comment: for character-level code, inside a string
  literal (quotes included, backslash escapes honoured) or a comment (// and /* */ in C, # in
  Python; the newline ending a line comment is not part of it). Python triple quotes count.
  A multi-character token is inside when any of its characters is.
- position_in_line: characters since the last newline before the token (0 at a line start; a
  newline token is at the end of its line). Exact at character level; at word level it counts
  the tokens' characters plus `sep` between tokens.
- position_in_sentence: tokens since the last sentence end (. ! ? or a newline); the token after
  the end is 0.
- negation_scope: tokens after a negation word (not no never n't nobody nothing neither nor none
  cannot, or a word ending in n't) up to the next punctuation , . ; : ! ? (exclusive); the
  negation word itself is not in scope. Word level.
- pos_annotations(tags): one binary annotation per coarse (universal) tag from given tags.

Users add their own with `register_annotation(name, fn)`.
"""
from __future__ import annotations

import functools

from typing import Callable, Sequence

import numpy as np

from rnnvis.errors import RnnvisError

Annotation = Callable[[list[str]], np.ndarray]

NEGATIONS = frozenset({"not", "no", "never", "n't", "nobody", "nothing", "neither", "nor", "none", "cannot"})
SCOPE_END = frozenset(",.;:!?")
SENTENCE_END = frozenset({".", "!", "?", "\n"})
OPEN, CLOSE = "([{", ")]}"


def inside_quotes(tokens: list[str]) -> np.ndarray:
    """(tokens,) bool: inside double quotes, the quotes themselves included."""
    out = np.zeros(len(tokens), dtype=bool)
    inside = False
    for t, tok in enumerate(tokens):
        if tok == "``" or tok == "''":
            starts_in = inside
            inside = tok == "``"
            out[t] = True if tok == "``" else starts_in
            continue
        touched = inside
        for ch in tok:
            if ch == '"':
                touched = True
                inside = not inside
            elif ch == "“":
                touched, inside = True, True
            elif ch == "”":
                touched = touched or inside
                inside = False
            elif inside:
                touched = True
        out[t] = touched
    return out


def bracket_depth(tokens: list[str]) -> np.ndarray:
    """(tokens,) float: brackets ( [ { still open after the token."""
    out = np.zeros(len(tokens))
    depth = 0
    for t, tok in enumerate(tokens):
        for ch in tok:
            if ch in OPEN:
                depth += 1
            elif ch in CLOSE and depth > 0:
                depth -= 1
        out[t] = depth
    return out


def code_regions(tokens: list[str], language: str = "c") -> tuple[np.ndarray, np.ndarray]:
    """(in string (tokens,), in comment (tokens,)) bool for code read character by character."""
    if language not in ("c", "python"):
        raise RnnvisError(f"unknown language {language!r}", "use 'c' or 'python'")
    s_any, c_any = _code_regions(tuple(tokens), language)  # strings and comments are asked for in turn
    return s_any.copy(), c_any.copy()


@functools.lru_cache(maxsize=4)
def _code_regions(tokens: tuple[str, ...], language: str) -> tuple[np.ndarray, np.ndarray]:
    text = "".join(tokens)
    n = len(text)
    in_str = np.zeros(n, dtype=bool)
    in_com = np.zeros(n, dtype=bool)
    i = 0
    while i < n:
        ch = text[i]
        two = text[i:i + 2]
        if language == "c" and two == "//" or language == "python" and ch == "#":
            j = text.find("\n", i)
            j = n if j < 0 else j
            in_com[i:j] = True
            i = j
        elif language == "c" and two == "/*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            in_com[i:j] = True
            i = j
        elif ch in "\"'":
            quote = text[i:i + 3] if language == "python" and text[i:i + 3] in ('"""', "'''") else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                if text[j] == "\\":
                    j += 1
                elif text[j] == "\n" and len(quote) == 1:
                    break  # an unterminated one-line string ends at the newline
                j += 1
            j = min(n, j + len(quote) if text.startswith(quote, j) else j)
            in_str[i:j] = True
            i = j
        else:
            i += 1
    # characters -> tokens: a token is inside when any of its characters is (empty tokens never are)
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    s_any, c_any = np.zeros(len(tokens), dtype=bool), np.zeros(len(tokens), dtype=bool)
    full = lengths > 0
    if full.any():
        starts = (np.cumsum(lengths) - lengths)[full]  # strictly increasing, all < n
        s_any[full] = np.logical_or.reduceat(in_str, starts)
        c_any[full] = np.logical_or.reduceat(in_com, starts)
    return s_any, c_any


def position_in_line(tokens: list[str], sep: str = "") -> np.ndarray:
    """(tokens,) float: characters since the last newline before the token."""
    out = np.zeros(len(tokens))
    pos = 0
    for t, tok in enumerate(tokens):
        if t > 0:
            pos += len(sep)
        out[t] = pos
        nl = tok.rfind("\n")
        pos = len(tok) - nl - 1 if nl >= 0 else pos + len(tok)
    return out


def position_in_sentence(tokens: list[str]) -> np.ndarray:
    """(tokens,) float: tokens since the last sentence end (. ! ? newline)."""
    out = np.zeros(len(tokens))
    pos = 0
    for t, tok in enumerate(tokens):
        out[t] = pos
        pos = 0 if tok.strip(" ") in SENTENCE_END or tok.endswith("\n") else pos + 1
    return out


def is_negation(token: str) -> bool:
    low = token.lower()
    return low in NEGATIONS or low.endswith("n't")


def negation_scope(tokens: list[str]) -> np.ndarray:
    """(tokens,) bool: after a negation word, up to the next , . ; : ! ? (word level)."""
    out = np.zeros(len(tokens), dtype=bool)
    active = False
    for t, tok in enumerate(tokens):
        if tok and all(ch in SCOPE_END for ch in tok):
            active = False
            continue
        if is_negation(tok):
            active = True
            continue
        out[t] = active
    return out


# Penn Treebank -> universal coarse tags (others are taken as already coarse, upper-cased).
_PTB = {"NN": "NOUN", "NNS": "NOUN", "NNP": "PROPN", "NNPS": "PROPN", "VB": "VERB", "VBD": "VERB",
        "VBG": "VERB", "VBN": "VERB", "VBP": "VERB", "VBZ": "VERB", "MD": "AUX", "JJ": "ADJ", "JJR": "ADJ",
        "JJS": "ADJ", "RB": "ADV", "RBR": "ADV", "RBS": "ADV", "WRB": "ADV", "PRP": "PRON", "PRP$": "PRON",
        "WP": "PRON", "WP$": "PRON", "DT": "DET", "PDT": "DET", "WDT": "DET", "IN": "ADP", "TO": "PART",
        "RP": "PART", "POS": "PART", "CC": "CCONJ", "CD": "NUM", "UH": "INTJ", "EX": "PRON", "FW": "X",
        "SYM": "SYM", "LS": "X", ".": "PUNCT", ",": "PUNCT", ":": "PUNCT", "``": "PUNCT", "''": "PUNCT",
        "-LRB-": "PUNCT", "-RRB-": "PUNCT", "#": "SYM", "$": "SYM"}


def coarse_tag(tag: str) -> str:
    """Universal coarse tag of a Penn Treebank or universal tag."""
    return _PTB.get(tag, tag.upper())


def coarse_brown_tag(tag: str) -> str:
    """Coarse class of a Brown corpus tag: drop -tl/-hl/-nc, possessive $ and negation *, keep two letters.

    'nns-tl' -> 'nn', 'pp$' -> 'pp', 'bez*' -> 'be'; the tag '*' alone (not, n't) stays '*';
    punctuation tags ('.', ',', '``') stay as they are.
    """
    base = tag.lower().split("-")[0].rstrip("$*")
    if not base:
        return "*"
    return base[:2] if base[:1].isalpha() else base


def pos_annotations(tags: Sequence[str], coarse: bool = True) -> dict[str, np.ndarray]:
    """{'pos=TAG': (tokens,) bool} one binary annotation per (coarse) tag present in `tags`."""
    tags = [coarse_tag(t) if coarse else t for t in tags]
    arr = np.array(tags, dtype=object)
    return {f"pos={t}": arr == t for t in sorted(set(tags))}


ANNOTATIONS: dict[str, Annotation] = {
    "inside_quotes": inside_quotes,
    "bracket_depth": bracket_depth,
    "c_string": lambda toks: code_regions(toks, "c")[0],
    "c_comment": lambda toks: code_regions(toks, "c")[1],
    "py_string": lambda toks: code_regions(toks, "python")[0],
    "py_comment": lambda toks: code_regions(toks, "python")[1],
    "position_in_line": position_in_line,
    "position_in_sentence": position_in_sentence,
    "negation_scope": negation_scope,
}


def register_annotation(name: str, fn: Annotation, overwrite: bool = False) -> None:
    """Add a user annotation fn(tokens: list[str]) -> (tokens,) array to the registry."""
    if not callable(fn):
        raise RnnvisError(f"annotation {name!r} is not callable", "pass a function tokens -> array")
    if name in ANNOTATIONS and not overwrite:
        raise RnnvisError(f"annotation {name!r} already exists", "choose another name or pass overwrite=True")
    ANNOTATIONS[name] = fn


def _documents(n: int, doc_ids: np.ndarray | None) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal doc ids."""
    if doc_ids is None or n == 0:
        return [(0, n)]
    d = np.asarray(doc_ids)
    if d.shape != (n,):
        raise RnnvisError(f"doc_ids has shape {d.shape} for {n} tokens", "pass one document id per token")
    cuts = np.flatnonzero(d[1:] != d[:-1]) + 1
    edges = np.concatenate([[0], cuts, [n]])
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


def annotate(tokens: Sequence[str], names: Sequence[str] | None = None,
             doc_ids: np.ndarray | None = None,
             registry: dict[str, Annotation] | None = None) -> dict[str, np.ndarray]:
    """{name: (tokens,) array} for the named annotations (all registered ones by default), per document."""
    registry = ANNOTATIONS if registry is None else registry
    names = list(registry) if names is None else list(names)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise RnnvisError(f"unknown annotations {unknown}", f"choose from {sorted(registry)} or register_annotation")
    tokens = list(tokens)
    docs = _documents(len(tokens), doc_ids)
    out = {}
    for name in names:
        parts = []
        for a, b in docs:
            v = np.asarray(registry[name](tokens[a:b]))
            if v.shape != (b - a,):
                raise RnnvisError(f"annotation {name!r} returned shape {v.shape} for {b - a} tokens",
                                  "return one value per token")
            parts.append(v)
        out[name] = np.concatenate(parts) if parts else np.zeros(0)
    return out
