"""The built-in image encoder: a small ViT as ComfyUI's own ``ClipVisionModel``, aligned with the tiny text
encoder by contrastive training on world renders.

It is a ``CLIP_VISION`` like any other (core ``CLIPVisionEncode`` runs on it; ``image_embeds`` is the
projected CLS token). Its text side is the tiny model's own text encoder, kept as it is, followed by a
small head stored in the same file (``text_head.*``): the mean of a caption's token states, projected. So
image-text and image-image similarities can be measured without the judge.

File: safetensors, ``kind`` ``image-encoder``; ``vision.*`` (ClipVisionModel state dict), ``text_head.*``;
metadata ``config`` (the ClipVisionModel JSON), ``aligned_with`` (the tiny-model file whose text encoder it
was trained against), ``command``, ``seed``, ``train``. ComfyUI is imported inside the functions only.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import torch

from . import weights

KIND = "image-encoder"
DEFAULT_ENCODER = os.path.join(weights.WEIGHTS_DIR, "tinyworld-image-encoder.safetensors")
SHIPPED_PATH = "src/laser_story/tinyworld/weights/tinyworld-image-encoder.safetensors"
REBUILD_COMMAND = f"python -m laser_story.training.image_encoder --seed 0 --threads 2 --out {SHIPPED_PATH}"

CONFIG: dict[str, Any] = {
    "model_type": "clip_vision_model",
    "hidden_act": "quick_gelu",
    "hidden_size": 96,
    "intermediate_size": 192,
    "num_attention_heads": 4,
    "num_hidden_layers": 4,
    "num_channels": 3,
    "image_size": 64,
    "patch_size": 8,
    "projection_dim": 64,
    "layer_norm_eps": 1e-5,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


class TextHead(torch.nn.Module):
    """Caption -> embedding on top of the tiny text encoder's token states (masked mean, then a projection)."""

    def __init__(self, width: int, dim: int):
        super().__init__()
        self.proj = torch.nn.Linear(width, dim)

    def forward(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        mean = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp_min(1)
        return self.proj(mean)


def _problem(path: str, what: str) -> weights.TinyWeightsError:
    return weights.TinyWeightsError(
        f"built-in image encoder {path!r}: {what}. Rebuild it from the repository root with `{REBUILD_COMMAND}` "
        f"(about 20 minutes on 2 CPU cores), or restore the shipped file with `git checkout -- {SHIPPED_PATH}`."
    )


def build(config: dict[str, Any] | None = None):
    """A ComfyUI ``ClipVisionModel`` with ``config`` (it reads its config from a JSON file)."""
    import comfy.clip_vision

    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config or CONFIG, f)
    try:
        return comfy.clip_vision.ClipVisionModel(f.name)
    finally:
        os.unlink(f.name)


def save(path: str, vision: dict[str, torch.Tensor], text_head: dict[str, torch.Tensor], metadata: dict[str, Any],
         config: dict[str, Any] | None = None) -> None:
    tensors = {f"vision.{k}": v for k, v in vision.items()} | {f"text_head.{k}": v for k, v in text_head.items()}
    meta = {"config": json.dumps(config or CONFIG), **metadata}
    weights.save_tensors(path, tensors, KIND, meta)


def load(path: str = DEFAULT_ENCODER):
    """(ClipVisionModel, TextHead, metadata); raises ``TinyWeightsError`` naming the file and the fix."""
    tensors, meta = weights.read_tensors(path, KIND, _problem)
    try:
        config = json.loads(meta["config"])
        clip_vision = build(config)
        vision = {k.removeprefix("vision."): v for k, v in tensors.items() if k.startswith("vision.")}
        missing, unexpected = clip_vision.load_sd(vision)
        if missing or unexpected:
            raise KeyError(f"missing {missing[:3]}, unexpected {unexpected[:3]}")
        head_sd = {k.removeprefix("text_head."): v.float() for k, v in tensors.items() if k.startswith("text_head.")}
        head = TextHead(head_sd["proj.weight"].shape[1], head_sd["proj.weight"].shape[0])
        head.load_state_dict(head_sd)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise _problem(path, f"its tensors do not fit the config it carries ({type(exc).__name__}: {exc})") from exc
    return clip_vision, head.eval(), meta


def caption_states(clip, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(token states [N, 77, width], mask of each caption's own word tokens [N, 77]) from the tiny text encoder."""
    states, masks = [], []
    for text in captions:
        tokens = clip.tokenize(text)
        ids = [int(t) for t, _ in tokens["l"][0]]
        first_end = ids.index(ids[-1], 1)  # SD1 pads with the end token, so the last id is the end token
        mask = torch.zeros(len(ids))
        mask[1:first_end] = 1.0
        states.append(clip.encode_from_tokens(tokens)[0, : len(ids)].float())
        masks.append(mask)
    return torch.stack(states), torch.stack(masks)


@torch.no_grad()
def image_embeds(clip_vision, images: torch.Tensor) -> torch.Tensor:
    """Unit-length embeddings of IMAGE batches ([N, H, W, 3] in 0..1), as core CLIPVisionEncode computes them."""
    out = clip_vision.encode_image(images, crop=False)
    return torch.nn.functional.normalize(out["image_embeds"].float(), dim=-1)


@torch.no_grad()
def text_embeds(clip, head: TextHead, captions: list[str]) -> torch.Tensor:
    states, mask = caption_states(clip, captions)
    return torch.nn.functional.normalize(head(states, mask), dim=-1)
