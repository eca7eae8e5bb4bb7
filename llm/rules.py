"""Rule-based morph plans and expansion captions: pattern rules, no model, the same output every time.

Together with ``coref`` (story plans) this is the planner that is always available; every LLM backend is
measured against it.
"""

from __future__ import annotations

import re

from .lexicon import ACTION_VERBS, BECOME_VERBS, TRANSFORM_VERBS
from .plans import DIRECTIONS, ExpandPlan, ExpandStep, MorphPlan, PlanError

DEFAULT_NEGATIVE = "blurry, low quality, distorted, deformed, disfigured, extra limbs, watermark, text"
DEFAULT_FRAMES = 8
MAX_FRAMES = 64
DIRECTION_WORDS = {
    **{d: d for d in DIRECTIONS},
    "top": "up", "above": "up", "upward": "up", "upwards": "up", "north": "up",
    "bottom": "down", "below": "down", "downward": "down", "downwards": "down", "south": "down",
    "east": "right", "west": "left",
}  # fmt: skip
MAX_STEPS = 32

STAGE_SPLIT = re.compile(
    r"\s*(?:->|→|=>|;|,?\s*\band then\b|,?\s*\bthen\b|,?\s*\bafter that\b|,?\s*\bfinally\b)\s*", re.I
)
FRAMES = re.compile(
    r",?\s*(?:with\s+|in\s+|over\s+)?(\d+)\s*frames?(?:\s+(?:per|each|a)\s+(?:segment|step|transition))?", re.I
)
# "becomes X" and "morphs into X" always change the look; "turns X" only with "into" ("turns his head" is a pose).
TRANSFORM = re.compile(
    r"^(?P<a>.*?)\s*\b(?:(?:" + "|".join(sorted(BECOME_VERBS, key=len, reverse=True)) + r")\b(?:\s+into\b)?"
    r"|(?:" + "|".join(sorted(TRANSFORM_VERBS, key=len, reverse=True)) + r")\s+(?:into|to)\b)\s*(?P<b>.*)$",
    re.I,
)
SUBJECT = re.compile(
    r"^(?:(?:it|he|she|they)\b|(?:the|a|an|this|that)\s+(?:[a-z-]+\s+){0,2}?[a-z-]+?(?=\s+\w+s\b))\s*", re.I
)
PRONOUNS = {"it", "he", "she", "they"}
ADVERBS = r"(?:\s+(?:slowly|quickly|gradually|suddenly|gently|smoothly|rapidly|softly|finally|then))+"
# "..., then into a dragon": the stage continues the previous change, so "into" goes too
FILLER = re.compile(r"^(?:and|but|so|slowly|quickly|suddenly|gradually|finally|then|into)\b\s*", re.I)


def base_form(verb: str) -> str:
    """ "jumps" -> "jump", "flies" -> "fly", "watches" -> "watch"."""
    verb = verb.lower()
    if verb.endswith("ies") and len(verb) > 4:
        return verb[:-3] + "y"
    if verb.endswith(("ches", "shes", "sses", "xes", "zzes", "oes")):
        return verb[:-2]
    if verb.endswith("s") and not verb.endswith("ss"):
        return verb[:-1]
    return verb


def gerund(base: str) -> str:
    """ "run" -> "running", "dance" -> "dancing", "lie" -> "lying", "jump" -> "jumping"."""
    if base.endswith("ie"):
        return base[:-2] + "ying"
    if base.endswith("e") and not base.endswith(("ee", "ye", "oe")):
        return base[:-1] + "ing"
    if re.fullmatch(r"[^aeiou]*[aeiou][bdgmnprt]", base):
        return base + base[-1] + "ing"
    return base + "ing"


def _action(stage: str) -> tuple[str, str] | None:
    """("the dog", "jumping over the fence") for "the dog jumps over the fence"; None when it is no action."""
    match = SUBJECT.match(stage)
    subject = match.group().strip() if match else ""
    rest = stage[match.end() :] if match else stage
    parts = rest.split(maxsplit=1)
    if not parts:
        return None
    verb, tail = parts[0].lower(), parts[1] if len(parts) > 1 else ""
    if verb in ("starts", "begins", "start", "begin"):
        inner = tail.removeprefix("to ").split(maxsplit=1)
        if not inner:
            return None
        verb, tail = inner[0].lower(), inner[1] if len(inner) > 1 else ""
    base = base_form(verb) if not verb.endswith("ing") else verb
    if base.endswith("ing") and any(gerund(v) == base for v in ACTION_VERBS):
        return subject, f"{base} {tail}".strip()
    if base in ACTION_VERBS:
        return subject, f"{gerund(base)} {tail}".strip()
    return None


def _split_participle(phrase: str) -> tuple[str, str]:
    """ "a dog sitting on a rug" -> ("a dog", "sitting on a rug"): pose words belong to the action."""
    tokens = phrase.split()
    for i, token in enumerate(tokens[1:], start=1):
        if token.lower().endswith("ing") and any(gerund(v) == token.lower() for v in ACTION_VERBS):
            return " ".join(tokens[:i]).rstrip(","), " ".join(tokens[i:])
    return phrase, ""


def _clean(stage: str) -> str:
    stage = re.sub(ADVERBS + "$", "", stage.strip(" ,.!"), flags=re.I)  # "a young woman slowly (ages ...)"
    while FILLER.match(stage):
        stage = FILLER.sub("", stage, count=1)
    return stage


def _stages(text: str) -> list[str]:
    parts = [_clean(p) for p in STAGE_SPLIT.split(text)]
    stages = []
    for part in parts:
        # "summer forest to winter forest": a bare "X to Y" chain of scenes with no verb in it
        pieces = re.split(r"\s+to\s+", re.sub(r"^from\s+", "", part, flags=re.I))
        verbless = all(not TRANSFORM.match(p) and _action(p) is None for p in pieces)
        stages.extend([_clean(p) for p in pieces] if len(pieces) > 1 and verbless else [part])
    split: list[str] = []
    for stage in stages:  # "... into a butterfly and flies away": the action after "and" is a stage of its own
        pieces = re.split(r"\s+and\s+", stage)
        split.append(pieces[0])
        for piece in pieces[1:]:
            if _action(piece) is not None:
                split.append(piece)
            else:
                split[-1] += " and " + piece
    return [s for s in split if s]


def _prompt(subject: str, action: str) -> str:
    return f"{subject}, {action}" if action else subject


def plan_morph(text: str, image_caption: str = "") -> MorphPlan:
    """Keyframes P0..Pn and control codes from a coarse description such as "a cat turns into a tiger, then jumps"."""
    frames = DEFAULT_FRAMES
    match = FRAMES.search(text)
    if match:
        frames = max(2, min(MAX_FRAMES, int(match.group(1))))
        text = text[: match.start()] + text[match.end() :]
    caption = image_caption.strip()
    keyframes: list[tuple[str, str]] = [(caption, "")] if caption else []
    for number, stage in enumerate(_stages(text)):
        transform = TRANSFORM.match(stage)
        action = None if transform else _action(stage)
        if transform and transform.group("b").strip():
            source, target = _clean(transform.group("a")), _clean(transform.group("b"))
            if source and not keyframes and source.lower() not in PRONOUNS:
                keyframes.append(_split_participle(source))
            if not keyframes:
                raise PlanError(
                    "text: say what the first keyframe shows (e.g. 'a cat turns into a tiger') or give image_caption"
                )
            if len(target.split()) == 1:
                target = f"{keyframes[-1][0]}, {target}"  # "becomes older": the same subject, changed
            keyframes.append(_split_participle(target))
        elif action is not None:
            subject, doing = action
            if not keyframes:
                if not subject or subject.lower() in PRONOUNS:
                    raise PlanError(
                        "text: say who acts in the first keyframe (e.g. 'a dog sits, then jumps') or give image_caption"
                    )
                keyframes.append((re.sub(r"^the\b", "a", subject, flags=re.I), ""))
            keyframes.append((keyframes[-1][0], doing))
        elif not (caption and number == 0):  # with a caption, a leading scene description is the input image
            keyframes.append(_split_participle(stage))
    if len(keyframes) < 2:
        raise PlanError(
            "text: a morph needs at least two keyframes; describe a change, e.g. 'a cat turns into a tiger' "
            "or 'summer forest -> winter forest'"
        )
    controls = []
    for (subject_a, action_a), (subject_b, action_b) in zip(keyframes, keyframes[1:], strict=False):
        looks, pose = subject_a.lower() != subject_b.lower(), action_a.lower() != action_b.lower()
        code = "2" if looks and pose else "0" if looks else "1" if pose else "3"
        controls.append("2" if code == "3" and not controls else code)
    return MorphPlan(tuple(_prompt(s, a) for s, a in keyframes), tuple(controls), DEFAULT_NEGATIVE, frames)


def parse_directions(text: str) -> tuple[str, ...]:
    """ "right x2, up" -> ("right", "right", "up"); the error names the ``directions`` input."""
    steps: list[str] = []
    for token in re.split(r"[\s,;]+", text.strip().lower()):
        if not token:
            continue
        repeat = re.fullmatch(r"(?:x|\*)(\d+)|(\d+)x", token)
        if repeat:
            if not steps:
                raise PlanError(f"directions: {token!r} repeats nothing; write it after a direction, e.g. 'right x3'")
            steps.extend([steps[-1]] * (int(repeat.group(1) or repeat.group(2)) - 1))
            continue
        if token not in DIRECTION_WORDS:
            raise PlanError(
                f"directions: {token!r} is not a direction; use left, right, up or down (e.g. 'right x2, up')"
            )
        steps.append(DIRECTION_WORDS[token])
    if not steps:
        raise PlanError("directions: give at least one of left, right, up, down (e.g. 'left, right')")
    if len(steps) > MAX_STEPS:
        raise PlanError(f"directions: {len(steps)} steps is more than {MAX_STEPS}; expand in several runs")
    return tuple(steps)


def _elements(caption: str) -> list[str]:
    parts = re.split(
        r"\s*(?:,|;|\band\b|\bwith\b|\bwhere\b|\bwhile\b|\bnext to\b|\bnear\b)\s*", caption.strip(" ."), flags=re.I
    )
    return [p for p in (p.strip() for p in parts) if p and p.lower() not in ("a", "an", "the")]


def local_caption(global_caption: str, direction: str, captions_so_far: list[str]) -> str:
    """The next region's caption: the next part of the global caption not yet shown, placed on ``direction``."""
    elements = _elements(global_caption) or [global_caption.strip(" .")]
    scene, parts = elements[0], elements[1:]
    shown = " ".join(captions_so_far).lower()
    unused = [p for p in parts if p.lower() not in shown]
    where = {
        "left": f"the left side of {scene}",
        "right": f"the right side of {scene}",
        "up": f"the sky and upper part of {scene}",
        "down": f"the ground and lower part of {scene}",
    }[direction]
    if unused:
        return f"{unused[0]}, {where}"
    step = sum(1 for c in captions_so_far if where in c)
    return f"more of {where}" + (f", continued ({step + 1})" if step else "")


def plan_expand(text: str, directions: tuple[str, ...], image_caption: str = "") -> ExpandPlan:
    """A global caption for the whole canvas and one local caption per step, from pattern rules."""
    global_caption = " ".join(text.split()).strip(" .") or image_caption.strip(" .")
    if not global_caption:
        raise PlanError("text: describe the whole scene to expand into (or give image_caption)")
    captions = [image_caption.strip()] if image_caption.strip() else []
    steps = []
    for direction in directions:
        caption = local_caption(global_caption, direction, captions)
        captions.append(caption)
        steps.append(ExpandStep(direction, caption))
    return ExpandPlan(global_caption, tuple(steps), image_caption.strip())
