"""Scoring story plans against labelled stories (``tests/data/stories/*.json``).

A labelled story lists its sentences and, per sentence, every pronoun or vague reference in order with
the characters it means. A predicted reference is right when the plan's frame for that sentence has the
same mention (the same occurrence, counted case-insensitively) resolved to the same set of characters.
Names match loosely so that unnamed characters count however a planner names them: the gold "fisherman"
matches "the old fisherman", the gold "Ella" matches "Princess Ella".
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from .language import PRONOUNS
from .tasks.story import StoryPlan

IGNORED = {"the", "a", "an", "old", "young", "little"}


@dataclasses.dataclass
class Score:
    correct: int = 0
    total: int = 0
    pronouns_correct: int = 0
    pronouns_total: int = 0

    def add(self, other: Score) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def pronoun_accuracy(self) -> float:
        return self.pronouns_correct / self.pronouns_total if self.pronouns_total else 0.0


def load_stories(folder: str | Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.json"))]


def story_text(story: dict[str, Any]) -> str:
    return " ".join(s["text"] for s in story["sentences"])


def _tokens(name: str) -> set[str]:
    return set(re.findall(r"[a-z]+", name.lower().replace("'s", ""))) - IGNORED


def pair_names(predicted: tuple[str, ...] | list[str], gold: list[str]) -> tuple[int, int]:
    """(gold names matched, predicted names left over) of a one-to-one greedy match by loose name equality."""
    remaining = [_tokens(p) for p in predicted]
    matched = 0
    for name in gold:
        wanted = _tokens(name)
        match = next((i for i, p in enumerate(remaining) if p and wanted and (wanted <= p or p <= wanted)), None)
        if match is not None:
            matched += 1
            remaining.pop(match)
    return matched, len(remaining)


def same_characters(predicted: tuple[str, ...] | list[str], gold: list[str]) -> bool:
    """One-to-one match of predicted names to gold names, by loose name equality."""
    return len(predicted) == len(gold) and pair_names(predicted, gold)[0] == len(gold)


def score_story(plan: StoryPlan | None, story: dict[str, Any]) -> Score:
    """References of ``story`` that ``plan`` resolves right (a missing plan or frame counts as all wrong)."""
    score = Score()
    frames = plan.frames if plan is not None else ()
    for index, sentence in enumerate(story["sentences"]):
        frame = frames[index] if index < len(frames) and frames[index].sentence == sentence["text"] else None
        seen: dict[str, int] = {}
        for gold in sentence["references"]:
            mention = gold["mention"].lower()
            occurrence = seen.get(mention, 0)
            seen[mention] = occurrence + 1
            candidates = [r for r in frame.references if r.mention.lower() == mention] if frame else []
            predicted = candidates[occurrence].refers_to if occurrence < len(candidates) else None
            accepted = [gold["refers_to"], *gold.get("alternatives", [])]
            right = predicted is not None and any(same_characters(predicted, names) for names in accepted)
            is_pronoun = mention in PRONOUNS
            score.total += 1
            score.correct += right
            score.pronouns_total += is_pronoun
            score.pronouns_correct += right and is_pronoun
    return score


def presence_counts(plan: StoryPlan | None, story: dict[str, Any]) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives) of who each frame shows against the labelled
    ``present``, names matched loosely and one to one (a missing plan or frame shows no one)."""
    tp = fp = fn = 0
    frames = plan.frames if plan is not None else ()
    for index, sentence in enumerate(story["sentences"]):
        frame = frames[index] if index < len(frames) and frames[index].sentence == sentence["text"] else None
        present = sentence.get("present", [])
        matched, extra = pair_names(frame.characters if frame else (), present)
        tp, fp, fn = tp + matched, fp + extra, fn + len(present) - matched
    return tp, fp, fn
