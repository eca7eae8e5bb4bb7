"""Tune Gemma 3 270M as the pack's planner: a LoRA adapter, served by llama.cpp beside the base GGUF.

    python -m laser_story.training.planner_lora --seed 0 --threads 2

The base is the registry GGUF the setup installs (``models/LLM/gemma-3-270m-q4_k_m.gguf``), loaded in
transformers and dequantized to float, so the adapter is trained on exactly the weights llama.cpp serves.
Data: ``planner_data.chat_examples`` (stories, morph descriptions, expansion captions, each with its gold
reply), in the Gemma chat format llama.cpp's ``gemma`` chat format writes; the loss is on the reply tokens only.
LoRA (peft) on the attention and MLP projections; bf16 autocast; batches of similar length.

Stages (each resumes from ``--work``, default ``.cache/planner-lora/seed<N>``): ``data`` (tokenised examples),
``train`` (adapter checkpoints), ``export``: the peft adapter converted to a GGUF LoRA with llama.cpp's
``convert_lora_to_gguf.py`` (from the llama-cpp-python sdist of the version the setup installs), with this
command in its ``general.description``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..llm.config import DEFAULT_GGUF, TUNED_ADAPTER
from ..llm.form import END, gemma_prompt
from ..tinyworld import host
from . import planner_data
from .common import (
    Logger,
    checkpoint,
    command_line,
    config_overrides,
    cosine_lr,
    last_losses,
    load_checkpoint,
    resume,
    save_checkpoint,
)

LLAMA_CPP_VERSION = "0.3.36"  # scripts/setup.sh installs this llama-cpp-python
ADAPTER_DIR = Path(host.PACKAGE_ROOT) / "llm" / "weights"
DEFAULT_OUT = ADAPTER_DIR / TUNED_ADAPTER
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclasses.dataclass
class TrainConfig:
    seed: int = 0
    threads: int = 2
    stories: int = 850
    morph: int = 200
    expand: int = 100  # scenes: one global and one local caption per step each, about 1400 examples in all
    max_tokens: int = 640  # longer examples are left out (the story replies of 10-sentence stories fit)
    steps: int = 800  # between two and three passes over the examples at batch 4 (one was too little: README)
    batch: int = 4
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.05
    lr: float = 2e-4
    warmup: int = 30
    weight_decay: float = 0.0
    ckpt_every: int = 25
    log_every: int = 10
    halt_at: int = 0

    PRESETS = ("full", "smoke")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> TrainConfig:
        presets = {"full": {}, "smoke": dict(stories=6, morph=2, expand=1, steps=3, batch=2, warmup=1, ckpt_every=2,
                                             log_every=1, rank=2, alpha=4)}  # fmt: skip
        return cls(**{**presets[name], **overrides})


def base_gguf(path: str = "") -> Path:
    """The base GGUF: ``path``, else the one the setup put in the host's ``models/LLM``."""
    if path:
        return Path(path)
    host.ensure_comfy()
    import folder_paths

    found = [Path(d) / DEFAULT_GGUF for d in folder_paths.get_folder_paths("LLM")] if "LLM" in folder_paths.folder_names_and_paths else []
    found.append(Path(folder_paths.models_dir) / "LLM" / DEFAULT_GGUF)
    for candidate in found:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{DEFAULT_GGUF} not found in models/LLM; run `make setup` or pass --base PATH")


def load_base(gguf: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name, local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32,
                                                 local_files_only=True)  # fmt: skip
    model.hf_quantizer = None  # dequantized on load: plain float weights from here on
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return tokenizer, model


def encode_example(tokenizer: Any, example: dict[str, Any]) -> tuple[list[int], int]:
    """Token ids of one chat example as llama.cpp's ``gemma`` chat format prompts it, and where the reply starts."""
    user, reply = example["messages"]
    prompt = tokenizer(gemma_prompt([user]), add_special_tokens=True)["input_ids"]
    answer = tokenizer(reply["content"] + END, add_special_tokens=False)["input_ids"]
    return prompt + answer, len(prompt)


def build_dataset(cfg: TrainConfig, tokenizer: Any, work: str, log: Logger) -> dict[str, Any]:
    path = os.path.join(work, "data.pt")
    made_by = [cfg.seed, cfg.stories, cfg.morph, cfg.expand, cfg.max_tokens]
    data = load_checkpoint(path)
    if data is not None and data.get("made_by") == made_by:
        return data
    t0 = time.time()
    examples = planner_data.chat_examples(cfg.stories, cfg.morph, cfg.expand, cfg.seed)
    ids, starts, tasks = [], [], []
    for example in examples:
        tokens, start = encode_example(tokenizer, example)
        if len(tokens) <= cfg.max_tokens:
            ids.append(tokens)
            starts.append(start)
            tasks.append(example["task"])
    lengths = np.array([len(t) for t in ids])
    data = {"ids": ids, "starts": starts, "tasks": tasks, "made_by": made_by}
    log("data", len(ids), left_out=float(len(examples) - len(ids)), mean_tokens=float(lengths.mean()),
        max_tokens=float(lengths.max()), reply_tokens=float(sum(len(t) - s for t, s in zip(ids, starts, strict=True))),
        seconds=time.time() - t0)  # fmt: skip
    save_checkpoint(data, path)
    return data


def batch_order(n: int, batch: int, steps: int, seed: int) -> list[list[int]]:
    """Batches of similar length (shuffle, sort within pools of 16 batches, shuffle the batches), epoch after
    epoch, each epoch keyed by the seed: a resumed run draws the same batches."""
    order: list[list[int]] = []
    epoch = 0
    while len(order) < steps:
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        batches = [perm[i : i + batch].tolist() for i in range(0, n - batch + 1, batch)]
        order.extend(batches[i] for i in np.random.default_rng([seed, epoch, 1]).permutation(len(batches)))
        epoch += 1
    return order[:steps]


def pool_by_length(order: list[list[int]], lengths: list[int], pool: int = 16) -> list[list[int]]:
    """Within each run of ``pool`` batches, regroup the examples by length, so padding stays small."""
    out: list[list[int]] = []
    for i in range(0, len(order), pool):
        chunk = order[i : i + pool]
        flat = sorted((j for b in chunk for j in b), key=lambda j: lengths[j])
        size = len(chunk[0])
        out.extend(flat[k : k + size] for k in range(0, len(flat), size))
    return out


def collate(data: dict[str, Any], indices: list[int], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(data["ids"][i]) for i in indices)
    ids = torch.full((len(indices), width), pad, dtype=torch.long)
    labels = torch.full_like(ids, -100)
    mask = torch.zeros_like(ids)
    for row, i in enumerate(indices):
        tokens, start = data["ids"][i], data["starts"][i]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        labels[row, start : len(tokens)] = torch.tensor(tokens[start:])
        mask[row, : len(tokens)] = 1
    return ids, labels, mask


def reply_loss(model: Any, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, first_reply: int) -> torch.Tensor:
    """Next-token loss on the reply tokens, with logits computed only from the first reply onwards: Gemma's
    262k-word output layer costs more than the rest of the model, and the prompt tokens carry no loss."""
    keep = ids.shape[1] - first_reply + 1
    logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, :-1]
    targets = labels[:, ids.shape[1] - keep + 1 :]
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)


def train(cfg: TrainConfig, model: Any, tokenizer: Any, data: dict[str, Any], work: str, log: Logger) -> Any:
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    torch.manual_seed(cfg.seed)
    lora = LoraConfig(r=cfg.rank, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=list(TARGETS),
                      task_type="CAUSAL_LM")  # fmt: skip
    model = get_peft_model(model, lora)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt_path = os.path.join(work, "train_ckpt.pt")
    start, ck = resume(ckpt_path, "train", {"opt": opt})
    if ck is not None:
        set_peft_model_state_dict(model, ck["adapter"])
    lengths = [len(t) for t in data["ids"]]
    order = pool_by_length(batch_order(len(lengths), cfg.batch, cfg.steps, cfg.seed), lengths)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    model.train()
    acc: dict[str, float] = {}
    t_start = time.time()
    for step in range(start, cfg.steps):
        torch.manual_seed(cfg.seed * 1_000_003 + step)  # LoRA dropout draws, the same after a resume
        for group in opt.param_groups:
            group["lr"] = cosine_lr(step, cfg.steps, cfg.lr, cfg.warmup)
        ids, labels, mask = collate(data, order[step], pad)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = reply_loss(model, ids, labels, mask, min(data["starts"][i] for i in order[step]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        acc["loss"] = acc.get("loss", 0.0) + float(loss.detach())
        acc["tokens"] = acc.get("tokens", 0.0) + float(ids.numel())
        acc["n"] = acc.get("n", 0) + 1
        if (step + 1) % cfg.log_every == 0 or step + 1 == cfg.steps:
            rate = (time.time() - t_start) / (step + 1 - start)
            log("train", step + 1, loss=acc["loss"] / acc["n"], lr=opt.param_groups[0]["lr"], s_per_step=rate,
                padded_tokens=acc["tokens"] / acc["n"])  # fmt: skip
            acc = {}
        if (step + 1) % cfg.ckpt_every == 0 or step + 1 == cfg.steps:
            checkpoint(ckpt_path, step + 1, {"opt": opt}, adapter=get_peft_model_state_dict(model))
        if step + 1 == cfg.halt_at:
            return None
    return model


def llama_cpp_tools(cache: Path) -> Path:
    """llama.cpp's conversion scripts (``convert_lora_to_gguf.py`` and its ``gguf-py``), from the llama-cpp-python
    sdist on the registry: the version the setup compiles, so the GGUF it writes is one that build reads."""
    root = cache / f"llama_cpp_python-{LLAMA_CPP_VERSION}" / "vendor" / "llama.cpp"
    if (root / "conversion").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(cache),
                    f"llama-cpp-python=={LLAMA_CPP_VERSION}"], check=True)  # fmt: skip
    prefix = f"llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp/"
    wanted = tuple(prefix + part for part in ("convert_lora_to_gguf.py", "convert_hf_to_gguf.py", "conversion/", "gguf-py/"))
    with tarfile.open(cache / f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz") as tar:
        tar.extractall(cache, members=[m for m in tar.getmembers() if m.name.startswith(wanted)], filter="data")
    return root


def export(model: Any, out: Path, work: str, metadata: dict[str, Any]) -> None:
    """The adapter as a GGUF LoRA (f16) with the run's metadata in ``general.description``."""
    adapter_dir, base_dir = Path(work) / "adapter", Path(work) / "base-config"
    for config in model.peft_config.values():
        config.base_model_name_or_path = Path(DEFAULT_GGUF).stem  # the file it applies to, not this machine's path
    model.save_pretrained(adapter_dir, save_embedding_layers=False)  # LoRA only: no lookup of the base config
    base_dir.mkdir(parents=True, exist_ok=True)
    base = model.get_base_model()
    base.config.architectures = [type(base).__name__]  # what the converter picks its model class by
    base.config.to_json_file(base_dir / "config.json")  # the converter needs only the config
    tools = llama_cpp_tools(Path(host.REPO_ROOT) / ".cache" / "llama-sdist")
    raw = Path(work) / "adapter-raw.gguf"
    env = {**os.environ, "PYTHONPATH": str(tools / "gguf-py")}
    subprocess.run([sys.executable, str(tools / "convert_lora_to_gguf.py"), "--base", str(base_dir), "--outtype", "f16",
                    "--outfile", str(raw), str(adapter_dir)], check=True, env=env)  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", str(raw), str(out), "--force",
                    "--remove-metadata", "general.base_model.0.repo_url", "--remove-metadata", "general.tags",
                    "--general-name", "laser-story planner (Gemma 3 270M LoRA)",
                    "--general-description", json.dumps(metadata, separators=(",", ":"))], check=True, env=env)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(DEFAULT_OUT), help=f"adapter GGUF to write (default {DEFAULT_OUT})")
    ap.add_argument("--work", default=None, help="checkpoint folder (default .cache/planner-lora/seed<SEED>)")
    ap.add_argument("--base", default="", help=f"base GGUF (default: {DEFAULT_GGUF} in the host's models/LLM)")
    ap.add_argument("--preset", default="full", choices=TrainConfig.PRESETS)
    ap.add_argument("--threads", type=int, default=0, help="torch threads; 0 = 2 on an idle machine, 1 when busy")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a TrainConfig field")
    args = ap.parse_args(argv)
    overrides = {"seed": args.seed, "threads": args.threads or host.auto_threads(), **config_overrides(ap, TrainConfig, args.set)}
    cfg = TrainConfig.preset(args.preset, **overrides)
    torch.set_num_threads(cfg.threads)
    preset = "" if args.preset == "full" else f"-{args.preset}"
    work = args.work or os.path.join(".cache", "planner-lora", f"seed{cfg.seed}{preset}")
    os.makedirs(work, exist_ok=True)
    log = Logger(os.path.join(work, "train.log"))
    command = command_line(__spec__.name, argv if argv is not None else sys.argv[1:])
    print(f"{__spec__.name}: {command}\nwork dir {work}, config {dataclasses.asdict(cfg)}", flush=True)
    started = time.time()
    tokenizer, model = load_base(base_gguf(args.base))
    data = build_dataset(cfg, tokenizer, work, log)
    tuned = train(cfg, model, tokenizer, data, work, log)
    if tuned is None:
        print(f"halted at step {cfg.halt_at}; run the same command again to resume", flush=True)
        return 0
    export(tuned, Path(args.out), work, {"command": command, "seed": cfg.seed, "config": dataclasses.asdict(cfg),
                                         "losses": last_losses(log.path),
                                         "wall_seconds_this_invocation": round(time.time() - started)})  # fmt: skip
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.2f} MB) in {time.time() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
