"""The procedural world the built-in tiny model is trained on, and its caption grammar.

A scene is 1 to 3 flat-coloured objects on one of four backgrounds. Every object has a shape (6), a
colour (8), a size class (3) and a position on a 3x3 grid, plus pose-like nuisance variation (rotation,
stretch, small jitter of position, size and colour) that captions do not mention. Scenes, renders and
captions are deterministic functions of a seed. ``parse_caption`` inverts the caption grammar (any
phrasing ``caption`` produces, plus the named cast) so the judge can score any prompt; words outside
the vocabulary are reported, never fatal.

Pure module: numpy and Pillow only.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 64
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "star", "cross", "heart")
# Nominal sRGB of each colour (0..1); objects get a small jitter around it.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.10),
    "orange": (0.96, 0.52, 0.06),
    "yellow": (0.96, 0.88, 0.10),
    "green": (0.12, 0.68, 0.20),
    "blue": (0.10, 0.30, 0.92),
    "purple": (0.56, 0.16, 0.80),
    "white": (0.97, 0.97, 0.97),
    "black": (0.05, 0.05, 0.06),
}
SIZES = ("small", "medium", "large")
# Radius of the shape's unit outline in pixels at IMAGE_SIZE 64 (scaled with the image size).
SIZE_RADIUS = {"small": 7.5, "medium": 10.5, "large": 14.5}
SIZE_JITTER = 0.05
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
GRID = (0.24, 0.5, 0.76)  # cell centres as a fraction of the image side
POSITION_JITTER = 0.035
BACKGROUNDS = ("grey", "sand", "sky", "stripes")
MAX_ROTATION = 30.0  # degrees, uniform in [-MAX_ROTATION, MAX_ROTATION] for all shapes but the circle
MAX_STRETCH = 1.25  # aspect ratio a in [1/MAX_STRETCH, MAX_STRETCH]; area is preserved
MIN_GAP = 2.5  # pixels between the outlines' bounding circles


@dataclasses.dataclass(frozen=True)
class Character:
    name: str
    colour: str
    shape: str
    size: str

    @property
    def description(self) -> str:
        return f"a {self.size} {self.colour} {self.shape}"


CAST: tuple[Character, ...] = (
    Character("Pip", "red", "star", "small"),
    Character("Bo", "blue", "circle", "large"),
    Character("Tilly", "yellow", "triangle", "medium"),
    Character("Moss", "green", "square", "medium"),
    Character("Rosa", "purple", "heart", "medium"),
    Character("Kit", "orange", "cross", "small"),
    Character("Snow", "white", "circle", "small"),
    Character("Coal", "black", "square", "large"),
)
CAST_BY_NAME = {c.name.lower(): c for c in CAST}


@dataclasses.dataclass(frozen=True)
class WorldObject:
    shape: str
    colour: str
    size: str
    position: str
    # nuisance ("pose") parameters, never captioned
    cx: float = 0.5  # centre, fraction of the image side
    cy: float = 0.5
    radius: float = 10.5 / 64  # fraction of the image side
    rotation: float = 0.0  # degrees
    stretch: float = 1.0
    rgb: tuple[float, float, float] = (0.0, 0.0, 0.0)
    character: str | None = None

    def attributes(self) -> dict[str, str]:
        return {"shape": self.shape, "colour": self.colour, "size": self.size, "position": self.position}


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]
    background: str
    bg_tone: float = 0.0  # small brightness jitter of the background

    def key(self) -> tuple:
        """Identity of the captionable content (ignores nuisance parameters and object order)."""
        return (self.background, tuple(sorted((o.shape, o.colour, o.size, o.position) for o in self.objects)))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scene:
        objs = tuple(WorldObject(**{**o, "rgb": tuple(o["rgb"])}) for o in data["objects"])
        return cls(objects=objs, background=data["background"], bg_tone=data.get("bg_tone", 0.0))


# --------------------------------------------------------------------------------------------------
# scene sampling


def rng_for(*key: int | str) -> np.random.Generator:
    """A generator determined by ``key`` (ints and strings), independent of any global state."""
    ints = []
    for k in key:
        if isinstance(k, str):
            ints.extend(k.encode())
        else:
            ints.append(int(k))
    return np.random.default_rng(ints)


def _cell_centre(position: str) -> tuple[float, float]:
    i = POSITIONS.index(position)
    return GRID[i % 3], GRID[i // 3]


def make_object(
    rng: np.random.Generator, shape: str, colour: str, size: str, position: str, character: str | None = None
) -> WorldObject:
    cx, cy = _cell_centre(position)
    cx += rng.uniform(-POSITION_JITTER, POSITION_JITTER)
    cy += rng.uniform(-POSITION_JITTER, POSITION_JITTER)
    radius = SIZE_RADIUS[size] / 64.0 * rng.uniform(1 - SIZE_JITTER, 1 + SIZE_JITTER)
    rotation = 0.0 if shape == "circle" else float(rng.uniform(-MAX_ROTATION, MAX_ROTATION))
    stretch = float(math.exp(rng.uniform(-math.log(MAX_STRETCH), math.log(MAX_STRETCH))))
    base = np.array(COLOURS[colour])
    rgb = tuple(float(v) for v in np.clip(base + rng.uniform(-0.04, 0.04, 3), 0.0, 1.0))
    return WorldObject(shape, colour, size, position, float(cx), float(cy), float(radius), rotation, stretch, rgb, character)


def _fits(obj: WorldObject, others: Iterable[WorldObject]) -> bool:
    r = obj.radius * 64 * _bound_factor(obj)
    if obj.cx * 64 - r < -0.5 or obj.cx * 64 + r > 64.5 or obj.cy * 64 - r < -0.5 or obj.cy * 64 + r > 64.5:
        return False
    for o in others:
        d = math.hypot((obj.cx - o.cx) * 64, (obj.cy - o.cy) * 64)
        if d < r + o.radius * 64 * _bound_factor(o) + MIN_GAP:
            return False
    return True


def _bound_factor(obj: WorldObject) -> float:
    """Radius of the bounding circle of the (stretched) outline, in units of ``obj.radius``."""
    return SHAPE_EXTENT[obj.shape] * max(obj.stretch, 1.0 / obj.stretch) ** 0.5


def sample_scene(
    rng: np.random.Generator, n_objects: int | None = None, character_prob: float = 0.15, exclude: set | None = None
) -> Scene:
    """A random scene: 1 to 3 non-overlapping objects, each possibly a member of ``CAST``."""
    for _ in range(1000):
        n = int(n_objects or rng.choice([1, 2, 3], p=[0.4, 0.3, 0.3]))
        cells = list(rng.choice(len(POSITIONS), size=n, replace=False))
        objs: list[WorldObject] = []
        for cell in cells:
            position = POSITIONS[int(cell)]
            if rng.random() < character_prob:
                ch = CAST[int(rng.integers(len(CAST)))]
                if any(o.character == ch.name for o in objs):
                    ch = None
            else:
                ch = None
            if ch is not None:
                shape, colour, size = ch.shape, ch.colour, ch.size
            else:
                shape = SHAPES[int(rng.integers(len(SHAPES)))]
                colour = list(COLOURS)[int(rng.integers(len(COLOURS)))]
                size = SIZES[int(rng.integers(len(SIZES)))]
            if ch is None and any(
                c.colour == colour and c.shape == shape for c in CAST if any(o.character == c.name for o in objs)
            ):
                break
            placed = None
            for _try in range(6):
                cand = make_object(rng, shape, colour, size, position, ch.name if ch else None)
                if _fits(cand, objs):
                    placed = cand
                    break
                if ch is None and size != "small" and _try >= 2:
                    size = SIZES[SIZES.index(size) - 1]
            if placed is None:
                break
            objs.append(placed)
        if len(objs) != n:
            continue
        scene = Scene(tuple(objs), BACKGROUNDS[int(rng.integers(len(BACKGROUNDS)))], float(rng.uniform(-0.04, 0.04)))
        if exclude is not None and scene.key() in exclude:
            continue
        return scene
    raise RuntimeError("could not place the objects of a scene")


def scene_from_seed(seed: int, stream: str = "train", **kwargs: Any) -> Scene:
    return sample_scene(rng_for(stream, seed), **kwargs)


# --------------------------------------------------------------------------------------------------
# rendering


def _shape_outline(shape: str, n: int = 96) -> np.ndarray:
    """Unit outline (x right, y down), roughly inscribed in the unit circle, as an (N, 2) array."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    if shape == "circle":
        pts = np.stack([np.cos(t), np.sin(t)], 1)
    elif shape == "square":
        h = 0.84
        pts = np.array([[-h, -h], [h, -h], [h, h], [-h, h]])
    elif shape == "triangle":
        ang = np.deg2rad([-90, 30, 150])
        pts = 1.12 * np.stack([np.cos(ang), np.sin(ang)], 1)
        pts[:, 1] += 0.14  # centre the bounding box vertically
    elif shape == "star":
        ang = np.deg2rad(-90 + 36 * np.arange(10))
        rad = np.where(np.arange(10) % 2 == 0, 1.12, 0.47)
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
        pts[:, 1] += 0.08
    elif shape == "cross":
        a, w = 1.0, 0.36
        pts = np.array(
            [[-w, -a], [w, -a], [w, -w], [a, -w], [a, w], [w, w], [w, a], [-w, a], [-w, w], [-a, w], [-a, -w], [-w, -w]]
        )
    elif shape == "heart":
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x, y], 1) / 16.0 * 1.05
        pts[:, 1] -= (pts[:, 1].max() + pts[:, 1].min()) / 2
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return pts.astype(np.float64)


_OUTLINES = {s: _shape_outline(s) for s in SHAPES}


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


SHAPE_AREA = {s: _polygon_area(p) for s, p in _OUTLINES.items()}  # area of the unit outline
SHAPE_EXTENT = {s: float(np.sqrt((p**2).sum(1)).max()) for s, p in _OUTLINES.items()}


def object_polygon(obj: WorldObject, size: int) -> np.ndarray:
    pts = _OUTLINES[obj.shape].copy()
    pts[:, 0] *= obj.stretch**0.5
    pts[:, 1] /= obj.stretch**0.5
    th = np.deg2rad(obj.rotation)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    pts = pts @ rot.T
    return pts * obj.radius * size + np.array([obj.cx * size, obj.cy * size])


def background_image(name: str, size: int, tone: float = 0.0) -> np.ndarray:
    """Float RGB (size, size, 3) in 0..1. All backgrounds are desaturated and mid-bright."""
    yy = (np.arange(size) + 0.5) / size
    img = np.empty((size, size, 3))
    if name == "grey":
        img[:] = (0.50, 0.50, 0.50)
    elif name == "sand":
        img[:] = (0.64, 0.57, 0.47)
    elif name == "sky":
        top, bottom = np.array([0.63, 0.69, 0.77]), np.array([0.40, 0.46, 0.57])
        img[:] = (top[None, :] * (1 - yy[:, None]) + bottom[None, :] * yy[:, None])[:, None, :]
    elif name == "stripes":
        light, dark = np.array([0.54, 0.58, 0.50]), np.array([0.40, 0.44, 0.37])
        band = (np.floor(yy * 4) % 2 == 0)
        img[:] = np.where(band[:, None], light[None, :], dark[None, :])[:, None, :]
    else:
        raise ValueError(f"unknown background {name!r}")
    return np.clip(img + tone, 0.0, 1.0)


def render(scene: Scene, size: int = IMAGE_SIZE) -> np.ndarray:
    """The scene as a uint8 RGB array (size, size, 3); object edges antialiased by supersampling."""
    img = background_image(scene.background, size, scene.bg_tone)
    for obj, alpha in zip(scene.objects, coverage(scene, size), strict=True):
        img = img * (1 - alpha[..., None]) + np.asarray(obj.rgb)[None, None, :] * alpha[..., None]
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def coverage(scene: Scene, size: int) -> list[np.ndarray]:
    """Per-object antialiased coverage (size, size) in 0..1, in the order of ``scene.objects``."""
    out = []
    for obj in scene.objects:
        im = Image.new("L", (size * SUPERSAMPLE, size * SUPERSAMPLE), 0)
        ImageDraw.Draw(im).polygon([tuple(p) for p in object_polygon(obj, size * SUPERSAMPLE)], fill=255)
        out.append(np.asarray(im.resize((size, size), Image.Resampling.BOX), dtype=np.float64) / 255.0)
    return out


def render_masks(scene: Scene, size: int = IMAGE_SIZE) -> list[np.ndarray]:
    """Per-object boolean masks (size, size): pixels at least half covered by the object."""
    return [alpha >= 0.5 for alpha in coverage(scene, size)]


# --------------------------------------------------------------------------------------------------
# captions

SIZE_WORDS = {"small": ("small", "little", "tiny"), "medium": ("medium", "medium-sized", "mid-sized"), "large": ("large", "big", "huge")}
POSITION_PHRASES = {
    "top left": ("in the top left corner", "at the top left", "in the upper left"),
    "top": ("at the top", "near the top", "at the top center"),
    "top right": ("in the top right corner", "at the top right", "in the upper right"),
    "left": ("on the left", "at the left", "to the left"),
    "center": ("in the center", "in the middle", "at the centre"),
    "right": ("on the right", "at the right", "to the right"),
    "bottom left": ("in the bottom left corner", "at the bottom left", "in the lower left"),
    "bottom": ("at the bottom", "near the bottom", "at the bottom center"),
    "bottom right": ("in the bottom right corner", "at the bottom right", "in the lower right"),
}
BACKGROUND_PHRASES = {
    "grey": ("on a grey background", "on grey", "with a gray background"),
    "sand": ("on a sand background", "on sand", "with a sandy background"),
    "sky": ("on a sky background", "under a blue sky", "with a sky gradient background"),
    "stripes": ("on a striped background", "on stripes", "with a striped background"),
}
BACKGROUND_NOUNS = {"grey": "grey", "sand": "sand", "sky": "sky", "stripes": "striped"}
PREFIXES = ("", "", "a picture of ", "an image of ", "a drawing of ", "there is ")


@dataclasses.dataclass(frozen=True)
class CaptionOptions:
    """Probabilities of mentioning each optional attribute."""

    p_size: float = 0.75
    p_position: float = 0.85
    p_background: float = 0.5


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption_segments(
    scene: Scene, rng: np.random.Generator, options: CaptionOptions = CaptionOptions()
) -> tuple[list[tuple[str, int | None]], list[dict[str, str]]]:
    """Caption as ``[(text, object_index or None), ...]`` (joined with spaces) and, per object, the
    attributes the caption states (what a judge may score)."""
    order = list(rng.permutation(len(scene.objects)))
    style = int(rng.integers(3))  # 0: "<obj> <pos>", 1: "<pos>, <obj>", 2: "<obj> is <pos>"
    prefix = PREFIXES[int(rng.integers(len(PREFIXES)))] if style == 0 else ""
    segments: list[tuple[str, int | None]] = []
    stated: list[dict[str, str]] = [dict() for _ in scene.objects]
    bg_mode = int(rng.integers(2)) if rng.random() < options.p_background else -1
    if bg_mode == 0:
        segments.append((f"{BACKGROUND_NOUNS[scene.background]} background,", None))
    if prefix:
        segments.append((prefix.strip(), None))
    for k, idx in enumerate(order):
        obj = scene.objects[idx]
        st = stated[idx]
        ch = CAST_BY_NAME.get((obj.character or "").lower())
        if ch is not None and rng.random() < 0.8:
            words = (ch.name, f"{ch.name} the {ch.colour} {ch.shape}", f"{ch.name} the {ch.size} {ch.colour} {ch.shape}")[
                int(rng.integers(3))
            ]
            st.update(shape=ch.shape, colour=ch.colour, size=ch.size)
        else:
            parts = []
            if rng.random() < options.p_size:
                parts.append(SIZE_WORDS[obj.size][int(rng.integers(3))])
                st["size"] = obj.size
            parts += [obj.colour, obj.shape]
            st.update(shape=obj.shape, colour=obj.colour)
            words = f"{_article(parts[0])} {' '.join(parts)}"
        pos = None
        if rng.random() < options.p_position:
            pos = POSITION_PHRASES[obj.position][int(rng.integers(3))]
            st["position"] = obj.position
        if k > 0:
            segments.append((";", None) if style == 1 else ("and" if k == len(order) - 1 else ",", None))
        if pos is None:
            segments.append((words, idx))
        elif style == 0:
            segments.append((f"{words} {pos}", idx))
        elif style == 1:
            segments.append((f"{pos}, {words}", idx))
        else:
            segments.append((f"{words} is {pos}", idx))
    if bg_mode == 1:
        segments.append((BACKGROUND_PHRASES[scene.background][int(rng.integers(3))], None))
    return segments, stated


def join_segments(segments: Sequence[tuple[str, int | None]]) -> str:
    text = " ".join(s for s, _ in segments if s)
    text = re.sub(r" ([,;])", r"\1", text)
    text = re.sub(r",+", ",", text)
    return re.sub(r"\s+", " ", text).strip(" ,")


def caption(scene: Scene, rng: np.random.Generator, options: CaptionOptions = CaptionOptions()) -> str:
    return join_segments(caption_segments(scene, rng, options)[0])


def full_caption(objects: Sequence[dict[str, str]], background: str | None) -> str:
    """Every attribute of every object, in one fixed form: "a large red star on the left and a small blue circle
    at the bottom on a grey background" (what a keyframe prompt of a known scene says)."""
    parts = [f"{_article(o['size'])} {o['size']} {o['colour']} {o['shape']} {POSITION_PHRASES[o['position']][0]}"
             for o in objects]  # fmt: skip
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1] if parts else "nothing"
    return text + (f" {BACKGROUND_PHRASES[background][0]}" if background else "")


# --------------------------------------------------------------------------------------------------
# parsing (the inverse of the caption grammar)

_SIZE_LOOKUP = {w: s for s, ws in SIZE_WORDS.items() for w in ws}
_COLOUR_LOOKUP = {c: c for c in COLOURS}
_SHAPE_LOOKUP = {s: s for s in SHAPES} | {s + "s": s for s in SHAPES} | {"crosses": "cross", "plus": "cross", "ball": "circle", "box": "square"}
_FILLER = {
    "a", "an", "the", "of", "picture", "image", "drawing", "there", "is", "are", "and", "with", "on", "in", "at",
    "to", "near", "under", "corner", "background", "backdrop", "gradient", "one", "some",
}
_POSITION_PATTERNS = sorted(
    [(p, pos) for pos, ps in POSITION_PHRASES.items() for p in ps]
    + [(pos, pos) for pos in POSITIONS]
    + [("upper left", "top left"), ("upper right", "top right"), ("lower left", "bottom left"), ("lower right", "bottom right"),
       ("centre", "center"), ("middle", "center"), ("top-left", "top left"), ("top-right", "top right"),
       ("bottom-left", "bottom left"), ("bottom-right", "bottom right")],
    key=lambda t: -len(t[0]),
)
_BACKGROUND_PATTERNS = sorted(
    [(p, bg) for bg, ps in BACKGROUND_PHRASES.items() for p in ps]
    + [(f"{noun} background", bg) for bg, noun in BACKGROUND_NOUNS.items()]
    + [("sandy background", "sand"), ("blue sky", "sky"), ("striped", "stripes"), ("stripes", "stripes")],
    key=lambda t: -len(t[0]),
)


@dataclasses.dataclass
class ParsedCaption:
    objects: list[dict[str, str]]  # per object: the attributes the caption states
    background: str | None
    unknown_words: list[str]

    @property
    def scorable(self) -> bool:
        return bool(self.objects)

    def n_attributes(self) -> int:
        return sum(len(o) for o in self.objects) + (self.background is not None)


def _normalise(text: str) -> str:
    text = text.lower().replace("gray", "grey").replace("colour", "color")
    text = re.sub(r"[^a-z0-9,;\- ]", " ", text)
    text = re.sub(r"\s*([,;])\s*", r" \1 ", text)
    return " " + re.sub(r"\s+", " ", text).strip() + " "


def parse_caption(text: str) -> ParsedCaption:
    """Objects (shape, colour, size, position as stated), background and unknown words of a caption.

    Clauses are delimited by "and", "," and ";". A clause holding a position but no object lends it to
    the next object (or, at the end, to the last object without one). A character name stands for its
    shape, colour and size. Words outside the vocabulary are collected in ``unknown_words``.
    """
    s = _normalise(text)
    background = None
    for pattern, bg in _BACKGROUND_PATTERNS:
        pat = " " + _normalise(pattern).strip() + " "
        if pat in s:
            background = bg
            s = s.replace(pat, " ; ", 1)
            break
    for pattern, pos in _POSITION_PATTERNS:  # positions become single tokens
        pat = " " + _normalise(pattern).strip() + " "
        while pat in s:
            s = s.replace(pat, f" @{POSITIONS.index(pos)} ")
    clauses: list[list[str]] = [[]]
    for tok in s.split():
        if tok in {"and", ",", ";"}:
            clauses.append([])
        else:
            clauses[-1].append(tok)
    objects: list[dict[str, str]] = []
    unknown: list[str] = []
    pending_position: str | None = None
    for clause in clauses:
        obj: dict[str, str] = {}
        colour = size = position = None
        named: dict[str, str] | None = None
        for tok in clause:
            if tok.startswith("@"):
                position = POSITIONS[int(tok[1:])]
            elif tok in CAST_BY_NAME:
                ch = CAST_BY_NAME[tok]
                named = {"shape": ch.shape, "colour": ch.colour, "size": ch.size}
            elif tok in _SHAPE_LOOKUP:
                obj["shape"] = _SHAPE_LOOKUP[tok]
            elif tok in _COLOUR_LOOKUP:
                colour = _COLOUR_LOOKUP[tok]
            elif tok in _SIZE_LOOKUP:
                size = _SIZE_LOOKUP[tok]
            elif tok not in _FILLER and not tok.isdigit():
                unknown.append(tok)
        if named is None and "shape" not in obj:
            if position is not None:
                pending_position = position
            elif colour or size:
                unknown.extend(w for w in clause if w in _COLOUR_LOOKUP or w in _SIZE_LOOKUP)
            continue
        if named is not None:
            obj = {**named, **obj}
        if colour:
            obj["colour"] = colour
        if size:
            obj["size"] = size
        if position is None and pending_position is not None:
            position, pending_position = pending_position, None
        if position is not None:
            obj["position"] = position
        objects.append(obj)
    if pending_position is not None:
        for obj in reversed(objects):
            if "position" not in obj:
                obj["position"] = pending_position
                break
    return ParsedCaption(objects=objects, background=background, unknown_words=unknown)


def vocabulary() -> list[str]:
    """Every word the caption grammar can produce (used to pick the text-encoder rows worth shipping)."""
    words: set[str] = set()
    for group in (SHAPES, COLOURS, POSITIONS, [c.name for c in CAST]):
        for w in group:
            words.update(w.lower().split())
    for table in (SIZE_WORDS, POSITION_PHRASES, BACKGROUND_PHRASES):
        for ws in table.values():
            for w in ws:
                words.update(w.lower().split())
    for p in PREFIXES:
        words.update(p.split())
    words.update(["a", "an", "the", "is", "and", ",", ";", "with", "of"])
    words.update(_SHAPE_LOOKUP)
    words.update(["gray", "grey", "sand", "sky", "stripes", "striped", "centre", "middle", "upper", "lower"])
    return sorted(words)


def heldout_scenes(n: int = 100) -> list[Scene]:
    """Scenes whose captions are never trained on (stream "heldout"); training excludes their keys."""
    return [scene_from_seed(i, "heldout") for i in range(n)]


def heldout_captions(n: int = 100, seed: int = 0) -> list[tuple[Scene, str]]:
    return [(sc, caption(sc, rng_for("heldout-caption", seed, i))) for i, sc in enumerate(heldout_scenes(n))]
