"""Tiny SD1.x-architecture MODEL / CLIP / VAE built from ComfyUI's own classes.

The UNet is ComfyUI's ``UNetModel`` under the ``SD15`` model config, with the same block topology as
Stable Diffusion 1.5 (12 input/output blocks, 16 self-attention layers, the same transformer indices)
but narrow channels, so every ComfyUI patch and the LASER injector address it exactly as they address
SD1.5. The text encoder is ComfyUI's SD1 CLIP over the real SD1 tokenizer, shrunk through
``clip_l_model_config``; the VAE is ComfyUI's ``AutoencoderKL`` with the SD downscale factor of 8.

ComfyUI is imported inside the functions only, so this module imports without a host.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch


@dataclasses.dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny model; the defaults keep SD1.5's topology at a fraction of its width."""

    model_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_levels: tuple[bool, ...] = (True, True, True, False)
    context_dim: int = 64
    clip_layers: int = 2
    clip_heads: int = 2
    clip_intermediate: int = 128
    vae_ch: int = 32
    vae_ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    in_channels: int = 4  # 9 = inpainting-shaped (latent + mask + masked-image latent), as SD1.5-inpainting

    def unet_config(self) -> dict[str, Any]:
        levels = len(self.channel_mult)
        transformer_depth = [int(self.attention_levels[lvl]) for lvl in range(levels) for _ in range(self.num_res_blocks)]
        # ComfyUI pops output depths from the end, deepest level first.
        transformer_depth_output = [
            int(self.attention_levels[lvl]) for lvl in range(levels) for _ in range(self.num_res_blocks + 1)
        ]
        return {
            "use_checkpoint": False,
            "image_size": 32,
            "use_spatial_transformer": True,
            "legacy": False,
            "adm_in_channels": None,
            "in_channels": self.in_channels,
            "out_channels": 4,
            "model_channels": self.model_channels,
            "num_res_blocks": [self.num_res_blocks] * levels,
            "channel_mult": list(self.channel_mult),
            "transformer_depth": transformer_depth,
            "transformer_depth_output": transformer_depth_output,
            "transformer_depth_middle": 1,
            "use_linear_in_transformer": False,
            "context_dim": self.context_dim,
            "use_temporal_resblock": False,
            "use_temporal_attention": False,
        }

    def clip_config(self) -> dict[str, Any]:
        return {
            "hidden_size": self.context_dim,
            "intermediate_size": self.clip_intermediate,
            "num_hidden_layers": self.clip_layers,
            "num_attention_heads": self.clip_heads,
            "projection_dim": self.context_dim,
        }

    def vae_config(self) -> dict[str, Any]:
        ddconfig = {
            "double_z": True,
            "z_channels": 4,
            "resolution": 64,
            "in_channels": 3,
            "out_ch": 3,
            "ch": self.vae_ch,
            "ch_mult": list(self.vae_ch_mult),
            "num_res_blocks": 1,
            "attn_resolutions": [],
            "dropout": 0.0,
        }
        return {"params": {"ddconfig": ddconfig, "embed_dim": 4}}

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TinySpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise ValueError(f"unknown tiny-model spec fields: {sorted(unknown)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def init_weights(module: torch.nn.Module, generator: torch.Generator) -> None:
    """Give every parameter a defined value: ComfyUI's layers skip initialisation (uninitialised memory)."""
    with torch.no_grad():
        for name, param in module.named_parameters():
            if param.ndim >= 2:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.02)
            elif name.endswith("weight"):  # 1-D weights are norm scales (GroupNorm/LayerNorm)
                param.fill_(1.0)
            else:
                param.zero_()


def build_model(spec: TinySpec, state_dict: dict[str, torch.Tensor] | None = None, seed: int = 0,
                dtype: torch.dtype = torch.float32):
    """A ModelPatcher around an SD15-config BaseModel; random weights (seeded) when no state dict."""
    import comfy.model_management as mm
    import comfy.model_patcher
    import comfy.supported_models

    config = comfy.supported_models.SD15(spec.unet_config())
    config.set_inference_dtype(dtype, None)
    base = config.get_model({}, "")
    if state_dict is None:
        init_weights(base.diffusion_model, torch.Generator().manual_seed(seed))
    else:
        base.diffusion_model.load_state_dict(state_dict, strict=True)
    base.eval()
    return comfy.model_patcher.ModelPatcher(base, load_device=mm.get_torch_device(), offload_device=mm.unet_offload_device())


def build_clip(spec: TinySpec, state_dict: dict[str, torch.Tensor] | None = None, seed: int = 1):
    """ComfyUI's SD1 CLIP (real SD1 tokenizer) shrunk to ``spec``; random weights when no state dict."""
    import comfy.sd
    import comfy.sd1_clip
    import comfy.supported_models_base

    target = comfy.supported_models_base.ClipTarget(comfy.sd1_clip.SD1Tokenizer, comfy.sd1_clip.SD1ClipModel)
    clip = comfy.sd.CLIP(target, model_options={"clip_l_model_config": spec.clip_config()})
    if state_dict is None:
        init_weights(clip.cond_stage_model, torch.Generator().manual_seed(seed))
    else:
        missing, unexpected = clip.cond_stage_model.load_state_dict(state_dict, strict=False)
        if unexpected or [k for k in missing if not k.endswith("position_ids")]:
            raise ValueError(f"tiny CLIP weights do not match the spec (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return clip


def build_vae(spec: TinySpec, state_dict: dict[str, torch.Tensor] | None = None, seed: int = 2):
    """ComfyUI's AutoencoderKL VAE (downscale 8, 4 latent channels); random weights when no state dict."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    if state_dict is None:
        # Initialised up front so ComfyUI loads a complete state dict (an empty one logs every key as missing).
        fresh = AutoencoderKL(**spec.vae_config()["params"])
        init_weights(fresh, torch.Generator().manual_seed(seed))
        state_dict = fresh.state_dict()
    return comfy.sd.VAE(sd=state_dict, config=spec.vae_config())
