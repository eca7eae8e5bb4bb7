"""Train the built-in expansion model: the 128x128 tiny model turned into an outpainting model, as arXiv
2407.12642 trains its own (a window masked on one of four sides, global + local captions, a visual feature).

    python -m laser_story.training.expansion_model --seed 0 --threads 2 --out src/laser_story/tinyworld/weights/tinyworld-expand.safetensors

The UNet is the 128x128 model's, widened to SD1.5-inpainting's 9 input channels (noisy latent, mask, masked
latent; the new channels start at zero, so step 0 is the base model), so ComfyUI treats it as an inpainting
model. Its cross-attention context is the global caption's tokens, then the local caption's, then
``visual_tokens`` tokens projected from the image encoder's embedding of the whole scene (squashed to the
encoder's input), the paper's visual feature. Text encoder, VAE and image encoder stay as they are.

Stages (each resumes from ``--work``, default ``.cache/expansion-model/seed<N>``):

1. ``data``  wide world scenes (half 128x512, half 512x128), their latents, object coverage, the caption
             embeddings (global, and local for every window at stride 64) and the visual feature.
2. ``unet``  windows of 128x128 with their new half (plus 0-2 latent cells of overlap) masked on the side the
             canvas grows; eps loss with min-SNR weighting (diffusers' ``compute_snr`` on SD's schedule),
             object cells weighted up, captions and the visual feature dropped for classifier-free guidance;
             EMA of the weights (diffusers' ``EMAModel``).
3. ``export`` EMA weights and the visual projection to one float16 safetensors file (``kind``
             ``expansion-model``) with this command in its metadata.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from ..tinyworld import datasets, encoder, expansion, weights, world
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
from .data import object_coverage

LATENT_SCALE = 0.18215
WINDOW = datasets.TILE  # 128 px = 16 latent cells
CELLS = WINDOW // 8


@dataclasses.dataclass
class TrainConfig:
    seed: int = 0
    threads: int = 1
    init_from: str = ""  # tiny-model weights to start from; "" = the shipped 128x128 model
    n_scenes: int = 1600
    tiles: int = 4
    stride: int = 64  # between training windows along a wide scene
    visual_tokens: int = expansion.VISUAL_TOKENS
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-4
    warmup: int = 100
    weight_decay: float = 0.01
    min_snr: float = 5.0
    caption_dropout: float = 0.1
    visual_dropout: float = 0.1
    object_weight: float = 4.0
    max_overlap_cells: int = 2
    ema_decay: float = 0.999
    ckpt_every: int = 200
    log_every: int = 50
    halt_at: int = 0  # > 0: stop after this step's checkpoint, as an interruption would (resume by running again)

    PRESETS = ("full", "smoke")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        presets = {"full": {}, "smoke": dict(n_scenes=4, steps=4, batch=4, warmup=2, ckpt_every=2, log_every=1)}
        return cls(**{**presets[name], **overrides})


@torch.no_grad()
def build_dataset(cfg: TrainConfig, clip, vae, clip_vision, work: str, log: Logger) -> dict[str, Any]:
    path = os.path.join(work, "data.pt")
    data = load_checkpoint(path)
    if data is not None and len(data["latents"]) == cfg.n_scenes:
        return data
    t0 = time.time()
    latents, covers, axes, visual, captions, windows = [], [], [], [], [], []
    for i in range(cfg.n_scenes):
        axis = "x" if i % 2 == 0 else "y"
        scene = datasets.wide_scene(i // 2, cfg.tiles, axis, stream="expansion")
        image = datasets.render_wide(scene)
        x = torch.from_numpy(image).float()[None] / 255.0
        latents.append(vae.encode(x)[0].half())
        cover = np.concatenate([object_coverage(t, CELLS) for t in scene.tiles], axis=1 if axis == "x" else 0)
        covers.append(torch.from_numpy(cover).half())
        axes.append(axis)
        visual.append(encoder.image_embeds(clip_vision, x)[0].half())  # the whole scene, squashed as at run time
        caps = [scene.global_caption()] + [w.caption for w in scene.windows(cfg.stride)]
        captions.append(torch.cat([expansion.encode_text(clip, c) for c in caps]).half())
        windows.append([w.offset for w in scene.windows(cfg.stride)])
        if (i + 1) % 200 == 0:
            print(f"[data] {i + 1}/{cfg.n_scenes} scenes", flush=True)
    data = {"latents": latents, "covers": covers, "axes": axes, "visual": torch.stack(visual), "captions": captions,
            "windows": windows, "empty": expansion.encode_text(clip, "").half(),
            "grey": expansion.grey_latent(vae).half()}
    log("data", cfg.n_scenes, seconds=time.time() - t0)
    save_checkpoint(data, path)
    return data


def _batch(cfg: TrainConfig, data: dict[str, Any], rng: np.random.Generator):
    """Window latents, coverage, masks, masked latents and context parts of one batch (model-space latents)."""
    x0s, covers, masks, ctx_g, ctx_l, vis = [], [], [], [], [], []
    grey = data["grey"].float().view(4, 1, 1) * LATENT_SCALE
    for _ in range(cfg.batch):
        i = int(rng.integers(len(data["latents"])))
        k = int(rng.integers(len(data["windows"][i])))
        cell = data["windows"][i][k] // 8
        lat = data["latents"][i].float() * LATENT_SCALE
        cover = data["covers"][i].float()
        horizontal = data["axes"][i] == "x"
        if horizontal:
            lat, cover = lat[:, :, cell : cell + CELLS], cover[:, cell : cell + CELLS]
        else:
            lat, cover = lat[:, cell : cell + CELLS], cover[cell : cell + CELLS]
        side = ("left", "right")[int(rng.integers(2))] if horizontal else ("up", "down")[int(rng.integers(2))]
        grow = CELLS // 2 + int(rng.integers(cfg.max_overlap_cells + 1))
        mask = torch.zeros(CELLS, CELLS)
        if side == "right":
            mask[:, CELLS - grow :] = 1
        elif side == "left":
            mask[:, :grow] = 1
        elif side == "down":
            mask[CELLS - grow :] = 1
        else:
            mask[:grow] = 1
        x0s.append(lat)
        covers.append(cover)
        masks.append(mask)
        caps = data["captions"][i].float()
        dropped = rng.random() < cfg.caption_dropout
        ctx_g.append(data["empty"][0].float() if dropped else caps[0])
        ctx_l.append(data["empty"][0].float() if dropped else caps[1 + k])
        vis.append(torch.zeros_like(data["visual"][i].float()) if rng.random() < cfg.visual_dropout else data["visual"][i].float())
    x0 = torch.stack(x0s)
    mask = torch.stack(masks)[:, None]
    masked = x0 * (1 - mask) + grey[None] * mask
    return x0, torch.stack(covers)[:, None], mask, masked, torch.stack(ctx_g), torch.stack(ctx_l), torch.stack(vis)


def train(cfg: TrainConfig, work: str, log: Logger):
    from diffusers.training_utils import EMAModel, compute_snr

    from ..tinyworld.model import build_model

    base_spec, parts, clip, vae, clip_vision = base_model(cfg.init_from, WINDOW)
    data = build_dataset(cfg, clip, vae, clip_vision, work, log)
    spec = dataclasses.replace(base_spec, in_channels=9)
    unet = build_model(spec, seed=cfg.seed).model.diffusion_model.float()
    unet.load_state_dict(expansion.widen_input(parts["unet"], unet.state_dict()))
    torch.manual_seed(cfg.seed)
    projection = expansion.VisualProjection(data["visual"].shape[1], spec.context_dim, cfg.visual_tokens)
    unet.train()
    params = [*unet.parameters(), *projection.parameters()]
    for p in params:
        p.requires_grad_(True)
    schedule = sd_schedule()
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ema = EMAModel(params, decay=cfg.ema_decay, use_ema_warmup=True, inv_gamma=1.0, power=0.75)
    ckpt_path = os.path.join(work, "unet_ckpt.pt")
    parts = {"unet": unet, "projection": projection, "opt": opt, "ema": ema}
    start, _ = resume(ckpt_path, "unet", parts)
    acc: dict[str, float] = {}
    t_start = time.time()
    for step in range(start, cfg.steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        rng = world.rng_for("expansion-unet", cfg.seed, step)
        gen = torch_generator("expansion-noise", cfg.seed, step)
        x0, cover, mask, masked, ctx_g, ctx_l, vis = _batch(cfg, data, rng)
        t = torch.randint(0, 1000, (cfg.batch,), generator=gen)
        eps = torch.randn(x0.shape, generator=gen)
        xt = schedule.add_noise(x0, eps, t)
        context = torch.cat([ctx_g, ctx_l, projection(vis)], dim=1)
        pred = unet(torch.cat([xt, mask, masked], dim=1), timesteps=t.float(), context=context)
        snr = compute_snr(schedule, t)
        w_t = torch.clamp(snr, max=cfg.min_snr) / snr  # min-SNR weighting of the eps loss
        near = F.max_pool2d(cover, 3, stride=1, padding=1)
        wmap = 1.0 + cfg.object_weight * near
        mse = ((pred - eps) ** 2 * wmap).mean(dim=(1, 2, 3)) / wmap.mean(dim=(1, 2, 3))
        loss = (w_t * mse).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        ema.step(params)
        acc["loss"] = acc.get("loss", 0.0) + float(loss.detach())
        acc["mse"] = acc.get("mse", 0.0) + float(mse.mean().detach())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            rate = (time.time() - t_start) / (step + 1 - start)
            log("unet", step + 1, loss=acc["loss"] / acc["n"], mse=acc["mse"] / acc["n"], lr=opt.param_groups[0]["lr"],
                s_per_step=rate)
            acc = {}
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            checkpoint(ckpt_path, step + 1, parts)
        if step + 1 == cfg.halt_at:
            return None
    ema.copy_to(params)
    return spec, unet, projection


def main(argv: list[str] | None = None) -> int:
    run = start_run(__spec__.name, __doc__, TrainConfig, expansion.DEFAULT_FILE, "expansion-model", argv)
    trained = train(run.config, run.work, run.log)
    if trained is None:
        print(f"halted at step {run.config.halt_at}; run the same command again to resume", flush=True)
        return 0
    spec, unet, projection = trained
    expansion.save(run.args.out, spec, unet.state_dict(), projection, run.config.init_from or weights.DEFAULT_WEIGHTS,
                   run.metadata())
    run.wrote(run.args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
