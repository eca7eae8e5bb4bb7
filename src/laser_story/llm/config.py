"""Backend settings as one small, JSON-compatible value that an LLM Config node hands to planner nodes.

It holds the *name* of the environment variable with the API key, never a key, so it can sit in a saved
workflow or PNG metadata without leaking anything.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from .errors import LLMConfigError

BACKENDS = {
    "rules": "rule-based planner, no model (deterministic, always available)",
    "llama_cpp": "local GGUF from models/LLM, served by a llama.cpp server this pack starts on 127.0.0.1",
    "openai": "any OpenAI-compatible chat API (OpenAI, llama.cpp server, vLLM, LM Studio, Ollama /v1)",
    "ollama": "Ollama's native API",
    "transformers": "local transformers model (folder or GGUF) from models/LLM; needs the transformers extra",
}
# Chosen by benchmarks/planners.py on the frozen held-out cases: the rule-based planner resolves more of the held
# stories' references (66 %) than Gemma 3 270M base (2 %) or with the pack's adapter (62 %), and needs no model.
DEFAULT_BACKEND = "rules"
DEFAULT_GGUF = "gemma-3-270m-q4_k_m.gguf"
# The pack's planner adapter (``python -m laser_story.training.planner_lora``): a LoRA GGUF shipped in the pack's
# ``llm/weights`` folder, which the pack registers as a models/LLM folder, so it sits beside the base it was trained
# on. As a model name it means "that base with this adapter, and the short prompts the tuned model was trained with".
TUNED_ADAPTER = "laser-story-planner-lora.gguf"
ADAPTER_BASES = {TUNED_ADAPTER: DEFAULT_GGUF}
PACK_LLM_DIR = str(Path(__file__).with_name("weights"))  # where the pack ships the adapter; a models/LLM folder
DEFAULT_URLS = {"openai": "https://api.openai.com/v1", "ollama": "http://127.0.0.1:11434"}
CHAT_FORMATS = ("auto", "gemma", "chatml", "llama-2", "llama-3", "mistral-instruct", "qwen", "phi3", "none")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def env_name_problem(name: str) -> str | None:
    """Why ``name`` is not an environment-variable name, without ever repeating the value (it may be a key)."""
    if not name or ENV_NAME.fullmatch(name):
        return None
    return (
        "api_key_env must be the NAME of an environment variable (letters, digits and underscores, e.g. "
        "OPENAI_API_KEY), not the key itself; put the key in that variable before starting ComfyUI"
    )


# Checked on every config, so one rebuilt from a workflow's JSON is as sound as one the node made.
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {"str": str, "bool": bool, "int": int, "float": (int, float)}


@dataclasses.dataclass(frozen=True)
class LLMConfig:
    """Where plans come from; every field is safe to save in a workflow."""

    backend: str = DEFAULT_BACKEND
    model: str = ""
    base_url: str = ""
    api_key_env: str = ""
    timeout_s: float = 120.0
    http_retries: int = 2
    max_attempts: int = 3
    unload_after: bool = False
    n_ctx: int = 2048
    n_threads: int = 0
    chat_format: str = "auto"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value, kind = getattr(self, field.name), FIELD_TYPES[field.type]
            if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)) or value != value:
                raise LLMConfigError(f"LLM config field {field.name!r} must be a {field.type}, got {value!r:.40}")
        if self.backend not in BACKENDS:
            raise LLMConfigError(f"unknown LLM backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        problem = env_name_problem(self.api_key_env)
        if problem:
            raise LLMConfigError(problem)
        if self.chat_format not in CHAT_FORMATS:
            raise LLMConfigError(f"chat_format {self.chat_format!r} is not one of: {', '.join(CHAT_FORMATS)}")
        if self.timeout_s <= 0 or self.max_attempts < 1 or self.http_retries < 0 or self.n_ctx < 256:
            raise LLMConfigError(
                "timeout_s must be > 0, max_attempts >= 1, http_retries >= 0 and n_ctx >= 256 "
                f"(got {self.timeout_s}, {self.max_attempts}, {self.http_retries}, {self.n_ctx})"
            )

    @property
    def url(self) -> str:
        return (self.base_url or DEFAULT_URLS.get(self.backend, "")).rstrip("/")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> LLMConfig:
        """Rebuild from ``to_json()``; unknown keys are an error so typos do not pass silently."""
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise LLMConfigError(f"LLM config must be a dict, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise LLMConfigError(f"LLM config has unknown keys {unknown}; expected only {sorted(names)}")
        return cls(**data)


def list_model_files(models_dirs: list[str] | tuple[str, ...]) -> list[str]:
    """What the ``models/LLM`` folders hold: files, and folders with a ``config.json`` (transformers models)."""
    found: dict[str, None] = {}  # a name in two folders is listed once (the first one is the one used)
    for folder in models_dirs:
        root = Path(folder)
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*")):
            if any(part.startswith(".") for part in path.relative_to(root).parts):
                continue
            if path.is_file() and path.name != "config.json" or path.is_dir() and (path / "config.json").is_file():
                found[path.relative_to(root).as_posix() + ("/" if path.is_dir() else "")] = None
    return list(found)


def resolve_model_path(model: str, models_dirs: list[str] | tuple[str, ...], *, suffix: str | None = None) -> Path:
    """Find ``model`` (absolute, or relative to a ``models/LLM`` folder); the error lists what is there."""
    try:
        expanded = Path(model).expanduser()
    except (RuntimeError, ValueError):  # "~someone" with no such user, or a NUL byte: taken as written
        expanded = Path(model)
    candidates = [expanded] if expanded.is_absolute() else []
    candidates += [Path(folder) / model for folder in models_dirs]
    for path in candidates:
        try:
            if path.exists() and (suffix is None or path.suffix.lower() == suffix):
                return path
        except (OSError, ValueError):  # a NUL byte or an over-long name is simply not there
            continue
    present = [name for name in list_model_files(models_dirs) if suffix is None or name.lower().endswith(suffix)]
    listing = ", ".join(present[:30]) + (f" and {len(present) - 30} more" if len(present) > 30 else "")
    folders = ", ".join(str(Path(f)) for f in models_dirs) or "(no models/LLM folder is registered)"
    kind = f"{suffix} model" if suffix else "model"
    raise LLMConfigError(
        f"{kind} {model!r} was not found in {folders}; that folder holds: {listing or 'nothing'}. "
        "Put the file there or set model to one of these names."
    )
