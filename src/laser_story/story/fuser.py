"""The character fuser of Char-LDM (StoryGPT-V, after FastComposer): a character's image feature fused into the
encoded token that ends its name, ``x = mlp1(cat(token, image)) + token; x = mlp2(x); x = layer_norm(x)``.

Module and parameter names are FastComposer's ``postfuse_module``, so a StoryGPT-V / FastComposer checkpoint's
fuser (768-d text tokens, 768-d CLIP ViT-L image embeddings) loads as it is, with or without the
``postfuse_module.`` prefix; sizes are read from the weights. Pure module: torch and safetensors.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

KIND = "char-fuser"
FILE_SUFFIX = "-fuser.safetensors"  # the Char-LDM trainer writes <model>-fuser.safetensors beside <model>.safetensors
PREFIX = "postfuse_module."


class FuserError(ValueError):
    """A fuser file that cannot be used, or a feature size that does not fit it; the message names both."""


class MLP(torch.nn.Module):
    def __init__(self, in_dim: int, out_dim: int, hidden: int, residual: bool):
        super().__init__()
        self.layernorm = torch.nn.LayerNorm(in_dim)
        self.fc1 = torch.nn.Linear(in_dim, hidden)
        self.fc2 = torch.nn.Linear(hidden, out_dim)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.fc2(torch.nn.functional.gelu(self.fc1(self.layernorm(x))))
        return y + x if self.residual else y


class CharFuser(torch.nn.Module):
    """``text_dim``: the text encoder's token width; ``image_dim``: the image encoder's embedding size."""

    def __init__(self, text_dim: int, image_dim: int):
        super().__init__()
        self.text_dim, self.image_dim = text_dim, image_dim
        self.mlp1 = MLP(text_dim + image_dim, text_dim, text_dim, residual=False)
        self.mlp2 = MLP(text_dim, text_dim, text_dim, residual=True)
        self.layer_norm = torch.nn.LayerNorm(text_dim)

    def forward(self, token: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.mlp1(torch.cat([token, image], -1)) + token
        return self.layer_norm(self.mlp2(x))

    def check_image_dim(self, size: int, source: str = "the CLIP_VISION") -> None:
        if size != self.image_dim:
            raise FuserError(
                f"clip_vision: {source} gives {size}-d image embeddings, but the fuser was trained on {self.image_dim}-d "
                f"ones; use the image encoder the fuser was trained with"
            )

    def fuse(self, tokens: torch.Tensor, positions: dict[int, torch.Tensor]) -> torch.Tensor:
        """``tokens`` [T, D] with each ``position``'s token fused with its image feature; the rest unchanged."""
        if tokens.shape[-1] != self.text_dim:
            raise FuserError(f"clip: the text encoder gives {tokens.shape[-1]}-d tokens, but the fuser expects "
                             f"{self.text_dim}-d ones; use the checkpoint the fuser was trained with")
        out = tokens.clone()
        param = self.mlp1.fc1.weight
        for position, feature in positions.items():
            self.check_image_dim(feature.numel())
            fused = self(tokens[position].to(param), feature.reshape(-1).to(param))
            out[position] = fused.to(tokens.dtype)
        return out


@torch.no_grad()
def image_features(clip_vision, images: torch.Tensor) -> torch.Tensor:
    """[N, E] image embeddings of IMAGE ``images`` as the fuser takes them: ``image_embeds`` as core CLIPVisionEncode
    gives them (whole image, no crop, not normalised: FastComposer's projected CLS), in training and at run time."""
    return clip_vision.encode_image(images[..., :3], crop=False)["image_embeds"].float()


def _strip(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    if any(k.startswith(PREFIX) for k in state):
        state = {k[len(PREFIX):]: v for k, v in state.items() if k.startswith(PREFIX)}
    return state


def from_state_dict(state: dict[str, torch.Tensor], source: str = "the fuser") -> CharFuser:
    """A fuser from its tensors (this pack's files or a FastComposer / StoryGPT-V ``postfuse_module``)."""
    state = _strip(state)
    try:
        text_dim = state["mlp1.fc1.weight"].shape[0]
        image_dim = state["mlp1.fc1.weight"].shape[1] - text_dim
        fuser = CharFuser(text_dim, image_dim)
        fuser.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise FuserError(f"{source} is not a character fuser (expected postfuse_module mlp1/mlp2/layer_norm tensors): "
                         f"{exc}") from None
    return fuser.eval()


def load(path: str) -> tuple[CharFuser, dict[str, Any]]:
    if not os.path.isfile(path):
        raise FuserError(f"fuser file {path!r} does not exist")
    if path.endswith(".safetensors"):
        with safe_open(path, "pt") as f:
            meta = dict(f.metadata() or {})
        state = load_file(path)
    else:  # a FastComposer / StoryGPT-V pytorch_model.bin (tensors only)
        state = torch.load(path, map_location="cpu", weights_only=True)
        meta = {}
    return from_state_dict(state, repr(path)), meta


def save(path: str, fuser: CharFuser, metadata: dict[str, Any]) -> None:
    tensors = {PREFIX + k: v.detach().to(torch.float16).contiguous() for k, v in fuser.state_dict().items()}
    save_file(tensors, path, metadata={"kind": KIND, **{k: v if isinstance(v, str) else json.dumps(v)
                                                         for k, v in metadata.items()}})  # fmt: skip
