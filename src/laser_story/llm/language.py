"""Small English helpers shared by the rule-based planner and the LLM normalisers.

Both planners must agree on where sentences end and how a resolved reference is written into a frame, so
that a plan from either one has the same shape and the benchmark compares like with like.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "prof", "sr", "jr", "mt", "vs", "etc"}
SENTENCE_END = re.compile(r"[.!?]+[\"')\]’”]*(?=\s+|$)")
WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*")

# pronoun -> (gender m/f/n or p for plural, grammatical case; "her" and "it" are ambiguous)
PRONOUNS: dict[str, tuple[str, str]] = {
    "he": ("m", "subj"),
    "him": ("m", "obj"),
    "his": ("m", "poss"),
    "himself": ("m", "refl"),
    "she": ("f", "subj"),
    "her": ("f", "obj|poss"),
    "hers": ("f", "poss_abs"),
    "herself": ("f", "refl"),
    "it": ("n", "subj|obj"),
    "its": ("n", "poss"),
    "itself": ("n", "refl"),
    "they": ("p", "subj"),
    "them": ("p", "obj"),
    "their": ("p", "poss"),
    "theirs": ("p", "poss_abs"),
    "themselves": ("p", "refl"),
}

# First- and second-person words inside a quote: the speaker and the one spoken to (resolved from the words
# outside the quotes; kept apart from PRONOUNS, which are the narrator's third-person references).
DIALOGUE_PRONOUNS = {"i": "first", "me": "first", "my": "first", "mine": "first", "myself": "first",
                     "you": "second", "your": "second", "yours": "second", "yourself": "second"}  # fmt: skip
DIALOGUE_POSSESSIVES = {"my", "mine", "your", "yours"}


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` in order; abbreviations such as "Mr." and "Dr." do not end a sentence, nor does a
    quote followed by its speech verb."""
    text = " ".join(text.split())
    sentences, start = [], 0
    for match in SENTENCE_END.finditer(text):
        before = text[start : match.start()].split()
        if match.group().startswith(".") and before and before[-1].lower().strip("\"'(") in ABBREVIATIONS:
            continue
        if match.group()[-1] in "\"”" and text[match.end() :].lstrip()[:1].islower():
            continue  # '"Can you help me?" he asked.': the quote goes on into its sentence
        sentence = text[start : match.end()].strip()
        if sentence:
            sentences.append(sentence)
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.append(tail)
    return sentences


def words(text: str) -> list[tuple[str, int, int]]:
    """Words with their character spans (apostrophes stay inside: "Tom's")."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def find_word(text: str, phrase: str, start: int = 0) -> tuple[int, int] | None:
    """Span of the next whole-word, case-insensitive occurrence of ``phrase`` at or after ``start``."""
    match = re.compile(rf"(?<![A-Za-z]){re.escape(phrase)}(?![A-Za-z])", re.IGNORECASE).search(text, start)
    return (match.start(), match.end()) if match else None


def join_names(names: Sequence[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def possessive(name: str) -> str:
    return name + "'" if name.endswith("s") and " and " not in name else name + "'s"


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


def render_reference(mention: str, names: Sequence[str], *, next_word: str = "") -> str:
    """How a resolved mention reads in a frame's text: "he" -> "Tom", "their" -> "Tom and Mia's"."""
    joined = join_names(names)
    pronoun = PRONOUNS.get(mention.lower())
    if mention.lower() in DIALOGUE_POSSESSIVES:
        return possessive(joined)
    if pronoun is None:
        return joined
    _, case = pronoun
    if case == "refl":
        return mention
    if case in ("poss", "poss_abs") or (case == "obj|poss" and next_word and next_word.lower() not in NON_NOUNS):
        return possessive(joined)
    return joined


# Words after "her" that show it is an object ("saw her at ...") rather than a possessive ("her hat").
NON_NOUNS = {
    "and", "or", "but", "to", "at", "in", "on", "with", "from", "for", "by", "of", "up", "down", "out", "off",
    "away", "back", "again", "too", "as", "so", "that", "the", "a", "an", "into", "onto", "over", "under",
    "around", "through", "across", "behind", "home", "there", "here", "then", "when", "while", "before",
    "after", "because", "until", "very", "well", "goodbye", "hello", "something", "everything", "nothing",
    "how", "what", "where", "why", "who", "about", "near", "toward", "towards", "along", "best", "now",
    "tightly", "gently", "quickly", "softly", "closely", "happily", "sadly", "loudly",
}  # fmt: skip


def render_frame_text(sentence: str, references: Iterable[tuple[str, Sequence[str]]]) -> str:
    """``sentence`` with each reference, in order of appearance, replaced by the names it resolves to."""
    out, position = [], 0
    for mention, names in references:
        span = find_word(sentence, mention, position)
        if span is None or not names:
            continue
        start, end = span
        following = words(sentence[end:])
        replacement = render_reference(mention, names, next_word=following[0][0] if following else "")
        if not sentence[:start].strip() or sentence[:start].rstrip().endswith(('"', "“")):
            replacement = _capitalise(replacement)
        out.append(sentence[position:start] + replacement)
        position = end
    return "".join(out) + sentence[position:]


def names_in(sentence: str, names: Iterable[str]) -> list[str]:
    """Registry names that appear word-for-word in ``sentence``, in order of appearance."""
    found = []
    for name in names:
        span = find_word(sentence, name)
        if span is not None:
            found.append((span[0], name))
    return [name for _, name in sorted(found)]
