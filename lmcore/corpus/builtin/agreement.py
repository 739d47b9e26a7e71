"""A synthetic corpus for long-range subject–verb agreement.

The lecture's argument against the Markov assumption is a sentence like

    the roses in the vase by the door to the kitchen are red .

whose verb ("are") agrees with a subject ("roses") many words back, while the
nearest noun ("kitchen") has the other number. An n-gram model that sees only
the last few words cannot know which form is right; a recurrent model can, if
its memory holds the subject's number long enough.

`generate_agreement` writes such sentences, one a line, and returns with them
the position of every subject and of the verb that must agree with it, so a
probe can compare P(correct form) with P(wrong form) at the verb.

Between subject and verb come `d` *attractor phrases*, each introducing one
noun (an *attractor*) that is usually of the opposite number:

- a prepositional phrase:       "in the vase"
- an object relative clause:    "that the men ... found"   (past tense: no cue)
- a subject relative clause:    "that stood by the door"   (past tense: no cue)

Phrases nest (a prepositional phrase inside a relative clause) or chain
(one after another), so the verb can be ten or more tokens from its subject.
Nothing between subject and verb reveals the subject's number: determiners are
number-neutral ("the", "my", ...) and verbs inside relative clauses are in the
past tense, which English does not inflect for number.

The attractor count `d` is also the number of nouns strictly between subject
and verb, so it can be read back from the text with `NOUN_NUMBER`.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

__all__ = [
    "AGREEMENT_DEFAULT",
    "AgreementPair",
    "NOUN_NUMBER",
    "generate_agreement",
]


@dataclass(frozen=True)
class AgreementPair:
    """Where one sentence's subject and agreeing verb are.

    Indices count tokens of the line split on single spaces.
    """

    line: int           # 0-based line index in the generated text
    subject_index: int  # token index of the subject noun within that line
    verb_index: int     # token index of the verb that must agree
    plural: bool        # number of the subject
    correct: str        # the verb as written (e.g. "are")
    wrong: str          # the same verb with the other number (e.g. "is")
    distance: int       # number of tokens strictly between subject and verb


# ---------------------------------------------------------------------------
# Vocabulary. Every word belongs to exactly one of these lists, so a token's
# role can be read back from the text (the tests rely on this for nouns).
# ---------------------------------------------------------------------------

# (singular, plural); people and animals can see, sleep, find things ...
_ANIMATE = [
    ("man", "men"), ("woman", "women"), ("child", "children"),
    ("boy", "boys"), ("girl", "girls"), ("teacher", "teachers"),
    ("student", "students"), ("doctor", "doctors"), ("farmer", "farmers"),
    ("neighbor", "neighbors"), ("friend", "friends"), ("painter", "painters"),
    ("dog", "dogs"), ("cat", "cats"), ("bird", "birds"), ("mouse", "mice"),
]
# ... things cannot.
_INANIMATE = [
    ("rose", "roses"), ("vase", "vases"), ("door", "doors"),
    ("kitchen", "kitchens"), ("key", "keys"), ("cabinet", "cabinets"),
    ("book", "books"), ("table", "tables"), ("window", "windows"),
    ("house", "houses"), ("garden", "gardens"), ("box", "boxes"),
    ("lamp", "lamps"), ("chair", "chairs"), ("picture", "pictures"),
    ("letter", "letters"), ("shelf", "shelves"), ("knife", "knives"),
    ("wall", "walls"), ("bottle", "bottles"), ("cup", "cups"),
    ("room", "rooms"), ("city", "cities"), ("river", "rivers"),
    ("tree", "trees"), ("car", "cars"), ("road", "roads"), ("bench", "benches"),
]

# token -> True if plural; every noun form in the corpus is a key here.
NOUN_NUMBER: dict[str, bool] = {
    form: plural
    for pairs in (_ANIMATE, _INANIMATE)
    for sg_pl in pairs
    for plural, form in zip((False, True), sg_pl)
}

# Number-neutral determiners: none of them gives away the noun's number.
_DETERMINERS = ["the"] * 6 + ["my", "our", "his", "her", "their"]

_ADJ_ANIMATE = ["happy", "tired", "young", "kind", "hungry", "quiet", "tall", "busy"]
_ADJ_INANIMATE = ["red", "new", "broken", "heavy", "empty", "clean", "bright", "open"]
_ADJ_ANY = ["old", "small", "large", "beautiful", "strange", "famous"]

# Prepositions that make sense after any noun.
_PREPOSITIONS = ["in", "by", "near", "behind", "under", "beside", "next to",
                 "to", "above", "across from", "with", "on", "at", "without"]

# Past-tense transitive verbs for object relatives: "the key that the men found".
# (verb, may its object be animate?)
_PAST_TRANSITIVE = [
    ("found", True), ("saw", True), ("liked", True), ("chose", True),
    ("remembered", True), ("noticed", True), ("described", True),
    ("bought", False), ("painted", False), ("opened", False),
    ("cleaned", False), ("moved", False), ("lost", False), ("kept", False),
]
# Past-tense intransitive verbs for subject relatives: "the men that stood by the door".
_PAST_INTRANS_ANIMATE = ["stood", "sat", "waited", "slept", "lived", "played", "stayed"]
_PAST_INTRANS_INANIMATE = ["stood", "lay", "stayed", "remained", "hung"]

# Main verbs: (singular, plural) present-tense forms that must agree.
_COPULAS = [("is", "are"), ("was", "were"), ("seems", "seem"), ("looks", "look")]
_TRANS_ANIMATE = [("sees", "see"), ("likes", "like"), ("wants", "want"),
                  ("needs", "need"), ("knows", "know"), ("finds", "find"),
                  ("watches", "watch"), ("has", "have")]
_INTRANS_ANIMATE = [("sleeps", "sleep"), ("waits", "wait"), ("smiles", "smile"),
                    ("sings", "sing"), ("runs", "run"), ("laughs", "laugh")]
_INTRANS_INANIMATE = [("belongs", "belong"), ("stands", "stand"), ("remains", "remain")]
_ADVERBS = ["here", "now", "again", "today", "every day", "at night"]

# Optional lead-ins, so the subject is not always the second token.
_PREFIXES = ["i think", "we know that", "she said that", "everyone agrees that",
             "in the morning ,", "today ,", "of course", "he told us that"]

# Relative weight of each attractor-phrase kind.
_P_PREP, _P_OBJ_REL, _P_SUBJ_REL = 0.55, 0.30, 0.15
# Probability that an attractor noun has the opposite number to the subject.
_P_OPPOSITE = 0.7
# Probability that a sentence starts with a lead-in / a noun gets an adjective.
_P_PREFIX, _P_ADJ = 0.15, 0.12

# About 12.5 tokens a sentence with the default depth weights: ~200k tokens.
AGREEMENT_DEFAULT = dict(n_sentences=16000, seed=0)

_DEFAULT_DEPTH_WEIGHTS = (0.35, 0.25, 0.15, 0.1, 0.07, 0.05, 0.03)


class _Writer:
    """Builds one sentence; each method appends tokens and returns nothing."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.tokens: list[str] = []

    def add(self, words: str) -> None:
        self.tokens.extend(words.split(" "))

    def noun_phrase(self, plural: bool, animate: bool | None = None) -> bool:
        """Append "det [adj] noun"; return whether the noun is animate."""
        rng = self.rng
        if animate is None:
            animate = rng.random() < 0.4
        self.add(rng.choice(_DETERMINERS))
        if rng.random() < _P_ADJ:
            pool = _ADJ_ANY + (_ADJ_ANIMATE if animate else _ADJ_INANIMATE)
            self.add(rng.choice(pool))
        sg, pl = rng.choice(_ANIMATE if animate else _INANIMATE)
        self.add(pl if plural else sg)
        return animate

    def attractor_number(self, subject_plural: bool) -> bool:
        return subject_plural != (self.rng.random() < _P_OPPOSITE)

    def modifiers(self, n: int, head_animate: bool, subject_plural: bool,
                  prepositions_only: bool = False) -> None:
        """Append `n` attractor phrases after a noun (each adds one noun)."""
        rng = self.rng
        while n > 0:
            kind = "prep" if prepositions_only else rng.choices(
                ("prep", "obj_rel", "subj_rel"), (_P_PREP, _P_OBJ_REL, _P_SUBJ_REL))[0]
            if kind == "prep":
                # "in the vase"; what follows attaches to "vase" (nested) or
                # to an earlier noun (chained): the string is the same.
                self.add(rng.choice(_PREPOSITIONS))
                head_animate = self.noun_phrase(self.attractor_number(subject_plural))
                n -= 1
            elif kind == "obj_rel":
                # "that the men [near the cabinets] found": the head is the
                # object of the past-tense verb; some phrases nest inside.
                self.add("that")
                self.noun_phrase(self.attractor_number(subject_plural), animate=True)
                inner = rng.randrange(n)  # 0 .. n-1 phrases inside the clause
                self.modifiers(inner, True, subject_plural, prepositions_only=True)
                verbs = [v for v, animate_ok in _PAST_TRANSITIVE
                         if animate_ok or not head_animate]
                self.add(rng.choice(verbs))
                n -= 1 + inner
            else:
                # "that stood by the door": the head is the subject of a
                # past-tense verb, which carries no number.
                self.add("that")
                pool = _PAST_INTRANS_ANIMATE if head_animate else _PAST_INTRANS_INANIMATE
                self.add(rng.choice(pool))
                self.add(rng.choice(_PREPOSITIONS))
                head_animate = self.noun_phrase(self.attractor_number(subject_plural))
                n -= 1

    def predicate(self, plural: bool, animate: bool) -> tuple[str, str]:
        """Append "verb ..." agreeing with the subject; return (correct, wrong)."""
        rng = self.rng
        kinds = ["copula", "trans", "intrans"] if animate else ["copula", "copula", "intrans"]
        kind = rng.choice(kinds)
        if kind == "copula":
            forms = rng.choice(_COPULAS)
        elif kind == "trans":
            forms = rng.choice(_TRANS_ANIMATE)
        else:
            forms = rng.choice(_INTRANS_ANIMATE if animate else _INTRANS_INANIMATE)
        correct, wrong = (forms[1], forms[0]) if plural else forms
        self.add(correct)
        if kind == "copula":
            pool = _ADJ_ANY + (_ADJ_ANIMATE if animate else _ADJ_INANIMATE)
            self.add(rng.choice(pool))
        elif kind == "trans":
            self.noun_phrase(rng.random() < 0.5)
        elif animate:
            if rng.random() < 0.5:
                self.add(rng.choice(_ADVERBS))
        elif correct in ("belongs", "belong"):
            self.add("to")
            self.noun_phrase(rng.random() < 0.5)
        else:
            self.add(rng.choice(_PREPOSITIONS))
            self.noun_phrase(rng.random() < 0.5)
        self.add(".")
        return correct, wrong


def generate_agreement(
    n_sentences: int = 20000,
    seed: int = 0,
    depth_weights: Sequence[float] = _DEFAULT_DEPTH_WEIGHTS,
) -> tuple[str, list[AgreementPair]]:
    """Write `n_sentences` agreement sentences; return (text, one pair per line).

    `depth_weights[d]` is the probability (weights are normalised) that `d`
    attractor phrases stand between subject and verb. The same seed gives the
    same text; the text ends with a newline.
    """
    if n_sentences < 0:
        raise ValueError(f"n_sentences must be >= 0, got {n_sentences}")
    weights = [float(w) for w in depth_weights]
    if not weights or any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError(f"depth_weights must be non-negative with a positive sum, got {depth_weights!r}")

    rng = random.Random(seed)
    depths = range(len(weights))
    lines: list[str] = []
    pairs: list[AgreementPair] = []
    for line in range(n_sentences):
        w = _Writer(rng)
        depth = rng.choices(depths, weights)[0]
        plural = rng.random() < 0.5
        if rng.random() < _P_PREFIX:
            w.add(rng.choice(_PREFIXES))
        animate = w.noun_phrase(plural)
        subject_index = len(w.tokens) - 1
        w.modifiers(depth, animate, plural)
        verb_index = len(w.tokens)
        correct, wrong = w.predicate(plural, animate)
        lines.append(" ".join(w.tokens))
        pairs.append(AgreementPair(
            line=line,
            subject_index=subject_index,
            verb_index=verb_index,
            plural=plural,
            correct=correct,
            wrong=wrong,
            distance=verb_index - subject_index - 1,
        ))
    text = "".join(s + "\n" for s in lines)
    return text, pairs
