"""Captions as the tiny CLIP text encoder sees them: token ids through ComfyUI's SD1 tokenizer with the object
each token describes, the vocabulary the shipped weights keep, and a differentiable text-encoder forward."""

from __future__ import annotations

import torch

from ..tinyworld import world

ATTRS = ("colour", "shape", "size", "position")
ATTR_VALUES = {"colour": list(world.COLOURS), "shape": list(world.SHAPES), "size": list(world.SIZES),
               "position": list(world.POSITIONS)}


class CaptionTokens:
    """Token ids of captions through ComfyUI's SD1 tokenizer, with per-token object indices."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.cache: dict[str, list[int]] = {}
        inner = getattr(tokenizer, "clip_l", tokenizer)
        self.start, self.end, self.max_len = inner.start_token, inner.end_token, inner.max_length

    def ids(self, text: str) -> list[int]:
        if text not in self.cache:
            out = self.tok.tokenize_with_weights(text)
            self.cache[text] = [int(t) for t, _ in out["l"][0]]
        return self.cache[text]

    def words(self, text: str) -> list[int]:
        """Token ids without start / end / padding."""
        return [t for t in self.ids(text)[1:] if t != self.end]

    def encode(self, segments: list[tuple[str, int | None]]) -> tuple[list[int], list[int | None]]:
        ids = [self.start]
        owner: list[int | None] = [None]
        for text, obj in segments:
            w = self.words(text)
            ids += w
            owner += [obj] * len(w)
        ids = ids[: self.max_len - 1] + [self.end]
        owner = owner[: self.max_len - 1] + [None]
        ids += [self.end] * (self.max_len - len(ids))
        owner += [None] * (self.max_len - len(owner))
        return ids, owner


def vocabulary_token_ids(tokens: CaptionTokens) -> list[int]:
    ids = {tokens.start, tokens.end}
    for w in world.vocabulary():
        ids.update(tokens.words(w))
        ids.update(tokens.words(w + ","))
    for ch in world.CAST:
        ids.update(tokens.words(ch.name))
    for text in (", ; and", "medium-sized mid-sized top-left"):
        ids.update(tokens.words(text))
    return sorted(ids)


def text_forward(te, ids: torch.Tensor) -> torch.Tensor:
    """ComfyUI's ``CLIPTextModel`` forward (last layer, final layer norm) for token ids, without the
    in-place residual additions of ``comfy.clip_model.CLIPLayer`` that autograd cannot differentiate."""
    from comfy.ldm.modules.attention import optimized_attention_for_device

    tm = te.text_model
    x = tm.embeddings(ids, dtype=torch.float32)
    n = x.shape[1]
    mask = torch.full((n, n), -torch.finfo(x.dtype).max, dtype=x.dtype).triu_(1)
    attention = optimized_attention_for_device(x.device, mask=True, small_input=True)
    for layer in tm.encoder.layers:
        x = x + layer.self_attn(layer.layer_norm1(x), mask, attention)
        x = x + layer.mlp(layer.layer_norm2(x))
    return tm.final_layer_norm(x)
