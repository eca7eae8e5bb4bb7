"""What every trainer of the pack shares: the loss log, checkpoints that survive a restart, the learning-rate
schedule, keyed random generators, weight initialisation and the command line around a run.

Every random draw of a run is keyed by (seed, stage, step), so a run resumed from its last checkpoint
continues the very sequence it would have drawn without the interruption.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from ..tinyworld import world


class Logger:
    """Losses as JSON lines in ``path`` and one readable line on stdout."""
    def __init__(self, path: str):
        self.path = path
        self.t0 = time.time()

    def __call__(self, stage: str, step: int, **values: float) -> None:
        rec = {"stage": stage, "step": step, "time": round(time.time() - self.t0, 1), **values}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        vals = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())
        print(f"[{stage} {step}] {vals}", flush=True)


def save_checkpoint(obj: Any, path: str) -> None:
    """Write atomically, so a run killed mid-write resumes from the previous checkpoint."""
    tmp = path + ".tmp"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str) -> Any | None:
    """The checkpoint at ``path``, or None when there is none yet."""
    if not os.path.isfile(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


def resume(path: str, stage: str, parts: dict[str, Any]) -> tuple[int, dict[str, Any] | None]:
    """Load the checkpoint at ``path`` (if any) into ``parts`` (name -> module or optimizer); returns (the step it
    was taken after, the whole checkpoint for anything else it holds), or (0, None) for a fresh start."""
    ck = load_checkpoint(path)
    if ck is None:
        return 0, None
    for name, part in parts.items():
        part.load_state_dict(ck[name])
    print(f"[{stage}] resuming at step {ck['step']}", flush=True)
    return ck["step"], ck


def checkpoint(path: str, step: int, parts: dict[str, Any], **extra: Any) -> None:
    """What :func:`resume` reads back: every part's state dict, the step and ``extra``."""
    save_checkpoint({**{name: part.state_dict() for name, part in parts.items()}, **extra, "step": step}, path)


def cosine_lr(step: int, total: int, base: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of ``base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def torch_generator(*key: int | str) -> torch.Generator:
    """A torch RNG keyed like ``world.rng_for``: the same key gives the same draws after a resume."""
    return torch.Generator().manual_seed(int(world.rng_for(*key).integers(2**62)))


def training_init(module: torch.nn.Module, zero_suffixes: tuple[str, ...] = ()) -> None:
    """PyTorch's default initialisation (ComfyUI's layers skip it), 0.02-normal embeddings, and zeros for the
    output layers Stable Diffusion zero-initialises (``zero_suffixes``). Uses the global torch RNG."""
    for name, m in module.named_modules():
        layer = next((b for b in (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.Linear) if isinstance(m, b)), None)
        if layer is not None:
            layer.reset_parameters(m)  # the torch.nn method itself: ComfyUI's subclasses override it with a no-op
        elif isinstance(m, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
            if m.weight is not None:
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
        elif isinstance(m, torch.nn.Embedding):
            torch.nn.init.normal_(m.weight, std=0.02)
        if zero_suffixes and name.endswith(zero_suffixes):
            for p in m.parameters(recurse=False):
                torch.nn.init.zeros_(p)


def last_losses(log_path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not os.path.isfile(log_path):
        return out
    with open(log_path) as f:
        for line in f:
            rec = json.loads(line)
            out[rec["stage"]] = {k: v for k, v in rec.items() if k not in ("stage",)}
    return out


@dataclasses.dataclass
class Run:
    """One invocation of a trainer: its parsed arguments, config, checkpoint folder, log and command line."""

    args: argparse.Namespace
    config: Any
    work: str
    log: Logger
    command: str
    started: float = dataclasses.field(default_factory=time.time)

    def metadata(self) -> dict[str, Any]:
        """What every weights file records of the run that made it: command, seed, config and final losses."""
        losses = last_losses(self.log.path)
        losses["wall_seconds_this_invocation"] = round(time.time() - self.started, 1)
        return {"command": self.command, "seed": str(self.config.seed),
                "train": {"config": dataclasses.asdict(self.config), **losses}}

    def wrote(self, path: str) -> None:
        print(f"wrote {path} ({os.path.getsize(path) / 1e6:.2f} MB) in {time.time() - self.started:.0f} s", flush=True)


def start_run(module: str, doc: str, config_class: Any, default_out: str, work_root: str, argv: list[str] | None,
              add_arguments: Callable[[argparse.ArgumentParser], None] | None = None,
              extra_overrides: Callable[[argparse.Namespace], dict[str, Any]] | None = None,
              work_suffix: Callable[[Any], str] | None = None) -> Run:
    """The command line every trainer shares (--seed, --out, --work, --preset, --threads, --set KEY=VALUE and
    the trainer's own ``add_arguments``), its config (preset + overrides), checkpoint folder, log and ComfyUI."""
    from ..tinyworld import host

    ap = argparse.ArgumentParser(prog=f"python -m {module}", description=doc.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=default_out, help="weights file to write" + (f" (default {default_out})" if default_out else ""))
    ap.add_argument("--work", default=None, help=f"checkpoint folder (default .cache/{work_root}/seed<SEED>)")
    ap.add_argument("--preset", default="full", choices=config_class.PRESETS)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads; 0 = 2 on an idle machine, 1 when the CPU is busy (oversubscribed threads crawl)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override a {config_class.__name__} field")
    if add_arguments is not None:
        add_arguments(ap)
    args = ap.parse_args(argv)
    overrides: dict[str, Any] = {"seed": args.seed, "threads": args.threads or host.auto_threads()}
    overrides.update(extra_overrides(args) if extra_overrides is not None else {})
    overrides.update(config_overrides(ap, config_class, args.set))
    config = config_class.preset(args.preset, **overrides)
    suffix = work_suffix(config) if work_suffix is not None else ""
    preset = "" if args.preset == "full" else f"-{args.preset}"
    work = args.work or os.path.join(".cache", work_root, f"seed{args.seed}{suffix}{preset}")
    os.makedirs(work, exist_ok=True)
    host.ensure_comfy(cpu=True, threads=config.threads)
    torch.manual_seed(config.seed)
    log = Logger(os.path.join(work, "train.log"))
    command = command_line(module, argv if argv is not None else sys.argv[1:])
    print(f"{module}: {command}\nwork dir {work}, config {dataclasses.asdict(config)}", flush=True)
    return Run(args, config, work, log, command)


def config_overrides(parser: argparse.ArgumentParser, config_class: type, pairs: list[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as overrides of a config dataclass's fields (numbers only)."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    overrides: dict[str, Any] = {}
    for kv in pairs:
        k, _, v = kv.partition("=")
        if k not in fields:
            parser.error(f"--set {k}: no such {config_class.__name__} field ({', '.join(sorted(fields))})")
        overrides[k] = float(v) if "." in v or "e" in v.lower() else int(v)
    return overrides


def command_line(module: str, argv: list[str]) -> str:
    """The command that reproduces this run, as it goes into the weights' metadata."""
    return f"python -m {module} " + " ".join(shlex.quote(x) for x in argv)


def sd_schedule():
    """SD's own training schedule (scaled-linear betas 0.00085..0.012, 1000 steps), the one ComfyUI samples."""
    from diffusers import DDPMScheduler

    return DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, num_train_timesteps=1000)


def base_model(init_from: str, size: int) -> tuple[Any, dict[str, dict[str, torch.Tensor]], Any, Any, Any]:
    """(spec, state dicts, CLIP, VAE, image encoder) of the tiny model a trainer starts from ("" = the shipped one)."""
    from ..tinyworld import encoder, weights

    path = init_from or weights.DEFAULT_WEIGHTS
    spec, parts, _meta = weights.read(path)
    _model, clip, vae, _ = weights.load(path, expect_size=size)
    clip_vision, _head, _ = encoder.load()
    return spec, parts, clip, vae, clip_vision
