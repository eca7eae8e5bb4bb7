"""The shipped weights file: one safetensors holding the tiny UNet, CLIP and VAE, with the spec inside.

Layout (all tensors float16 unless noted):

* ``unet.*``  ComfyUI ``UNetModel`` state dict (keys as in ``model.diffusion_model``)
* ``vae.*``   ComfyUI ``AutoencodingEngine`` state dict (``encoder.``, ``decoder.``, ``quant_conv.``, ...)
* ``clip.*``  ComfyUI ``CLIPTextModel`` state dict without the 49408-row token embedding, which is stored
  compactly: ``clip_rows.ids`` (int32, the token ids the world's captions use), ``clip_rows.weight`` (their
  rows) and ``clip_rows.default`` (one learned row every other token maps to: words outside the world's
  vocabulary still encode, as an "ignore me" token).
* metadata: ``format``, ``kind`` (what the file holds, see below), ``spec`` (TinySpec JSON),
  ``command``, ``seed``, ``train`` (config and final losses, JSON).

Every weights file of the pack declares its ``kind`` in its metadata, and each loader lists only the files
of its own kind (:func:`files_of_kind`), so a new model's file never shows up in the wrong dropdown.

ComfyUI is imported inside functions only.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from .model import TinySpec

FORMAT = "laser-story-tinyworld/1"
KIND = "tiny-model"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
SHIPPED_FOLDER = "src/laser_story/tinyworld/weights"  # from the repository root
# The shipped models by image side: the 128x128 one is the default; the 64x64 one, which it was grown from and
# whose text encoder both share (the image encoder was trained against it), stays as the fast second choice.
SHIPPED = {128: "tinyworld-128.safetensors", 64: "tinyworld.safetensors"}
DEFAULT_WEIGHTS = os.path.join(WEIGHTS_DIR, SHIPPED[128])
BASE_FILE = os.path.join(WEIGHTS_DIR, SHIPPED[64])
_TRAIN = "python -m laser_story.training.tiny_model"
REBUILD_COMMANDS = {
    SHIPPED[64]: f"{_TRAIN} --seed 0 --threads 2 --out {SHIPPED_FOLDER}/{SHIPPED[64]}",
    SHIPPED[128]: f"{_TRAIN} --preset grow128 --seed 0 --threads 2 --init-from {SHIPPED_FOLDER}/{SHIPPED[64]} "
                  f"--out {SHIPPED_FOLDER}/{SHIPPED[128]}",
}
REBUILD_MINUTES = {SHIPPED[64]: 90, SHIPPED[128]: 130}


def rebuild_command(path: str) -> str:
    """The command that made the shipped file of this name (other names: the default model's)."""
    return REBUILD_COMMANDS.get(os.path.basename(path), REBUILD_COMMANDS[SHIPPED[128]])


def shipped_path(path: str) -> str:
    name = os.path.basename(path)
    return f"{SHIPPED_FOLDER}/{name if name in REBUILD_COMMANDS else SHIPPED[128]}"
TOKEN_EMBEDDING_KEY = "clip_l.transformer.text_model.embeddings.token_embedding.weight"


class TinyWeightsError(RuntimeError):
    """The weights file is missing, unreadable or does not match its spec; the message says how to rebuild it."""


def _problem(path: str, what: str) -> TinyWeightsError:
    shipped = shipped_path(path)
    return TinyWeightsError(
        f"built-in tiny model weights {path!r}: {what}. Rebuild them from the repository root with "
        f"`{rebuild_command(path)}` (about {REBUILD_MINUTES[os.path.basename(shipped)]} minutes on 2 CPU cores), "
        f"or restore the shipped file with `git checkout -- {shipped}`."
    )


def save(
    path: str,
    spec: TinySpec,
    unet: dict[str, torch.Tensor],
    clip: dict[str, torch.Tensor],
    vae: dict[str, torch.Tensor],
    keep_token_ids: list[int],
    default_token_id: int,
    metadata: dict[str, Any],
) -> None:
    tensors: dict[str, torch.Tensor] = {}
    for prefix, sd in (("unet.", unet), ("vae.", vae)):
        for k, v in sd.items():
            tensors[prefix + k] = v.detach().to(torch.float16).contiguous()
    for k, v in clip.items():
        if k == TOKEN_EMBEDDING_KEY:
            ids = torch.tensor(sorted(set(keep_token_ids)), dtype=torch.int32)
            tensors["clip_rows.ids"] = ids
            tensors["clip_rows.weight"] = v[ids.long()].detach().to(torch.float16).contiguous()
            tensors["clip_rows.default"] = v[default_token_id].detach().to(torch.float16).contiguous()
        elif k.endswith("position_ids"):
            continue
        else:
            tensors["clip." + k] = v.detach().to(torch.float16).contiguous()
    save_tensors(path, tensors, KIND, {"format": FORMAT, "spec": json.dumps(spec.to_json()), **metadata})


def save_tensors(path: str, tensors: dict[str, torch.Tensor], kind: str, metadata: dict[str, Any]) -> None:
    """Write a weights file of ``kind`` atomically, readable by every user (safetensors makes it owner-only)."""
    from safetensors.torch import save_file

    meta = {"kind": kind, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, tmp, metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def read_tensors(path: str, kind: str, problem) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and metadata of a weights file that must hold ``kind``; ``problem(path, what)`` makes the error."""
    from safetensors import SafetensorError, safe_open

    if not os.path.isfile(path):
        raise problem(path, "file not found")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no items())
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise problem(path, f"not a readable safetensors file ({type(exc).__name__}: {exc})") from exc
    if meta.get("kind") != kind:
        raise problem(path, f"it holds {meta.get('kind')!r} weights, expected {kind!r}; pick a {kind} file")
    return tensors, meta


def read_metadata(path: str) -> dict[str, str]:
    """The metadata of a safetensors file, without reading its tensors; raises what safetensors raises."""
    from safetensors import safe_open

    with safe_open(path, framework="pt") as f:
        return f.metadata() or {}


def files_of_kind(kind: str, folder: str = WEIGHTS_DIR) -> list[str]:
    """Names of the safetensors files in ``folder`` whose metadata says they hold ``kind``."""
    from safetensors import SafetensorError

    names = []
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            if not name.endswith(".safetensors"):
                continue
            try:
                if read_metadata(os.path.join(folder, name)).get("kind") == kind:
                    names.append(name)
            except (SafetensorError, OSError, ValueError, RuntimeError):
                continue
    return names


def _header_problem(meta: dict[str, str]) -> str | None:
    if meta.get("format") != FORMAT:
        return f"metadata format is {meta.get('format')!r}, expected {FORMAT!r}"
    if meta.get("kind") != KIND:
        return f"it holds {meta.get('kind')!r} weights, not the built-in tiny model ({KIND!r}); pick a {KIND} file"
    return None


def check_header(path: str, problem, header_problem) -> str | None:
    """None when the file exists and ``header_problem(metadata)`` finds nothing; else the error message that
    ``problem(path, what)`` makes (cheap: the tensors are not read)."""
    from safetensors import SafetensorError

    if not os.path.isfile(path):
        return str(problem(path, "file not found"))
    try:
        meta = read_metadata(path)
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        return str(problem(path, f"not a readable safetensors file ({type(exc).__name__}: {exc})"))
    what = header_problem(meta)
    return None if what is None else str(problem(path, what))


def check(path: str = DEFAULT_WEIGHTS) -> str | None:
    """None when the file exists and its header is a tiny-model header; else the error message."""
    return check_header(path, _problem, _header_problem)


def read(path: str = DEFAULT_WEIGHTS) -> tuple[TinySpec, dict[str, dict[str, torch.Tensor]], dict[str, str]]:
    """Spec, state dicts (``unet``, ``clip``, ``vae``; float32, CLIP token embedding expanded) and metadata.

    A fine-tune that changed only the UNet (the Char-LDM) holds only ``unet.*`` and names, in ``shares_from``, the
    file (relative to its own folder) whose text encoder and VAE it uses unchanged."""
    tensors, meta = read_tensors(path, KIND, _problem)
    problem = _header_problem(meta)
    if problem is not None:
        raise _problem(path, problem)
    if meta.get("shares_from"):
        shared, _ = read_tensors(os.path.normpath(os.path.join(os.path.dirname(path), meta["shares_from"])), KIND, _problem)
        tensors = {**{k: v for k, v in shared.items() if not k.startswith("unet.")}, **tensors}
    try:
        spec = TinySpec.from_json(json.loads(meta["spec"]))
    except (KeyError, ValueError, TypeError) as exc:
        raise _problem(path, f"the spec in its metadata is unusable ({exc})") from exc
    parts: dict[str, dict[str, torch.Tensor]] = {"unet": {}, "clip": {}, "vae": {}}
    for k, v in tensors.items():
        head, _, rest = k.partition(".")
        if head in parts:
            parts[head][rest] = v.float()
    try:
        ids = tensors["clip_rows.ids"].long()
        rows = tensors["clip_rows.weight"].float()
        default = tensors["clip_rows.default"].float()
    except KeyError as exc:
        raise _problem(path, f"tensor {exc} is missing") from exc
    vocab = 49408
    emb = default[None, :].repeat(vocab, 1)
    emb[ids] = rows
    parts["clip"][TOKEN_EMBEDDING_KEY] = emb
    return spec, parts, meta


def image_size(meta: dict[str, str]) -> int:
    """The image side a tiny-model file was trained at (files from before the field: 64)."""
    return int(meta.get("image_size", 64))


def load(path: str = DEFAULT_WEIGHTS, expect_size: int | None = None):
    """(MODEL ModelPatcher, CLIP, VAE, metadata) ready for ComfyUI; raises ``TinyWeightsError`` with the fix,
    also when ``expect_size`` is given and the file holds a model trained at another size."""
    from . import model as tiny

    spec, parts, meta = read(path)
    if expect_size is not None and image_size(meta) != expect_size:
        found = image_size(meta)
        raise _problem(path, f"it holds the {found}x{found} tiny model, but {expect_size}x{expect_size} is expected here; "
                             f"pick {SHIPPED.get(expect_size, SHIPPED[128])}")
    try:
        mp = tiny.build_model(spec, parts["unet"])
        clip = tiny.build_clip(spec, parts["clip"])
        vae = tiny.build_vae(spec, parts["vae"])
        missing = sorted(set(vae.first_stage_model.state_dict()) - set(parts["vae"]))
        if missing:
            raise KeyError(f"VAE tensors missing: {missing[:3]}")
        for module in (mp.model, clip.cond_stage_model, vae.first_stage_model):
            module.requires_grad_(False)
    except (RuntimeError, ValueError, KeyError) as exc:
        raise _problem(path, f"its tensors do not fit the spec it carries ({type(exc).__name__}: {exc})") from exc
    return mp, clip, vae, meta
