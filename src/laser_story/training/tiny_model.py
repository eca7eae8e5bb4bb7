"""Train the built-in tiny text-to-image model on the procedural world.

    python -m laser_story.training.tiny_model --seed 0 --threads 2 --out src/laser_story/tinyworld/weights/tinyworld.safetensors
    python -m laser_story.training.tiny_model --preset grow128 --seed 0 --threads 2 \
        --init-from src/laser_story/tinyworld/weights/tinyworld.safetensors \
        --out src/laser_story/tinyworld/weights/tinyworld-128.safetensors

make the shipped 64x64 model and grow the shipped (default) 128x128 model from it (``--out`` defaults to those
files by image size).

Stages (each resumes from its last checkpoint under ``--work``, default ``.cache/tinyworld/seed<N>``):

1. ``vae``   ComfyUI AutoencoderKL (downscale 8, 4 channels) on random world renders: L1 + L2
             reconstruction (object pixels weighted up) + a small KL term; then an exact
             re-parametrisation so ``latent * 0.18215`` (ComfyUI's SD1.5 latent format) has zero mean and
             unit variance per channel.
2. ``data``  renders ``n_scenes`` training scenes (held-out scenes excluded) and caches their latents.
3. ``unet``  ComfyUI's SD1.5-topology UNet (eps prediction, SD's scaled-linear beta schedule taken from
             ComfyUI's own ``model_sampling``), min-SNR-5 loss weighting, 10 % caption dropout for
             classifier-free guidance, EMA of the weights. The tiny CLIP text encoder (ComfyUI's SD1 CLIP
             over the real SD1 tokenizer) trains jointly through cross-attention, plus an auxiliary
             per-token loss that predicts the attributes of the object each caption token describes.
4. ``export`` EMA weights to one float16 safetensors file with the spec and this command in its metadata.

Losses go to stdout and ``<work>/train.log`` (JSON lines). Every random draw is keyed by (seed, stage,
step), so a resumed run continues the same sequence.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ..tinyworld import weights, world
from ..tinyworld.model import TinySpec
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
from .data import heldout_keys, object_coverage, render_batch
from .text import ATTR_VALUES, ATTRS, CaptionTokens, text_forward, vocabulary_token_ids

LATENT_SCALE = 0.18215  # comfy.latent_formats.SD15.scale_factor

# The spec of the shipped model: SD1.5 block topology (12 input / 12 output blocks, 16 transformers), 64
# channels at every level so attention heads are 8 wide (SD15 fixes 8 heads).
TRAINED_SPEC = TinySpec(
    model_channels=64,
    channel_mult=(1, 1, 1, 1),
    num_res_blocks=2,
    attention_levels=(True, True, True, False),
    context_dim=64,
    clip_layers=3,
    clip_heads=2,
    clip_intermediate=128,
    vae_ch=32,
    vae_ch_mult=(1, 2, 2, 2),
)


@dataclasses.dataclass
class TrainConfig:
    seed: int = 0
    threads: int = 1
    image_size: int = world.IMAGE_SIZE  # renders and samples are image_size^2 (latent image_size / 8)
    init_from: str = ""  # a tiny-model weights file to start every part from (growing a model); "" = fresh
    # VAE
    vae_steps: int = 2400
    vae_batch: int = 12
    vae_crop: int = 0  # > 0: train on random crops of this side (batch 2 * vae_batch) until the last vae_full_steps
    vae_full_steps: int = 0
    vae_lr: float = 1e-3
    vae_kl: float = 1e-6
    vae_object_weight: float = 4.0
    vae_grad: float = 1.0  # L1 on image gradients: sharp outlines
    # data
    n_scenes: int = 16000
    # UNet + text encoder
    unet_steps: int = 5600
    unet_batch: int = 64
    unet_lr: float = 5e-4
    text_lr: float = 5e-4
    warmup: int = 200
    weight_decay: float = 0.01
    min_snr: float = 5.0
    snr_floor: float = 0.1
    cond_dropout: float = 0.1
    unk_insert: float = 0.1  # chance per caption of inserting an out-of-vocabulary token
    aux_weight: float = 0.2
    # > 0: latent cells within one cell of an object weigh 1 + object_weight in the diffusion loss, so the few
    # cells that carry an object's outline are not outvoted by the background
    object_weight: float = 0.0
    ema_decay: float = 0.999
    ckpt_every: int = 200
    log_every: int = 50

    PRESETS = ("full", "grow128", "smoke")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        presets = {
            "full": {},
            # A 128x128 model grown from the 64x64 one (--init-from): the VAE adapts on 64-pixel crops and then
            # whole images, the UNet fine-tunes at the 16x16 latent with the objects' cells weighted up; the text
            # encoder stays frozen (text_lr 0), so the image encoder trained against it stays aligned.
            "grow128": dict(image_size=128, vae_steps=700, vae_crop=64, vae_full_steps=100, n_scenes=6000,
                            unet_steps=3400, unet_batch=32, unet_lr=3e-4, warmup=100, text_lr=0.0, object_weight=4.0),
            "smoke": dict(vae_steps=6, vae_batch=2, n_scenes=48, unet_steps=6, unet_batch=4,
                          warmup=2, ckpt_every=3, log_every=1),
        }
        return cls(**{**presets[name], **overrides})


# ------------------------------------------------------------------------------------------------- VAE


def initial_parts(cfg: TrainConfig) -> dict[str, dict[str, torch.Tensor]]:
    """State dicts (``unet``, ``clip``, ``vae``) of the weights a grown model starts from."""
    _spec, parts, _meta = weights.read(cfg.init_from)
    return parts


def vae_forward(fs, x: torch.Tensor, gen: torch.Generator | None = None):
    moments = fs.quant_conv(fs.encoder(x))
    mean, logvar = moments.chunk(2, dim=1)
    logvar = logvar.clamp(-30.0, 20.0)
    z = mean if gen is None else mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, generator=gen)
    rec = fs.decoder(fs.post_quant_conv(z))
    return rec, mean, logvar


def train_vae(cfg: TrainConfig, spec: TinySpec, work: str, log: Logger):
    from ..tinyworld.model import build_vae

    final = os.path.join(work, "vae.pt")
    vae = build_vae(spec, seed=cfg.seed + 2)
    fs = vae.first_stage_model.float()
    done = load_checkpoint(final)
    if done is not None:
        fs.load_state_dict(done["state"])
        return vae
    torch.manual_seed(cfg.seed + 2)
    training_init(fs)
    with torch.no_grad():  # start nearly deterministic: posterior std 0.02 instead of 1
        fs.quant_conv.bias[fs.quant_conv.bias.numel() // 2 :] = -8.0
    if cfg.init_from:
        fs.load_state_dict(initial_parts(cfg)["vae"])
    fs.train()
    for p in fs.parameters():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(fs.parameters(), lr=cfg.vae_lr, weight_decay=0.0)
    ckpt_path = os.path.join(work, "vae_ckpt.pt")
    vae_parts = {"state": fs, "opt": opt}
    start, _ = resume(ckpt_path, "vae", vae_parts)
    acc: dict[str, float] = {}
    for step in range(start, cfg.vae_steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.vae_steps, cfg.vae_lr, 100)
        rng = world.rng_for("vae", cfg.seed, step)
        full = cfg.vae_crop <= 0 or step >= cfg.vae_steps - cfg.vae_full_steps
        n = cfg.vae_batch if full else 2 * cfg.vae_batch
        x, a = render_batch(rng, n, cfg.image_size)
        if not full:
            c = cfg.vae_crop
            oy, ox = (int(v) * 8 for v in rng.integers(0, (cfg.image_size - c) // 8 + 1, size=2))
            x, a = x[:, :, oy : oy + c, ox : ox + c], a[:, :, oy : oy + c, ox : ox + c]
        rec, mean, logvar = vae_forward(fs, x, torch_generator("vae-noise", cfg.seed, step))
        w = 1.0 + cfg.vae_object_weight * a
        l1 = ((rec - x).abs() * w).mean() / w.mean()
        l2 = (((rec - x) ** 2) * w).mean() / w.mean()
        kl = 0.5 * (mean**2 + logvar.exp() - 1.0 - logvar).mean()
        grad = sum(((torch.diff(rec, dim=d) - torch.diff(x, dim=d)).abs()).mean() for d in (2, 3))
        loss = l1 + l2 + cfg.vae_grad * grad + cfg.vae_kl * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(fs.parameters(), 1.0)
        opt.step()
        for k, v in (("l1", l1), ("l2", l2), ("grad", grad), ("kl", kl)):
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.vae_steps:
            log("vae", step + 1, **{k: acc[k] / acc["n"] for k in ("l1", "l2", "grad", "kl")}, lr=opt.param_groups[0]["lr"])
            acc = {}
        if (step + 1) % cfg.ckpt_every == 0:
            checkpoint(ckpt_path, step + 1, vae_parts)
    fs.eval()
    for p in fs.parameters():
        p.requires_grad_(False)
    stats = calibrate_latents(fs, cfg)
    log("vae", cfg.vae_steps, **stats)
    save_checkpoint({"state": fs.state_dict(), "stats": stats}, final)
    return vae


@torch.no_grad()
def calibrate_latents(fs, cfg: TrainConfig, n: int = 512) -> dict[str, float]:
    """Exactly re-parametrise quant_conv / post_quant_conv so the model-space latent (raw * 0.18215) has
    zero mean and unit standard deviation per channel; returns reconstruction figures."""
    rng = world.rng_for("vae-calibration", cfg.seed)
    x, _ = render_batch(rng, n, cfg.image_size)
    means = torch.cat([vae_forward(fs, x[i : i + 64])[1] for i in range(0, n, 64)])
    m = means.mean(dim=(0, 2, 3))
    s = means.std(dim=(0, 2, 3)).clamp_min(1e-6)
    k = (1.0 / LATENT_SCALE) / s  # per channel
    c = m.numel()
    q, pq = fs.quant_conv, fs.post_quant_conv
    q.weight[:c] *= k[:, None, None, None]
    q.bias[:c] = k * (q.bias[:c] - m)
    q.bias[c:] += 2.0 * torch.log(k)
    bias_shift = (pq.weight[:, :, 0, 0] * m[None, :]).sum(1)
    pq.weight /= k[None, :, None, None]
    pq.bias += bias_shift
    rec = torch.cat([vae_forward(fs, x[i : i + 64])[0] for i in range(0, n, 64)])
    mse = float(((rec.clamp(-1, 1) - x) ** 2).mean() / 4.0)  # in 0..1 units
    psnr = 10 * math.log10(1.0 / max(mse, 1e-12))
    new = torch.cat([vae_forward(fs, x[i : i + 64])[1] for i in range(0, n, 64)]) * LATENT_SCALE
    return {"psnr": psnr, "latent_std": float(new.std()), "latent_mean": float(new.mean())}


# ------------------------------------------------------------------------------------------------- data


@torch.no_grad()
def build_dataset(cfg: TrainConfig, vae, work: str, log: Logger) -> dict[str, Any]:
    path = os.path.join(work, "data.pt")
    data = load_checkpoint(path)
    if data is not None and len(data["scenes"]) == cfg.n_scenes:
        return data
    fs = vae.first_stage_model
    exclude = heldout_keys()
    scenes, latents = [], []
    t0 = time.time()
    for start in range(0, cfg.n_scenes, 256):
        batch = [world.scene_from_seed(i, "train", exclude=exclude) for i in range(start, min(cfg.n_scenes, start + 256))]
        x = torch.from_numpy(np.stack([world.render(s, cfg.image_size) for s in batch])).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        latents.append(vae_forward(fs, x)[1].half())
        scenes.extend(s.to_json() for s in batch)
    data = {"scenes": scenes, "latents": torch.cat(latents)}
    log("data", len(scenes), seconds=time.time() - t0)
    save_checkpoint(data, path)
    return data


# ------------------------------------------------------------------------------------------------- UNet


def _alphas_cumprod(model_patcher) -> torch.Tensor:
    sigmas = model_patcher.model.model_sampling.sigmas.float()
    return 1.0 / (1.0 + sigmas**2)


def train_unet(cfg: TrainConfig, spec: TinySpec, data: dict[str, Any], work: str, log: Logger):
    from ..tinyworld.model import build_clip, build_model

    mp = build_model(spec, seed=cfg.seed)
    clip = build_clip(spec, seed=cfg.seed + 1)
    unet = mp.model.diffusion_model
    te = clip.cond_stage_model.clip_l.transformer.float()  # ComfyUI keeps text encoders in fp16; train in fp32
    tokens = CaptionTokens(clip.tokenizer)
    unk_id = tokens.words("xylophone")[0]  # stand-in for every token outside the world's vocabulary
    torch.manual_seed(cfg.seed)
    # Stable Diffusion zero-initialises each ResBlock's last conv, each transformer's proj_out and the output conv
    training_init(unet, zero_suffixes=("out_layers.3", "proj_out", "out.2"))
    training_init(te)
    if cfg.init_from:
        parts = initial_parts(cfg)
        unet.load_state_dict(parts["unet"])
        prefix = "clip_l.transformer."
        te.load_state_dict({k.removeprefix(prefix): v for k, v in parts["clip"].items() if k.startswith(prefix)}, strict=False)
    d = spec.context_dim
    heads = torch.nn.ModuleDict({a: torch.nn.Linear(d, len(v)) for a, v in ATTR_VALUES.items()})
    torch.nn.init.normal_(heads["colour"].weight, std=0.02)
    frozen_text = cfg.text_lr == 0.0  # no gradient through the text encoder, no auxiliary loss
    for m in (unet, te, heads):
        m.train(not (frozen_text and m is not unet))
        for p in m.parameters():
            p.requires_grad_(not (frozen_text and m is not unet))
    acp = _alphas_cumprod(mp)
    snr = acp / (1 - acp)
    opt = torch.optim.AdamW(
        [
            {"params": list(unet.parameters()), "lr": cfg.unet_lr, "base": cfg.unet_lr, "weight_decay": cfg.weight_decay},
            {"params": list(te.parameters()) + list(heads.parameters()), "lr": cfg.text_lr, "base": cfg.text_lr,
             "weight_decay": 0.0},
        ]
    )
    ema = {"unet": copy.deepcopy(unet.state_dict()), "te": copy.deepcopy(te.state_dict())}
    ckpt_path = os.path.join(work, "unet_ckpt.pt")
    parts = {"unet": unet, "te": te, "heads": heads, "opt": opt}
    start, ck = resume(ckpt_path, "unet", parts)
    if ck is not None:
        ema = ck["ema"]
    if start >= cfg.unet_steps:
        return mp, clip, ema, tokens, unk_id
    scenes = [world.Scene.from_json(s) for s in data["scenes"]]
    latents = data["latents"].float() * LATENT_SCALE
    n = len(scenes)
    empty_ids, _ = tokens.encode([])
    acc: dict[str, float] = {}
    t_start = time.time()
    for step in range(start, cfg.unet_steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.unet_steps, g["base"], cfg.warmup)
        rng = world.rng_for("unet", cfg.seed, step)
        gen = torch_generator("unet-noise", cfg.seed, step)
        idx = rng.integers(n, size=cfg.unet_batch)
        ids_b, tgt_b = [], []
        for i in idx:
            tgt = np.full((tokens.max_len, len(ATTRS)), -100, dtype=np.int64)
            if rng.random() < cfg.cond_dropout:
                ids = list(empty_ids)
            else:
                segs, stated = world.caption_segments(scenes[i], rng)
                ids, owner = tokens.encode(segs)
                if rng.random() < cfg.unk_insert:  # an unknown word somewhere: learn to ignore it
                    n_words = ids.index(tokens.end)
                    at = int(rng.integers(1, n_words + 1))
                    ids = (ids[:at] + [unk_id] + ids[at:])[: tokens.max_len]
                    owner = (owner[:at] + [None] + owner[at:])[: tokens.max_len]
                    ids[-1] = tokens.end if ids[-2] != tokens.end else ids[-1]
                for p, o in enumerate(owner):
                    if o is not None:
                        for a, attr in enumerate(ATTRS):
                            if attr in stated[o]:
                                tgt[p, a] = ATTR_VALUES[attr].index(stated[o][attr])
            ids_b.append(ids)
            tgt_b.append(tgt)
        ids_t = torch.tensor(ids_b, dtype=torch.long)
        tgt_t = torch.from_numpy(np.stack(tgt_b))
        with torch.set_grad_enabled(not frozen_text):
            ctx = text_forward(te, ids_t)
        aux = torch.zeros(()) if frozen_text else sum(
            F.cross_entropy(heads[a](ctx).reshape(-1, len(ATTR_VALUES[a])), tgt_t[..., k].reshape(-1),
                            ignore_index=-100, reduction="sum") / (tgt_t[..., k] >= 0).sum().clamp_min(1)
            for k, a in enumerate(ATTRS)
        ) / len(ATTRS)
        x0 = latents[torch.from_numpy(idx)]
        t = torch.randint(0, acp.numel(), (cfg.unet_batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        a_t = acp[t].view(-1, 1, 1, 1)
        xt = a_t.sqrt() * x0 + (1 - a_t).sqrt() * eps
        pred = unet(xt, timesteps=t.float(), context=ctx)
        # eps-loss = snr * x0-loss: weight x0 errors by clamp(snr, floor, min_snr) (Min-SNR with a floor, so the
        # high-noise steps that decide the layout are not trained at a vanishing weight)
        w = torch.clamp(snr[t], min=cfg.snr_floor, max=cfg.min_snr) / snr[t]
        if cfg.object_weight > 0:
            cover = np.stack([object_coverage(scenes[i], x0.shape[-1]) for i in idx])
            near = F.max_pool2d(torch.from_numpy(cover).float()[:, None], 3, stride=1, padding=1)
            wmap = 1.0 + cfg.object_weight * near
            mse = ((pred - eps) ** 2 * wmap).mean(dim=(1, 2, 3)) / wmap.mean(dim=(1, 2, 3))
        else:
            mse = ((pred - eps) ** 2).mean(dim=(1, 2, 3))
        diff = (w * mse).mean()
        loss = diff + cfg.aux_weight * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(unet.parameters()) + list(te.parameters()), 1.0)
        opt.step()
        decay = min(cfg.ema_decay, (1 + step) / (10 + step))
        with torch.no_grad():
            for name, module in (("unet", unet), ("te", te)):
                for k, v in module.state_dict().items():
                    e = ema[name][k]
                    if e.dtype.is_floating_point:
                        e.mul_(decay).add_(v.detach(), alpha=1 - decay)
                    else:
                        e.copy_(v)
        for k, v in (("loss", diff), ("mse", mse.mean()), ("aux", aux)):
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.unet_steps:
            rate = (time.time() - t_start) / (step + 1 - start)
            log("unet", step + 1, **{k: acc[k] / acc["n"] for k in ("loss", "mse", "aux")},
                lr=opt.param_groups[0]["lr"], s_per_step=rate)
            acc = {}
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.unet_steps:
            checkpoint(ckpt_path, step + 1, parts, ema=ema)
    return mp, clip, ema, tokens, unk_id


# ------------------------------------------------------------------------------------------------- main


def export(spec: TinySpec, vae, clip, ema, tokens: CaptionTokens, unk_id: int, out: str, metadata: dict[str, Any]) -> None:
    clip_sd = {k: v for k, v in clip.cond_stage_model.state_dict().items()}
    prefix = "clip_l.transformer."
    for k, v in ema["te"].items():
        clip_sd[prefix + k] = v
    weights.save(
        out,
        spec,
        unet=ema["unet"],
        clip=clip_sd,
        vae=vae.first_stage_model.state_dict(),
        keep_token_ids=vocabulary_token_ids(tokens),
        default_token_id=unk_id,
        metadata=metadata,
    )


def main(argv: list[str] | None = None) -> int:
    def add_arguments(ap: argparse.ArgumentParser) -> None:
        ap.add_argument("--stop-after", choices=["vae", "data", "unet"], default=None)
        ap.add_argument("--init-from", default="", help="tiny-model weights to grow from (e.g. the 64x64 model)")

    run = start_run(__spec__.name, __doc__, TrainConfig, "", "tinyworld", argv, add_arguments,
                    extra_overrides=lambda args: {"init_from": args.init_from},
                    work_suffix=lambda cfg: "" if cfg.image_size == world.IMAGE_SIZE else f"-{cfg.image_size}px")
    a, cfg, work, log = run.args, run.config, run.work, run.log
    out = a.out or os.path.join(weights.WEIGHTS_DIR, weights.SHIPPED.get(cfg.image_size, f"tinyworld-{cfg.image_size}.safetensors"))
    torch.set_flush_denormal(True)
    spec = TRAINED_SPEC
    vae = train_vae(cfg, spec, work, log)
    if a.stop_after == "vae":
        return 0
    data = build_dataset(cfg, vae, work, log)
    if a.stop_after == "data":
        return 0
    mp, clip, ema, tokens, unk_id = train_unet(cfg, spec, data, work, log)
    if a.stop_after == "unet":
        return 0
    export(spec, vae, clip, ema, tokens, unk_id, out, {**run.metadata(), "image_size": str(cfg.image_size)})
    run.wrote(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
