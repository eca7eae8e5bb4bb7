"""Train the built-in image encoder against the tiny model's text encoder (CLIP-style, on world renders).

    python -m laser_story.training.image_encoder --seed 0 --threads 2 --out src/laser_story/tinyworld/weights/tinyworld-image-encoder.safetensors

The text encoder of the shipped tiny models (the 64x64 one, which the 128x128 one keeps unchanged) stays as it is; what trains is the ViT (ComfyUI's
``CLIPVisionModelProjection``, through a forward without ComfyUI's in-place residuals so autograd can
differentiate it) and a small text head over the text encoder's token states. Loss: the symmetric InfoNCE of
CLIP with a learned temperature, on batches of renders and full captions (every attribute stated, random
phrasing), with held-out scenes excluded. Renders are drawn at the encoder's input size once (``data``
stage), then flipped/jittered per step. Checkpoints under ``--work`` make a run resume exactly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ..tinyworld import encoder, weights, world
from .common import (
    Logger,
    checkpoint,
    cosine_lr,
    load_checkpoint,
    resume,
    save_checkpoint,
    start_run,
    torch_generator,
    training_init,
)
from .data import heldout_keys
from .text import CaptionTokens, text_forward

FULL = world.CaptionOptions(p_size=1.0, p_position=1.0, p_background=1.0)


@dataclasses.dataclass
class EncoderConfig:
    seed: int = 0
    threads: int = 1
    n_scenes: int = 12000
    steps: int = 3000
    batch: int = 128
    lr: float = 1e-3
    warmup: int = 100
    weight_decay: float = 0.05
    ckpt_every: int = 250
    log_every: int = 50

    PRESETS = ("full", "smoke")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EncoderConfig:
        presets = {"full": {}, "smoke": dict(n_scenes=64, steps=6, batch=8, warmup=2, ckpt_every=3, log_every=1)}
        return cls(**{**presets[name], **overrides})


def vision_forward(model, pixels: torch.Tensor) -> torch.Tensor:
    """``CLIPVisionModelProjection`` forward (CLS token, post layer norm, projection), differentiable."""
    from comfy.ldm.modules.attention import optimized_attention_for_device

    vm = model.vision_model
    x = vm.pre_layrnorm(vm.embeddings(pixels))
    attention = optimized_attention_for_device(x.device, mask=False, small_input=True)
    for layer in vm.encoder.layers:
        x = x + layer.self_attn(layer.layer_norm1(x), None, attention)
        x = x + layer.mlp(layer.layer_norm2(x))
    return model.visual_projection(vm.post_layernorm(x[:, 0]))


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 NHWC renders -> the encoder's normalised NCHW input (the same mean/std as its config)."""
    mean = torch.tensor(encoder.CONFIG["image_mean"]).view(1, 3, 1, 1)
    std = torch.tensor(encoder.CONFIG["image_std"]).view(1, 3, 1, 1)
    return (images.permute(0, 3, 1, 2).float() / 255.0 - mean) / std


@torch.no_grad()
def build_renders(cfg: EncoderConfig, work: str, log: Logger) -> dict[str, Any]:
    path = os.path.join(work, "encoder_data.pt")
    data = load_checkpoint(path)
    if data is not None and len(data["scenes"]) == cfg.n_scenes:
        return data
    size = encoder.CONFIG["image_size"]
    exclude = heldout_keys()
    t0 = time.time()
    scenes = [world.scene_from_seed(i, "encoder", exclude=exclude) for i in range(cfg.n_scenes)]
    images = torch.from_numpy(np.stack([world.render(s, size) for s in scenes]))
    data = {"scenes": [s.to_json() for s in scenes], "images": images}
    log("data", cfg.n_scenes, seconds=time.time() - t0)
    save_checkpoint(data, path)
    return data


def train(cfg: EncoderConfig, work: str, log: Logger):
    _, clip, _, _ = weights.load(weights.BASE_FILE)  # the 128x128 model keeps this text encoder as it is
    te = clip.cond_stage_model.clip_l.transformer.float().eval()
    tokens = CaptionTokens(clip.tokenizer)
    data = build_renders(cfg, work, log)
    scenes = [world.Scene.from_json(s) for s in data["scenes"]]
    images = data["images"]
    clip_vision = encoder.build()
    model = clip_vision.model.float()
    torch.manual_seed(cfg.seed)
    training_init(model)
    with torch.no_grad():
        model.vision_model.embeddings.class_embedding.normal_(std=0.02)
    head = encoder.TextHead(te.text_model.final_layer_norm.weight.numel(), encoder.CONFIG["projection_dim"])
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    params = [*model.parameters(), *head.parameters(), logit_scale]
    for p in params:
        p.requires_grad_(True)
    model.train()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path = os.path.join(work, "encoder_ckpt.pt")
    parts = {"model": model, "head": head, "opt": opt}
    start, ck = resume(ckpt_path, "encoder", parts)
    if ck is not None:
        with torch.no_grad():
            logit_scale.copy_(ck["logit_scale"])
    acc: dict[str, float] = {}
    t_start = time.time()
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        rng = world.rng_for("encoder", cfg.seed, step)
        gen = torch_generator("encoder-aug", cfg.seed, step)
        idx = rng.choice(len(scenes), size=cfg.batch, replace=False)
        pixels = preprocess(images[torch.from_numpy(idx)])
        pixels = pixels + 0.02 * torch.randn(pixels.shape, generator=gen)  # render noise; no flips: left/right matter
        ids = torch.tensor([tokens.encode([(world.caption(scenes[i], rng, FULL), None)])[0] for i in idx])
        with torch.no_grad():
            states = text_forward(te, ids)
        mask = ((ids != tokens.end) & (ids != tokens.start)).float()
        img = F.normalize(vision_forward(model, pixels), dim=-1)
        txt = F.normalize(head(states, mask), dim=-1)
        logits = logit_scale.clamp(max=math.log(100)).exp() * img @ txt.T
        target = torch.arange(cfg.batch)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc["loss"] = acc.get("loss", 0.0) + float(loss.detach())
        acc["top1"] = acc.get("top1", 0.0) + float((logits.argmax(1) == target).float().mean())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            rate = (time.time() - t_start) / (step + 1 - start)
            log("encoder", step + 1, loss=acc["loss"] / acc["n"], batch_top1=acc["top1"] / acc["n"],
                temperature=float(1 / logit_scale.detach().exp()), lr=opt.param_groups[0]["lr"], s_per_step=rate)
            acc = {}
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            checkpoint(ckpt_path, step + 1, parts, logit_scale=logit_scale.detach())
    return model, head


def main(argv: list[str] | None = None) -> int:
    run = start_run(__spec__.name, __doc__, EncoderConfig, encoder.DEFAULT_ENCODER, "image-encoder", argv)
    model, head = train(run.config, run.work, run.log)
    encoder.save(run.args.out, {k: v.half() for k, v in model.state_dict().items()}, head.state_dict(),
                 {**run.metadata(), "aligned_with": os.path.basename(weights.BASE_FILE)})
    run.wrote(run.args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
