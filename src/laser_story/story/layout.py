"""Where each character of a frame stands: the place a sentence names, else where it stood before, else a default
slot; and each place as a region of the image (a box, and its mask at any token grid).

Places are the nine cells of a 3 x 3 grid ("top left" ... "bottom right"), the vocabulary a sentence uses ("on
the left", "in the upper right corner", "in the middle"). A phrase belongs to the nearest character named before
it. Pure module: torch and the built-in world's grid (numpy).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

import torch

from ..llm.language import find_word
from ..tinyworld import datasets, world

PLACES = world.POSITIONS  # the built-in world's 3 x 3 grid; a frame of any size is split the same way
CELL_CENTRES = world.GRID
REGION_HALF = 0.25  # half the side of a place's region, as a fraction of the image side
_ALIASES = {
    "upper left": "top left", "upper right": "top right", "lower left": "bottom left", "lower right": "bottom right",
    "top-left": "top left", "top-right": "top right", "bottom-left": "bottom left", "bottom-right": "bottom right",
    "centre": "center", "middle": "center", "top center": "top", "top centre": "top", "bottom center": "bottom",
    "bottom centre": "bottom",
}  # fmt: skip
_PHRASES = sorted({*PLACES, *_ALIASES}, key=len, reverse=True)
PLACE_PATTERN = re.compile(r"\b(?:in|on|at|to|near|toward|towards)\s+the\s+(" + "|".join(map(re.escape, _PHRASES)) + r")\b",
                           re.IGNORECASE)  # fmt: skip
PLACE_PHRASES = datasets.POSITION_PHRASE  # "on the left", "at the top right", "in the center"
DEFAULT_SLOTS = {
    1: ("center",), 2: ("left", "right"), 3: ("left", "center", "right"),
    4: ("top left", "top right", "bottom left", "bottom right"),
}  # fmt: skip


class LayoutError(ValueError):
    """A frame the layout cannot place."""


def canonical_place(phrase: str) -> str:
    phrase = " ".join(phrase.lower().split())
    return _ALIASES.get(phrase, phrase)


def places_in(text: str, names: Sequence[str]) -> dict[str, str]:
    """The places ``text`` gives the characters ``names``: each place phrase goes to the nearest name before it."""
    mentions = []
    for name in names:
        start = 0
        while (span := find_word(text, name, start)) is not None:
            mentions.append((span[0], name))
            start = span[1]
    mentions.sort()
    found: dict[str, str] = {}
    for match in PLACE_PATTERN.finditer(text):
        before = [name for offset, name in mentions if offset < match.start()]
        if before:
            found[before[-1]] = canonical_place(match.group(1))
    return found


def _cell(place: str) -> tuple[int, int]:
    i = PLACES.index(place)
    return i // 3, i % 3


def _nearest_free(place: str, taken: set[str]) -> str:
    row, col = _cell(place)
    free = [p for p in PLACES if p not in taken]
    return min(free, key=lambda p: (abs(_cell(p)[0] - row) + abs(_cell(p)[1] - col), abs(_cell(p)[0] - row),
                                    PLACES.index(p)))  # nearest, side by side before above or below


@dataclasses.dataclass(frozen=True)
class FrameLayout:
    """Each present character's place in one frame, and how it was decided."""

    places: dict[str, str]
    notes: tuple[str, ...] = ()


def story_layout(frames: Sequence[tuple[Sequence[str], dict[str, str]]]) -> list[FrameLayout]:
    """Layouts of a story's frames, given per frame (who is present, the places its sentence states).

    A character keeps its last place until a sentence moves it; one never placed gets a default slot. Two
    characters never share a place: the later one moves to the nearest free cell (noted).
    """
    last: dict[str, str] = {}
    out = []
    for index, (present, stated) in enumerate(frames):
        present = list(dict.fromkeys(present))
        if len(present) > len(PLACES):
            raise LayoutError(
                f"frame {index + 1} has {len(present)} characters ({', '.join(present)}); the layout places at most "
                f"{len(PLACES)}: split the sentence or list fewer characters as present in the plan"
            )
        places: dict[str, str] = {}
        notes = []
        wanted = [(n, stated[n]) for n in present if n in stated] + [(n, last[n]) for n in present if n not in stated
                                                                     and n in last]  # fmt: skip
        for name, place in wanted:
            if place not in PLACES:
                raise LayoutError(f"frame {index + 1}: {name!r} stands at {place!r}, which is not one of {', '.join(PLACES)}")
            if place in places.values():
                moved = _nearest_free(place, set(places.values()))
                notes.append(f"{name} moved from {place} (taken) to {moved}")
                place = moved
            places[name] = place
        unplaced = [n for n in present if n not in places]
        if unplaced:
            slots = [s for s in DEFAULT_SLOTS.get(len(present), PLACES) if s not in places.values()]
            slots += [p for p in PLACES if p not in places.values() and p not in slots]
            for name, slot in zip(unplaced, slots, strict=False):
                places[name] = slot
        last.update(places)
        out.append(FrameLayout({n: places[n] for n in present}, tuple(notes)))
    return out


@dataclasses.dataclass(frozen=True)
class Box:
    """A region as fractions of the image side: left, top, right, bottom."""

    x0: float
    y0: float
    x1: float
    y1: float

    def to_json(self) -> list[float]:
        return [round(v, 4) for v in (self.x0, self.y0, self.x1, self.y1)]


def place_box(place: str, half: float = REGION_HALF) -> Box:
    row, col = _cell(place)
    cx, cy = CELL_CENTRES[col], CELL_CENTRES[row]
    return Box(max(0.0, cx - half), max(0.0, cy - half), min(1.0, cx + half), min(1.0, cy + half))


def box_mask(box: Box, height: int, width: int) -> torch.Tensor:
    """[height, width] in {0, 1}: the token cells whose centre lies in ``box``."""
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    inside_y = (ys >= box.y0) & (ys <= box.y1)
    inside_x = (xs >= box.x0) & (xs <= box.x1)
    return (inside_y[:, None] & inside_x[None, :]).float()
