"""Token annotations on small hand-checked strings."""
import numpy as np
import pytest

from rnnvis.analysis import (
    ANNOTATIONS,
    annotate,
    bracket_depth,
    code_regions,
    inside_quotes,
    negation_scope,
    pos_annotations,
    position_in_line,
    position_in_sentence,
    register_annotation,
)
from rnnvis.errors import RnnvisError


def bits(a):
    return "".join("1" if x else "0" for x in a)


def test_inside_quotes_char_and_word_level():
    assert bits(inside_quotes(list('a"bc"d'))) == "011110"
    words = ["he", "said", '"', "hi", "there", '"', "ok"]
    assert bits(inside_quotes(words)) == "0011110"
    assert bits(inside_quotes(["“", "yes", "”", "no"])) == "1110"
    assert bits(inside_quotes(["``", "yes", "''", "no"])) == "1110"


def test_bracket_depth_after_each_token():
    assert bracket_depth(list("a(b[c])d")).tolist() == [0, 1, 1, 2, 2, 1, 0, 0]
    assert bracket_depth(list("))(")).tolist() == [0, 0, 1]  # unmatched closers ignored
    assert bracket_depth(["f(x,", "g(y))"]).tolist() == [1, 0]


def test_c_strings_and_comments():
    src = 'x="a//b"; // c\ny=1; /* d */ z'
    s, c = code_regions(list(src), "c")
    expect_s = "".join("1" if 2 <= i <= 7 else "0" for i in range(len(src)))
    assert bits(s) == expect_s
    line_c = src.index("//", 8)
    block = src.index("/*")
    expect_c = "".join("1" if line_c <= i < src.index("\n") or block <= i < block + 7 else "0"
                       for i in range(len(src)))
    assert bits(c) == expect_c


def test_python_strings_comments_and_escapes():
    src = "a='it\\'s' # hi\nb=\"\"\"x\ny\"\"\" #"
    s, c = code_regions(list(src), "python")
    first = src.index("'")
    assert s[first:first + 7].all() and not s[first + 7]  # 'it\'s' including the escape
    tq = src.index('"""')
    assert s[tq:tq + 9].all() and not s[tq + 9]  # triple-quoted string spans the newline
    assert c[src.index("#"):src.index("\n")].all() and not c[src.index("\n")]
    assert c[-1] and not c[tq:tq + 9].any()
    with pytest.raises(RnnvisError):
        code_regions(list("x"), "rust")


def test_positions_in_line_and_sentence():
    assert position_in_line(list("ab\ncd")).tolist() == [0, 1, 2, 0, 1]
    assert position_in_line(["ab", "cd\nx", "y"], sep=" ").tolist() == [0, 3, 2]
    words = ["I", "ran", ".", "It", "rained", "!", "Ok"]
    assert position_in_sentence(words).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_negation_scope_until_punctuation():
    words = ["it", "is", "not", "very", "good", ",", "but", "I", "didn't", "care", "."]
    assert bits(negation_scope(words)) == "00011000010"
    assert bits(negation_scope(["Nobody", "came", "!", "ok"])) == "0100"


def test_pos_annotations_one_per_coarse_tag():
    pos = pos_annotations(["DT", "NN", "VBZ", "NNS", "."])
    assert sorted(pos) == ["pos=DET", "pos=NOUN", "pos=PUNCT", "pos=VERB"]
    assert bits(pos["pos=NOUN"]) == "01010"
    assert sorted(pos_annotations(["noun", "VERB"])) == ["pos=NOUN", "pos=VERB"]


def test_annotate_resets_at_document_boundaries():
    toks = list('(a"b') + list("c)d")
    docs = np.array([0, 0, 0, 0, 1, 1, 1])
    out = annotate(toks, ["bracket_depth", "inside_quotes"], doc_ids=docs)
    assert out["bracket_depth"].tolist() == [1, 1, 1, 1, 0, 0, 0]
    assert bits(out["inside_quotes"]) == "0011000"
    every = annotate(list("ab"))
    assert set(every) == set(ANNOTATIONS)
    with pytest.raises(RnnvisError):
        annotate(toks, ["nope"])


def test_register_user_annotation():
    registry = dict(ANNOTATIONS)
    name = "is_vowel_test"
    register_annotation(name, lambda toks: np.array([t in "aeiou" for t in toks]))
    try:
        assert bits(annotate(list("bae"), [name])[name]) == "011"
        with pytest.raises(RnnvisError):
            register_annotation(name, lambda toks: toks)
        register_annotation(name, lambda toks: np.zeros(1), overwrite=True)
        with pytest.raises(RnnvisError):  # wrong length is caught
            annotate(list("bae"), [name])
        with pytest.raises(RnnvisError):
            register_annotation("x_test", 3)
    finally:
        ANNOTATIONS.clear()
        ANNOTATIONS.update(registry)


def test_coarse_brown_tag():
    from rnnvis.analysis import coarse_brown_tag

    assert coarse_brown_tag("NNS-TL") == "nn"
    assert coarse_brown_tag("pp$") == "pp"
    assert coarse_brown_tag("bez*") == "be"
    assert coarse_brown_tag("*") == "*"
    assert coarse_brown_tag(".") == "."
    assert coarse_brown_tag("``") == "``"
