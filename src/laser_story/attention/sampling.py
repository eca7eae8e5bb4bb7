"""Sampling helpers every pipeline shares: encoded prompts as ComfyUI conditioning, the step schedule, one
progress count over many sampling runs, and deterministic DDIM inversion.

Sampling goes through ComfyUI's own machinery (``comfy.sample.sample_custom``, its CFG guider, wrappers
and patches); ComfyUI is imported inside the functions so the module imports without a host.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

Tensor = torch.Tensor
# progress(done_steps, total_steps, x0 preview latent or None)
ProgressFn = Callable[[int, int, Tensor | None], None]


@dataclasses.dataclass(frozen=True)
class Embedding:
    """One encoded prompt: cross-attention tokens [1, T, C] and pooled output [1, C] (or None)."""

    tokens: Tensor
    pooled: Tensor | None = None


def sample_ddim_inversion(model, x: Tensor, sigmas: Tensor, extra_args: dict | None = None, callback=None, disable=None) -> Tensor:
    """Deterministic DDIM inversion over an ascending schedule.

    Each step evaluates the model at the *next* (higher) sigma, as diffusers-based DDIM inversion (PnP,
    LASER) does, so the model sees exactly the sigmas the frame sampling will use and the bank is keyed
    by the same steps.
    """
    extra_args = {} if extra_args is None else extra_args
    ones = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, sigma_next * ones, **extra_args)
        eps = (x - denoised) / sigma_next
        if callback is not None:
            callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma, "denoised": denoised})
        x = x + eps * (sigma_next - sigma)
    return x


def conditioning(tokens: Tensor, pooled: Tensor | None) -> list:
    extras: dict[str, Any] = {}
    if pooled is not None:
        extras["pooled_output"] = pooled
    return [[tokens, extras]]


def schedule(model, scheduler: str, steps: int) -> Tensor:
    import comfy.samplers

    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), scheduler, steps).cpu()


class StepCounter:
    """Turns per-run sampler callbacks into one progress count over the whole job."""

    def __init__(self, progress: ProgressFn | None, total: int):
        self.progress, self.total, self.done = progress, total, 0

    def callback(self, preview: bool, weight: int = 1) -> Callable:
        """A sampler callback; each step counts ``weight`` (e.g. the frames a batched run samples at once)."""
        import comfy.model_management

        def on_step(step: int, x0: Tensor, x: Tensor, total_steps: int) -> None:
            comfy.model_management.throw_exception_if_processing_interrupted()
            self.done += weight
            if self.progress is not None:
                self.progress(self.done, self.total, x0 if preview else None)

        return on_step


def invert(model, latent: Tensor, prompt: Embedding, sigmas: Tensor, callback=None) -> Tensor:
    """DDIM-invert a LATENT-space image to noise at ``sigmas[0]`` (cfg 1, zero noise)."""
    import comfy.sample
    import comfy.samplers

    inversion_sigmas = sigmas.flip(0)
    cond = conditioning(prompt.tokens, prompt.pooled)
    return comfy.sample.sample_custom(
        model, torch.zeros_like(latent), 1.0, comfy.samplers.KSAMPLER(sample_ddim_inversion), inversion_sigmas,
        cond, cond, latent, callback=callback, disable_pbar=True,
    )
