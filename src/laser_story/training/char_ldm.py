"""Train Char-LDM on the built-in world as StoryGPT-V's stage 1 does: the character fuser and a fine-tune of the
128x128 tiny model's UNet, with the cross-attention mask loss.

    python -m laser_story.training.char_ldm --seed 0 --threads 2

Data: every sentence of world stories (``datasets.story``, stream ``char-ldm``) as a frame: the render, the
per-character masks (``world.render_masks``), and the frame prompt the Story LLM Mapper writes for it
(``story.prompts``, sentence style: resolved text, descriptions, setting) with the token spans of each
character. Each cast member's reference features are image-encoder embeddings of renders of it alone (random
place, pose and background), one drawn per use.

Loss: eps MSE (restricted to the union of the character masks with probability ``mask_loss_prob`` 0.3) +
``reg_weight`` (1e-3) x L_reg, where L_reg = mean over characters of (mean cross-attention probability of its
fused token outside its mask - inside), on the middle UNet levels (input 4, 5, 7, 8, middle, output 3-8: the
FastComposer / StoryGPT-V choice). Conditioning: 10 % unconditional, 10 % text only, 80 % fused. EMA of the
weights (diffusers' ``EMAModel``), SD's DDPM schedule (diffusers' ``DDPMScheduler``).

Stages (each resumes from ``--work``, default ``.cache/char-ldm/seed<N>``): ``data``, ``train``, ``export``: the
fine-tuned model as a tiny-model file (text encoder and VAE unchanged) and the fuser beside it, both with this
command in their metadata.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ..story import fuser as fuser_file
from ..story import prompts
from ..tinyworld import datasets, weights, world
from .common import (
    Logger,
    base_model,
    checkpoint,
    cosine_lr,
    load_checkpoint,
    resume,
    save_checkpoint,
    sd_schedule,
    start_run,
    torch_generator,
)

LATENT_SCALE = 0.18215
SIZE = 128
MASK_SIDE = 32  # masks are kept at 32x32 and resized to each attention grid
DEFAULT_OUT = os.path.join(weights.WEIGHTS_DIR, "tinyworld-charldm.safetensors")
REG_BLOCKS = {("input", 4), ("input", 5), ("input", 7), ("input", 8), ("middle", 0), ("output", 3), ("output", 4),
              ("output", 5), ("output", 6), ("output", 7), ("output", 8)}  # fmt: skip


@dataclasses.dataclass
class TrainConfig:
    seed: int = 0
    threads: int = 1
    init_from: str = ""  # "" = the shipped 128x128 model
    n_frames: int = 3000
    reference_renders: int = 16
    steps: int = 1500
    batch: int = 16
    lr: float = 1e-4
    fuser_lr: float = 5e-4
    warmup: int = 100
    weight_decay: float = 0.01
    reg_weight: float = 1e-3
    mask_loss_prob: float = 0.3
    uncond_prob: float = 0.1
    text_only_prob: float = 0.1
    ema_decay: float = 0.999
    ckpt_every: int = 200
    log_every: int = 50
    halt_at: int = 0

    PRESETS = ("full", "smoke")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        presets = {"full": {}, "smoke": dict(n_frames=6, reference_renders=2, steps=4, batch=3, warmup=2, ckpt_every=2,
                                             log_every=1)}  # fmt: skip
        return cls(**{**presets[name], **overrides})


@torch.no_grad()
def build_dataset(cfg: TrainConfig, clip, vae, clip_vision, work: str, log: Logger) -> dict[str, Any]:
    path = os.path.join(work, "data.pt")
    data = load_checkpoint(path)
    if data is not None and len(data["latents"]) == cfg.n_frames:
        return data
    t0 = time.time()
    cast = {c.name: c for c in world.CAST}
    latents, masks, contexts, owners = [], [], [], []
    seed = reported = 0
    while len(latents) < cfg.n_frames:
        story = datasets.story(seed, stream="char-ldm")
        seed += 1
        for sentence in story.sentences:
            if len(latents) == cfg.n_frames:
                break
            image = torch.from_numpy(world.render(sentence.scene, SIZE)).float()[None] / 255.0
            latents.append(vae.encode(image)[0].half())
            names = [o.character for o in sentence.scene.objects]
            found = world.render_masks(sentence.scene, MASK_SIDE * 4)
            small = [torch.from_numpy(m.astype(np.float32))[None, None] for m in found]
            masks.append(torch.cat([F.avg_pool2d(m, 4) for m in small], 1)[0].half())
            segments = prompts.frame_segments(sentence.resolved, sentence.present,
                                              {n: cast[n].description for n in sentence.present}, datasets.SETTING_PHRASE[story.background])
            tokens, _pooled, spans = prompts.encode(clip, segments)  # the prompt the Story LLM Mapper writes
            contexts.append(tokens[0].half())
            owners.append([(world.CAST.index(cast[n]), spans.get(n, {}).get("ends", [])) for n in names])
        if len(latents) // 500 > reported:
            reported = len(latents) // 500
            print(f"[data] {len(latents)}/{cfg.n_frames} frames", flush=True)
    references = []
    for c in world.CAST:
        rng = world.rng_for("char-ldm-reference", c.name)
        renders = []
        for _ in range(cfg.reference_renders):
            obj = world.make_object(rng, c.shape, c.colour, c.size, world.POSITIONS[int(rng.integers(9))], c.name)
            scene = world.Scene((obj,), world.BACKGROUNDS[int(rng.integers(len(world.BACKGROUNDS)))])
            renders.append(torch.from_numpy(world.render(scene, SIZE)).float() / 255.0)
        references.append(fuser_file.image_features(clip_vision, torch.stack(renders)).half())  # as at run time
    data = {"latents": latents, "masks": masks, "contexts": contexts, "owners": owners,
            "references": torch.stack(references), "empty": clip.encode_from_tokens(clip.tokenize(""))[0].half()}
    log("data", cfg.n_frames, seconds=time.time() - t0)
    save_checkpoint(data, path)
    return data


class AttentionProbe:
    """attn2 replace on the REG_BLOCKS that computes the attention explicitly (on the autograd graph) and keeps
    each call's probabilities averaged over heads, with its token grid."""

    def __init__(self):
        self.maps: list[tuple[torch.Tensor, tuple[int, int]]] = []

    def __call__(self, q, k, v, extra):
        heads = extra["n_heads"]
        b, n, inner = q.shape
        d = inner // heads
        q, k, v = (t.reshape(b, -1, heads, d).transpose(1, 2) for t in (q, k, v))
        probs = torch.softmax(q @ k.transpose(-1, -2) * d**-0.5, dim=-1)
        shape = extra["activations_shape"]
        self.maps.append((probs.mean(1), (int(shape[-2]), int(shape[-1]))))
        return (probs @ v).transpose(1, 2).reshape(b, n, inner)


def reg_loss(probe: AttentionProbe, masks: list[torch.Tensor], tokens: list[list[int]]) -> torch.Tensor:
    """StoryGPT-V's L_reg: per frame and character, mean attention of its token outside its mask - inside."""
    terms = []
    for probs, grid in probe.maps:
        for b, (frame_masks, frame_tokens) in enumerate(zip(masks, tokens, strict=True)):
            for mask, token in zip(frame_masks, frame_tokens, strict=True):
                if not token:
                    continue
                m = F.interpolate(mask[None, None], size=grid, mode="bilinear", antialias=True, align_corners=False)
                m = m.flatten()
                a = probs[b][:, token].mean(-1)
                inside = (a * m).sum() / m.sum().clamp(min=1e-6)
                outside = (a * (1 - m)).sum() / (1 - m).sum().clamp(min=1e-6)
                terms.append(outside - inside)
    return torch.stack(terms).mean() if terms else torch.zeros(())


def _batch(cfg: TrainConfig, data: dict[str, Any], fuser: fuser_file.CharFuser, rng: np.random.Generator):
    x0s, contexts, masks, tokens, union = [], [], [], [], []
    for _ in range(cfg.batch):
        i = int(rng.integers(len(data["latents"])))
        x0s.append(data["latents"][i].float() * LATENT_SCALE)
        frame_masks = data["masks"][i].float()
        masks.append(list(frame_masks))
        union.append(frame_masks.amax(0) if len(frame_masks) else torch.zeros(MASK_SIDE, MASK_SIDE))
        r = rng.random()
        kind = "uncond" if r < cfg.uncond_prob else "text" if r < cfg.uncond_prob + cfg.text_only_prob else "fused"
        context = data["empty"].float() if kind == "uncond" else data["contexts"][i].float()
        if kind == "fused":
            positions = {end: data["references"][who][int(rng.integers(len(data["references"][who])))].float()
                         for who, ends in data["owners"][i] for end in ends}  # fmt: skip
            context = fuser.fuse(context, positions) if positions else context
        contexts.append(context)
        tokens.append([[] if kind == "uncond" else list(ends) for _who, ends in data["owners"][i]])
    return torch.stack(x0s), torch.stack(contexts), masks, tokens, torch.stack(union)[:, None]


def train(cfg: TrainConfig, work: str, log: Logger):
    from diffusers.training_utils import EMAModel

    from ..tinyworld.model import build_model

    spec, parts, clip, vae, clip_vision = base_model(cfg.init_from, SIZE)
    data = build_dataset(cfg, clip, vae, clip_vision, work, log)
    unet = build_model(spec, seed=cfg.seed).model.diffusion_model.float()
    unet.load_state_dict(parts["unet"])
    torch.manual_seed(cfg.seed)
    fuser = fuser_file.CharFuser(spec.context_dim, data["references"].shape[-1])
    unet.train()
    fuser.train()
    params = [*unet.parameters(), *fuser.parameters()]
    for p in params:
        p.requires_grad_(True)
    schedule = sd_schedule()
    opt = torch.optim.AdamW([{"params": list(unet.parameters()), "lr": cfg.lr},
                             {"params": list(fuser.parameters()), "lr": cfg.fuser_lr}], weight_decay=cfg.weight_decay)
    ema = EMAModel(params, decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    ckpt_path = os.path.join(work, "train_ckpt.pt")
    state = {"unet": unet, "fuser": fuser, "opt": opt, "ema": ema}
    start, _ = resume(ckpt_path, "train", state)
    probe = AttentionProbe()
    options = {"patches_replace": {"attn2": {(*key, 0): probe for key in REG_BLOCKS}}}
    acc: dict[str, float] = {}
    t_start = time.time()
    for step in range(start, cfg.steps):
        for group, base in zip(opt.param_groups, (cfg.lr, cfg.fuser_lr), strict=True):
            group["lr"] = cosine_lr(step, cfg.steps, base, cfg.warmup)
        rng = world.rng_for("char-ldm-train", cfg.seed, step)
        gen = torch_generator("char-ldm-noise", cfg.seed, step)
        x0, context, masks, tokens, union = _batch(cfg, data, fuser, rng)
        t = torch.randint(0, 1000, (cfg.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        probe.maps.clear()
        pred = unet(schedule.add_noise(x0, eps, t), timesteps=t.float(), context=context, transformer_options=options)
        err = (pred - eps) ** 2
        region = F.interpolate(union, size=x0.shape[-2:], mode="bilinear", align_corners=False)
        masked = torch.from_numpy(rng.random(cfg.batch) < cfg.mask_loss_prob)[:, None, None, None] & (region.sum((1, 2, 3), keepdim=True) > 0)
        weight = torch.where(masked, region.expand_as(err), torch.ones_like(err))
        mse = (err * weight).sum((1, 2, 3)) / weight.sum((1, 2, 3)).clamp(min=1e-6)
        reg = reg_loss(probe, masks, tokens)
        loss = mse.mean() + cfg.reg_weight * reg
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.step(params)
        for name, value in (("loss", loss), ("mse", mse.mean()), ("reg", reg)):
            acc[name] = acc.get(name, 0.0) + float(value.detach())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            rate = (time.time() - t_start) / (step + 1 - start)
            log("train", step + 1, loss=acc["loss"] / acc["n"], mse=acc["mse"] / acc["n"], reg=acc["reg"] / acc["n"],
                lr=opt.param_groups[0]["lr"], s_per_step=rate)
            acc = {}
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            checkpoint(ckpt_path, step + 1, state)
        if step + 1 == cfg.halt_at:
            return None
    ema.copy_to(params)
    return unet, fuser


def fuser_path(model_path: str) -> str:
    return model_path.removesuffix(".safetensors") + fuser_file.FILE_SUFFIX


def export(out: str, base_file: str, unet: torch.nn.Module, fuser: fuser_file.CharFuser, metadata: dict[str, Any]) -> None:
    """The fine-tuned UNet as a tiny-model file that shares the base file's text encoder and VAE (unchanged, so
    not stored twice: the base must sit beside it), and the fuser beside it."""
    meta = weights.read_metadata(base_file)
    tensors = {f"unet.{key}": value.detach().to(torch.float16) for key, value in unet.state_dict().items()}
    kept = {k: v for k, v in meta.items() if k not in ("kind", "command", "seed", "train")}
    shares = os.path.relpath(os.path.abspath(base_file), os.path.dirname(os.path.abspath(out)))
    weights.save_tensors(out, tensors, weights.KIND, {**kept, **metadata, "shares_from": shares,
                                                      "char_ldm_fuser": os.path.basename(fuser_path(out))})  # fmt: skip
    fuser_file.save(fuser_path(out), fuser.eval(), {**metadata, "model": os.path.basename(out)})


def main(argv: list[str] | None = None) -> int:
    run = start_run(__spec__.name, __doc__, TrainConfig, DEFAULT_OUT, "char-ldm", argv)
    trained = train(run.config, run.work, run.log)
    if trained is None:
        print(f"halted at step {run.config.halt_at}; run the same command again to resume", flush=True)
        return 0
    unet, fuser = trained
    export(run.args.out, run.config.init_from or weights.DEFAULT_WEIGHTS, unet, fuser, run.metadata())
    run.wrote(run.args.out)
    run.wrote(fuser_path(run.args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
