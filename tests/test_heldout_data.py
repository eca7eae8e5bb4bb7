"""The frozen planner evaluation cases (tests/data/heldout) are well formed; nothing here scores a planner."""

from __future__ import annotations

import json
import re
from pathlib import Path

from laser_story import controls
from laser_story.llm.tasks.expand import parse_directions

HELDOUT = Path(__file__).parent / "data" / "heldout"


def test_every_labelled_mention_occurs_in_its_sentence():
    stories = [json.loads(p.read_text()) for p in sorted((HELDOUT / "stories").glob("*.json"))]
    assert len(stories) >= 30 and len({s["id"] for s in stories}) == len(stories)
    for story in stories:
        assert 3 <= len(story["sentences"]) <= 10 and story["split"] == "heldout"
        for sentence in story["sentences"]:
            wanted: dict[str, int] = {}
            for ref in sentence["references"]:
                assert ref["refers_to"] and all(isinstance(n, str) and n for n in ref["refers_to"])
                wanted[ref["mention"].lower()] = wanted.get(ref["mention"].lower(), 0) + 1
            for mention, count in wanted.items():
                pattern = r"(?<![a-z])" + re.escape(mention) + r"(?![a-z])"
                assert len(re.findall(pattern, sentence["text"].lower())) >= count, (story["id"], sentence["text"], mention)
            assert isinstance(sentence["present"], list)


def test_morph_and_expansion_cases_use_valid_codes_and_directions():
    morph = json.loads((HELDOUT / "morph.json").read_text())
    expand = json.loads((HELDOUT / "expand.json").read_text())
    assert len(morph) >= 20 and len(expand) >= 20
    for case in morph:
        assert len(case["controls"]) == len(case["keyframes"]) - 1 and set(case["controls"]) <= set(controls.CODES)
    for case in expand:
        assert parse_directions(case["directions"]) and case["elements"] and case["image_caption"]
