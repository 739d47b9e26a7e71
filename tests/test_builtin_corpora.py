"""Built-in corpora: the agreement generator's bookkeeping and the docs prose."""
from collections import Counter

import pytest

from lmcore.corpus.builtin import (
    AGREEMENT_DEFAULT,
    BUILTIN_CORPORA,
    DEFAULT_CORPUS,
    builtin_text,
    generate_agreement,
    python_docs_text,
)
from lmcore.corpus.builtin.agreement import NOUN_NUMBER

WEIGHTS = (0.35, 0.25, 0.15, 0.1, 0.07, 0.05, 0.03)


@pytest.fixture(scope="module")
def sample():
    return generate_agreement(n_sentences=5000, seed=1, depth_weights=WEIGHTS)


@pytest.fixture(scope="module")
def docs():
    return python_docs_text()


# --- agreement -------------------------------------------------------------

def test_same_seed_same_text_other_seed_other_text():
    a = generate_agreement(n_sentences=300, seed=7)
    assert a == generate_agreement(n_sentences=300, seed=7)
    assert a[0] != generate_agreement(n_sentences=300, seed=8)[0]


def test_text_format(sample):
    text, pairs = sample
    assert text.endswith("\n")
    lines = text.split("\n")[:-1]
    assert len(lines) == len(pairs) == 5000
    for line in lines:
        assert line == line.lower() == line.strip()
        assert "  " not in line and "\t" not in line
        assert line.endswith(" .")


def test_every_pair_matches_the_text(sample):
    text, pairs = sample
    lines = text.split("\n")
    for i, p in enumerate(pairs):
        assert p.line == i
        tokens = lines[p.line].split(" ")
        assert NOUN_NUMBER[tokens[p.subject_index]] is p.plural
        assert tokens[p.verb_index] == p.correct
        assert p.wrong != p.correct and p.wrong not in NOUN_NUMBER
        assert p.distance == p.verb_index - p.subject_index - 1 >= 0


def test_correct_and_wrong_forms_swap_with_number(sample):
    _, pairs = sample
    forms = {(p.correct, p.wrong, p.plural) for p in pairs}
    assert ("are", "is", True) in forms and ("is", "are", False) in forms
    # each verb is consistently the singular or the plural form
    for correct, wrong, plural in forms:
        assert (wrong, correct, not plural) in forms


def test_depth_distribution_follows_weights(sample):
    # The number of attractor phrases equals the number of nouns between
    # subject and verb, so it can be read back from the text.
    text, pairs = sample
    lines = text.split("\n")
    depths = Counter()
    for p in pairs:
        between = lines[p.line].split(" ")[p.subject_index + 1:p.verb_index]
        depths[sum(t in NOUN_NUMBER for t in between)] += 1
    assert set(depths) <= set(range(len(WEIGHTS)))
    for d, w in enumerate(WEIGHTS):
        assert depths[d] / len(pairs) == pytest.approx(w, abs=0.025), (d, depths)


def test_attractors_mostly_disagree_in_number(sample):
    text, pairs = sample
    lines = text.split("\n")
    same = opposite = 0
    for p in pairs:
        for t in lines[p.line].split(" ")[p.subject_index + 1:p.verb_index]:
            if t in NOUN_NUMBER:
                same += NOUN_NUMBER[t] == p.plural
                opposite += NOUN_NUMBER[t] != p.plural
    assert opposite > 1.5 * same


def test_long_distances_occur(sample):
    _, pairs = sample
    distances = Counter(p.distance for p in pairs)
    assert sum(n for d, n in distances.items() if d >= 8) > 250
    assert len(distances) >= 15
    assert 0.4 < sum(p.plural for p in pairs) / len(pairs) < 0.6


def test_depth_zero_only_gives_adjacent_verbs():
    _, pairs = generate_agreement(n_sentences=200, seed=3, depth_weights=(1.0,))
    assert {p.distance for p in pairs} == {0}


def test_bad_weights_are_refused():
    with pytest.raises(ValueError):
        generate_agreement(10, depth_weights=(0.0, 0.0))
    with pytest.raises(ValueError):
        generate_agreement(10, depth_weights=(0.5, -0.1))


def test_default_size_is_150k_to_250k_tokens():
    text = builtin_text("agreement")
    assert 150_000 <= len(text.split()) <= 250_000
    assert len(text.split("\n")) - 1 == AGREEMENT_DEFAULT["n_sentences"]


# --- python docs -------------------------------------------------------------

def test_docs_size_and_cleanliness(docs):
    assert docs.endswith("\n")
    lines = docs.split("\n")[:-1]
    assert len(docs.split()) > 40_000
    assert len(lines) > 1000
    for bad in ("::", "***", "\t", "====", "----", "+---", ">>>"):
        assert bad not in docs, bad
    for line in lines:
        assert line == line.strip() and "  " not in line
        assert 0 < len(line) <= 5000
        assert any(c.isalpha() for c in line), line


def test_docs_keep_known_prose(docs):
    low = docs.lower()
    assert "assert statements are a convenient way" in low
    # quotes around names and *emphasis* are gone, the words stay
    assert "the simple form, assert expression, is equivalent to" in low
    assert '"assert"' not in docs
    assert "*s*" not in docs


def test_docs_deterministic(docs):
    assert python_docs_text() == docs


# --- registry ----------------------------------------------------------------

def test_registry():
    assert set(BUILTIN_CORPORA) == {"agreement", "python-docs"}
    assert DEFAULT_CORPUS in BUILTIN_CORPORA
    assert all(isinstance(v, str) and v and "\n" not in v for v in BUILTIN_CORPORA.values())
    assert builtin_text("python-docs") is builtin_text("python-docs")  # cached


def test_unknown_corpus_names_the_known_ones():
    with pytest.raises(KeyError) as err:
        builtin_text("shakespeare")
    message = str(err.value)
    assert "shakespeare" in message
    assert "agreement" in message and "python-docs" in message


def test_python_docs_has_no_repeated_paragraph():
    # Topics share paragraphs; a repeat would put training text into valid/test.
    lines = python_docs_text().splitlines()
    assert len(lines) == len(set(lines))
