"""Editing an image's caption by a described change: "the star turns blue" on "a large red star on the left"
gives "a large blue star on the left".

This is how the rule-based planner animates a given image: P0 is the image's caption, and each later keyframe
is that caption with the change applied to the object named, so everything the description does not touch
stays word for word (what LASER's injection is meant to keep). A stage that names no object of the caption,
or no change these rules know (colour, shape noun, size, position), gives None and the planner falls back to
its general rules. Pure Python.
"""

from __future__ import annotations

import dataclasses
import re

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "black", "white", "brown", "grey", "gray",
           "gold", "silver")  # fmt: skip
SIZES = {"small": "small", "little": "small", "tiny": "small", "medium": "medium", "medium-sized": "medium",
         "mid-sized": "medium", "large": "large", "big": "large", "huge": "large"}  # fmt: skip
SIZE_ORDER = ("small", "medium", "large")
GROW = {"grows": 1, "grow": 1, "expands": 1, "enlarges": 1, "shrinks": -1, "shrink": -1}
BIGGER = {"bigger": 1, "larger": 1, "smaller": -1}
SHAPES = ("circle", "square", "triangle", "star", "cross", "heart")
VERBS = ("turns", "becomes", "changes", "goes", "grows", "shrinks", "moves", "slides", "drifts", "jumps", "travels",
         "shifts", "gets", "is")  # fmt: skip
# position words -> (row, column); None leaves that axis as it is
DIRECTIONS = {
    "left": (None, "left"), "right": (None, "right"), "up": ("top", None), "top": ("top", None), "upper": ("top", None),
    "down": ("bottom", None), "bottom": ("bottom", None), "lower": ("bottom", None), "centre": ("center", "center"),
    "center": ("center", "center"), "middle": ("center", "center"),
}  # fmt: skip
PHRASES = {
    "top left": "in the top left corner", "top": "at the top", "top right": "in the top right corner",
    "left": "on the left", "center": "in the center", "right": "on the right",
    "bottom left": "in the bottom left corner", "bottom": "at the bottom", "bottom right": "in the bottom right corner",
}  # fmt: skip
POSITION_PHRASE = re.compile(
    r"\b(?:in|at|on|to|near)\s+the\s+(?:(?:top|bottom|upper|lower)\s+(?:left|right)(?:\s+corner)?|top(?:\s+cent(?:er|re))?"
    r"|bottom(?:\s+cent(?:er|re))?|left|right|cent(?:er|re)|middle)\b",
    re.I,
)


@dataclasses.dataclass(frozen=True)
class Edit:
    caption: str
    looks: bool  # colour changed
    pose: bool  # shape, size or position changed
    noun: str  # the object the edit applied to (what "it" means next)


def _position(phrase: str | None) -> tuple[str, str]:
    """(row, column) of a caption's position phrase; no phrase is the centre."""
    if not phrase:
        return "center", "center"
    words = phrase.lower().split()
    row = next((DIRECTIONS[w][0] for w in words if w in ("top", "bottom", "upper", "lower")), "center")
    col = next((w for w in words if w in ("left", "right")), "center")
    return row, col


def _position_name(row: str, col: str) -> str:
    if row == "center":
        return col
    return row if col == "center" else f"{row} {col}"


def _target_position(words: list[str], current: tuple[str, str]) -> tuple[str, str] | None:
    row, col = current
    found = False
    for w in words:
        if w in DIRECTIONS:
            new_row, new_col = DIRECTIONS[w]
            row, col = new_row or row, new_col or col
            found = True
    return (row, col) if found else None


def _object_span(caption: str, noun: str) -> tuple[int, int] | None:
    """Where the noun phrase of ``noun`` (its article and adjectives, the noun, a position phrase right after it)
    sits in ``caption``."""
    m = re.search(rf"\b(?:an?\s+|the\s+)?(?:[a-z-]+\s+){{0,3}}?{re.escape(noun)}s?\b", caption, re.I)
    if m is None:
        return None
    start = m.start()
    head = caption[start : m.end()]
    article = re.match(r"(?:an?|the)\s+", head, re.I)
    # adjectives only: a word before the noun that is a clause word ("and", "is") starts the phrase after it
    words = head.split()
    for i, w in enumerate(words[:-1]):
        if w.lower() in ("and", "is", "with", "of", "on", "in", "at") and not (article and i == 0):
            start = m.start() + head.index(" ".join(words[i + 1 :]))
    end = m.end()
    tail = caption[end:]
    pos = re.match(r"(?:\s+is)?\s+" + POSITION_PHRASE.pattern, tail, re.I)
    if pos is not None:
        end += pos.end()
    return start, end


def edit_caption(caption: str, stage: str, last_noun: str = "") -> Edit | None:
    """``caption`` with the change ``stage`` describes applied to the object it names, or None."""
    words = re.findall(r"[a-z-]+", stage.lower())
    verb = next((i for i, w in enumerate(words) if w in VERBS or w in GROW), None)
    if verb is None:
        return None
    before = [w for w in words[:verb] if not w.endswith("ly")]  # "the circle slowly moves": adverbs are no noun
    noun = last_noun if not before or before[-1] in ("it", "he", "she", "they") else before[-1]
    span = _object_span(caption, noun) if noun else None  # None when the caption does not name it
    if span is None:
        return None
    words = words[verb:]
    start, end = span
    phrase = caption[start:end]
    pos = POSITION_PHRASE.search(phrase)
    head, position = (phrase[: pos.start()].rstrip(), pos.group()) if pos else (phrase, None)
    head = re.sub(r"\s+is$", "", head)
    tokens = head.split()
    looks = pose = False
    complement = words[1:]
    colour = next((w for w in complement if w in COLOURS), None)
    if colour is not None:
        i = next((k for k, t in enumerate(tokens) if t.lower() in COLOURS), None)
        if i is None:
            tokens.insert(len(tokens) - 1, colour)
        elif tokens[i].lower() != colour:
            tokens[i] = colour
        looks = True
    shape = next((w for w in complement if w in SHAPES or w.rstrip("s") in SHAPES), None)
    if shape is not None and shape.rstrip("s") != noun.rstrip("s"):
        tokens[-1] = shape.rstrip("s") if shape not in SHAPES else shape
        pose = True
    size_step = GROW.get(words[0], 0) or next((BIGGER[w] for w in complement if w in BIGGER), 0)
    size = next((SIZES[w] for w in complement if w in SIZES), None)
    size_at = next((k for k, t in enumerate(tokens) if t.lower() in SIZES), None)
    current = SIZES[tokens[size_at].lower()] if size_at is not None else "medium"
    if size is None and size_step:
        size = SIZE_ORDER[max(0, min(2, SIZE_ORDER.index(current) + size_step))]
    if size is not None and size != current:
        if size_at is None:
            tokens.insert(1 if tokens[0].lower() in ("a", "an", "the") else 0, size)
        else:
            tokens[size_at] = size
        pose = True
    new_position = position
    target = _target_position(complement, _position(position))
    if target is not None and target != _position(position):
        new_position = PHRASES[_position_name(*target)]
        pose = True
    if not looks and not pose:
        return None
    if len(tokens) > 1 and tokens[0].lower() in ("a", "an"):  # "a red star" -> "an orange star"
        article = "an" if tokens[1][0].lower() in "aeiou" else "a"
        tokens[0] = article.capitalize() if tokens[0][0].isupper() else article
    new_phrase = " ".join(tokens) + (f" {new_position}" if new_position else "")
    return Edit(caption[:start] + new_phrase + caption[end:], looks, pose, tokens[-1].lower())
