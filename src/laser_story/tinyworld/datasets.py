"""World data for the canvas and story pipelines, deterministic by seed.

* **Stories** of the named cast, sentence by sentence: the text as a reader gets it (with he/she/they), the
  same sentence with every reference resolved, who is present and where each one stands, and the scene of
  that frame (render it, or take its per-object masks with ``world.render_masks``).
* **Wide scenes** (e.g. 128 x 512 or 512 x 128): a row or column of 128-pixel tiles on one continuous
  background, with a global caption of the whole canvas and a local caption for every window along it (the
  global + local captions arXiv 2407.12642 trains expansion on).

Pure module: numpy and Pillow only.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import world

TILE = 128
PRONOUNS = {"Pip": "he", "Bo": "he", "Tilly": "she", "Moss": "he", "Rosa": "she", "Kit": "she", "Snow": "she",
            "Coal": "he"}  # fmt: skip
OBJECT_PRONOUN = {"he": "him", "she": "her"}
SETTING_PHRASE = {"grey": "on a grey background", "sand": "on a sand background", "sky": "under a blue sky",
                  "stripes": "on a striped background"}  # fmt: skip
POSITION_PHRASE = {p: ("in the center" if p == "center" else f"at the {p}" if " " in p else f"on the {p}") for p in
                   world.POSITIONS}  # fmt: skip


# --------------------------------------------------------------------------------------------------- stories
@dataclasses.dataclass(frozen=True)
class StorySentence:
    text: str  # as written, with pronouns
    resolved: str  # every pronoun replaced by the name(s) it stands for
    present: tuple[str, ...]  # cast names in the frame
    positions: dict[str, str]  # name -> world position
    scene: world.Scene


@dataclasses.dataclass(frozen=True)
class Story:
    characters: tuple[world.Character, ...]
    background: str
    sentences: tuple[StorySentence, ...]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.sentences)


def _refer(name: str, previous: tuple[str, ...], subject: bool) -> tuple[str, str]:
    """(word written, name) for ``name``: a pronoun when the last sentence named it and nobody else of its
    pronoun, else the name."""
    pronoun = PRONOUNS[name]
    if name in previous and sum(PRONOUNS[n] == pronoun for n in previous) == 1:
        return (pronoun if subject else OBJECT_PRONOUN[pronoun]), name
    return name, name


def _free_cell(rng: np.random.Generator, taken: set[str]) -> str:
    free = [p for p in world.POSITIONS if p not in taken]
    return free[int(rng.integers(len(free)))]


def story(seed: int, stream: str = "story") -> Story:
    """A story of 1-3 cast members over 3-6 sentences on one background, which its first sentence names."""
    rng = world.rng_for(stream, seed)
    cast = [world.CAST[int(i)] for i in rng.choice(len(world.CAST), size=int(rng.integers(1, 4)), replace=False)]
    background = world.BACKGROUNDS[int(rng.integers(len(world.BACKGROUNDS)))]
    positions: dict[str, str] = {}
    sentences: list[StorySentence] = []
    previous: tuple[str, ...] = ()
    waiting = list(cast)
    for k in range(int(rng.integers(3, 7))):
        on_stage = [c.name for c in cast if c.name in positions]
        if not on_stage or (waiting and k > 0 and rng.random() < 0.5):
            new = waiting.pop(0)
            cell = _free_cell(rng, set(positions.values()))
            if on_stage:
                host_word, host = _refer(on_stage[-1], previous, subject=False)
                text = f"{new.name}, {new.description}, comes {POSITION_PHRASE[cell]} to meet {host_word}."
                resolved = f"{new.name}, {new.description}, comes {POSITION_PHRASE[cell]} to meet {host}."
                present = (host, new.name)
            else:
                where = f"{POSITION_PHRASE[cell]}{' ' + SETTING_PHRASE[background] if k == 0 else ''}"
                text = resolved = f"{new.name}, {new.description}, is {where}."
                present = (new.name,)
            positions[new.name] = cell
        elif len(on_stage) > 1 and rng.random() < 0.4:
            group = tuple(on_stage)
            word = "They" if set(group) == set(previous) else " and ".join(group)
            names = " and ".join(group)
            cells: set[str] = set()
            for name in group:
                positions[name] = cell = _free_cell(rng, cells)
                cells.add(cell)
            where = ", ".join(f"{n} {POSITION_PHRASE[positions[n]]}" for n in group)
            text = f"{word} move around: {where}."
            resolved = f"{names} move around: {where}."
            present = group
        else:
            name = on_stage[int(rng.integers(len(on_stage)))]
            word, _ = _refer(name, previous, subject=True)
            cell = _free_cell(rng, set(positions.values()))  # somewhere new, where nobody stands
            positions[name] = cell
            verb = ("moves", "jumps", "rolls", "slides")[int(rng.integers(4))]
            text = f"{word[0].upper()}{word[1:]} {verb} {POSITION_PHRASE[cell]}."
            resolved = f"{name} {verb} {POSITION_PHRASE[cell]}."
            present = (name,)
        objects = tuple(world.make_object(rng, c.shape, c.colour, c.size, positions[c.name], c.name)
                        for c in cast if c.name in present)  # fmt: skip
        scene = world.Scene(objects, background)
        sentences.append(StorySentence(text, resolved, present, {n: positions[n] for n in present}, scene))
        previous = present
    return Story(tuple(cast), background, tuple(sentences))


# ----------------------------------------------------------------------------------------------- wide scenes
@dataclasses.dataclass(frozen=True)
class Window:
    offset: int  # pixels along the long side
    caption: str
    objects: tuple[world.WorldObject, ...]  # with positions relative to the window


@dataclasses.dataclass(frozen=True)
class WideScene:
    """``tiles`` along ``axis`` ("x": a wide canvas, left to right; "y": a tall one, top to bottom)."""

    tiles: tuple[world.Scene, ...]
    background: str
    axis: str

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        n = len(self.tiles) * TILE
        return (TILE, n) if self.axis == "x" else (n, TILE)

    def placed(self) -> list[tuple[world.WorldObject, float, float]]:
        """Every object with its centre in canvas pixels (x, y)."""
        out = []
        for i, tile in enumerate(self.tiles):
            dx, dy = (i * TILE, 0) if self.axis == "x" else (0, i * TILE)
            out += [(o, dx + o.cx * TILE, dy + o.cy * TILE) for o in tile.objects]
        return out

    def global_caption(self) -> str:
        along = (lambda p: p[1]) if self.axis == "x" else (lambda p: p[2])
        names = [f"{world._article(o.size)} {o.size} {o.colour} {o.shape}" for o, _, _ in sorted(self.placed(), key=along)]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else (names[0] if names else "nothing")
        kind, order = ("wide", "from left to right") if self.axis == "x" else ("tall", "from top to bottom")
        return f"a {kind} {world.BACKGROUND_NOUNS[self.background]} scene with {listed} {order}"

    def windows(self, stride: int = TILE // 2) -> list[Window]:
        """Every TILE-sized window along the canvas at ``stride``, with the caption of what it shows."""
        length = len(self.tiles) * TILE
        out = []
        for offset in range(0, length - TILE + 1, stride):
            inside = []
            for obj, x, y in self.placed():
                along, across = (x, y) if self.axis == "x" else (y, x)
                if offset <= along < offset + TILE:
                    u, v = ((along - offset) / TILE, across / TILE) if self.axis == "x" else (across / TILE, (along - offset) / TILE)
                    cell = world.POSITIONS[3 * min(2, int(v * 3)) + min(2, int(u * 3))]
                    inside.append(dataclasses.replace(obj, position=cell, cx=u, cy=v))
            scene = world.Scene(tuple(inside), self.background)
            caption = world.caption(scene, world.rng_for("window", offset), FULL)
            out.append(Window(offset, caption, tuple(inside)))
        return out


FULL = world.CaptionOptions(p_size=1.0, p_position=1.0, p_background=1.0)


def wide_scene(seed: int, tiles: int = 4, axis: str = "x", stream: str = "wide") -> WideScene:
    """``tiles`` world scenes (0-2 objects each) on one background, laid along ``axis``."""
    rng = world.rng_for(stream, axis, seed)
    background = world.BACKGROUNDS[int(rng.integers(len(world.BACKGROUNDS)))]
    scenes = []
    for i in range(tiles):
        n = int(rng.choice([0, 1, 2], p=[0.2, 0.5, 0.3]))
        tile = world.sample_scene(world.rng_for(stream, axis, seed, i), n_objects=n) if n else world.Scene((), background)
        scenes.append(world.Scene(tile.objects, background))
    return WideScene(tuple(scenes), background, axis)


def render_wide(scene: WideScene) -> np.ndarray:
    """uint8 RGB (height, width, 3): one continuous background, each tile's objects drawn in place."""
    if scene.axis == "x":  # rows of a background are uniform, so tiles side by side continue each other
        img = np.tile(world.background_image(scene.background, TILE), (1, len(scene.tiles), 1))
    else:  # a tall canvas: the sky's gradient and the stripes span its whole height
        img = world.background_image(scene.background, len(scene.tiles) * TILE)[:, :TILE].copy()
    for i, tile in enumerate(scene.tiles):
        y0, x0 = (0, i * TILE) if scene.axis == "x" else (i * TILE, 0)
        region = img[y0:y0 + TILE, x0:x0 + TILE]
        for obj, alpha in zip(tile.objects, world.coverage(tile, TILE), strict=True):
            region[:] = region * (1 - alpha[..., None]) + np.asarray(obj.rgb)[None, None, :] * alpha[..., None]
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
