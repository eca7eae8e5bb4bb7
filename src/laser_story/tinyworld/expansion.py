"""The built-in expansion model (the tiny model trained to outpaint, arXiv 2407.12642): file format, loading,
and the conditioning it was trained with.

An SD1.5-inpainting-shaped UNet (9 input channels: ComfyUI builds it as an inpainting model) whose context is
``[global caption tokens | local caption tokens | visual tokens]``; the visual tokens are a learned projection
of the image encoder's embedding of the whole scene. The projection travels with the MODEL as a ModelPatcher
attachment, so the Local Caption Expander finds it on whatever clone it is given.

File: safetensors, ``kind`` ``expansion-model``: ``unet.*`` (float16), ``projection.*``; metadata ``spec``,
``base`` (the tiny-model file whose text encoder, VAE and image encoder it expects), ``visual_tokens``,
``command``. ComfyUI is imported inside the functions only.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import torch

from . import weights
from .model import TinySpec

KIND = "expansion-model"
DEFAULT_FILE = os.path.join(weights.WEIGHTS_DIR, "tinyworld-expand.safetensors")
SHIPPED_PATH = "src/laser_story/tinyworld/weights/tinyworld-expand.safetensors"
REBUILD_COMMAND = f"python -m laser_story.training.expansion_model --seed 0 --threads 2 --out {SHIPPED_PATH}"
ATTACHMENT = "laser_story_expansion"
VISUAL_TOKENS = 4
INPUT_KEY = "input_blocks.0.0.weight"


class VisualProjection(torch.nn.Module):
    """Image-encoder embedding [B, F] -> ``tokens`` cross-attention tokens [B, tokens, width]."""

    def __init__(self, features: int, width: int, tokens: int = VISUAL_TOKENS):
        super().__init__()
        self.tokens, self.width = tokens, width
        self.proj = torch.nn.Linear(features, tokens * width)

    def forward(self, embeds: torch.Tensor) -> torch.Tensor:
        return self.proj(embeds).view(-1, self.tokens, self.width)


@dataclasses.dataclass(frozen=True)
class Expansion:
    """What the expander needs besides the UNet: the visual projection and the file it came from."""

    projection: VisualProjection
    path: str


def _problem(path: str, what: str) -> weights.TinyWeightsError:
    return weights.TinyWeightsError(
        f"built-in expansion model {path!r}: {what}. Rebuild it from the repository root with `{REBUILD_COMMAND}` "
        f"(about 2 hours on 2 CPU cores), or restore the shipped file with `git checkout -- {SHIPPED_PATH}`."
    )


def check(path: str) -> str | None:
    """None when ``path`` is an expansion-model file; else the error message with the fix (tensors not read)."""

    def header_problem(meta: dict[str, str]) -> str | None:
        kind = meta.get("kind")
        return None if kind == KIND else f"it holds {kind!r} weights, expected {KIND!r}"

    return weights.check_header(path, _problem, header_problem)


def widen_input(base: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The base UNet's state dict for the 9-channel UNet: the extra input channels (mask, masked latent) start at
    zero, so before training the model is exactly the base model."""
    out = dict(base)
    wide = torch.zeros_like(target[INPUT_KEY])
    wide[:, : base[INPUT_KEY].shape[1]] = base[INPUT_KEY]
    out[INPUT_KEY] = wide
    return out


def encode_text(clip, text: str) -> torch.Tensor:
    """Cross-attention tokens [1, 77, width] of ``text``, as CLIPTextEncode makes them."""
    return clip.encode_from_tokens(clip.tokenize(text)).float()


@torch.no_grad()
def grey_latent(vae) -> torch.Tensor:
    """The VAE latent [4] of a mid-grey image: what fills the masked part of the model's masked-latent input."""
    return vae.encode(torch.full((1, 64, 64, 3), 0.5)).float().mean(dim=(0, 2, 3))


def save(path: str, spec: TinySpec, unet: dict[str, torch.Tensor], projection: VisualProjection, base_file: str,
         metadata: dict[str, Any]) -> None:
    tensors = {f"unet.{k}": v.detach().half() for k, v in unet.items()}
    tensors |= {f"projection.{k}": v.detach().float() for k, v in projection.state_dict().items()}
    weights.save_tensors(path, tensors, KIND, {"format": weights.FORMAT, "spec": json.dumps(spec.to_json()),
                                               "base": os.path.basename(base_file),
                                               "visual_tokens": str(projection.tokens), "image_size": "128", **metadata})


def load(path: str = DEFAULT_FILE):
    """(MODEL ModelPatcher carrying the ``Expansion`` attachment, metadata); errors name the file and the fix."""
    from .model import build_model

    tensors, meta = weights.read_tensors(path, KIND, _problem)
    try:
        spec = TinySpec.from_json(json.loads(meta["spec"]))
        unet = {k.removeprefix("unet."): v.float() for k, v in tensors.items() if k.startswith("unet.")}
        proj_sd = {k.removeprefix("projection."): v.float() for k, v in tensors.items() if k.startswith("projection.")}
        tokens = int(meta.get("visual_tokens", VISUAL_TOKENS))
        projection = VisualProjection(proj_sd["proj.weight"].shape[1], spec.context_dim, tokens)
        projection.load_state_dict(proj_sd)
        model = build_model(spec, unet)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise _problem(path, f"its tensors do not fit the spec it carries ({type(exc).__name__}: {exc})") from exc
    model.model.requires_grad_(False)
    model.set_attachments(ATTACHMENT, Expansion(projection.eval().requires_grad_(False), path))
    return model, meta


def find(model) -> Expansion | None:
    """The expansion attachment of a MODEL (clones keep it), or None for any other model."""
    return model.get_attachment(ATTACHMENT)
