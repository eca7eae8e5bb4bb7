"""LLM Config node: where planner nodes get their plans from (one config can feed several planners)."""

from __future__ import annotations

import os

import folder_paths

from ..llm.config import (
    ADAPTER_BASES,
    BACKENDS,
    CHAT_FORMATS,
    DEFAULT_BACKEND,
    DEFAULT_GGUF,
    DEFAULT_URLS,
    PACK_LLM_DIR,
    TUNED_ADAPTER,
    LLMConfig,
    env_name_problem,
    resolve_model_path,
)
from ..llm.errors import LLMConfigError
from ._types import LLM_CONFIG

CATEGORY = "laser-story/llm"
LLM_FOLDER = "LLM"


def llm_model_dirs() -> list[str]:
    """The ``models/LLM`` folders and the pack's adapter folder (the pack registers both; without that, the
    default folder and the pack's)."""
    try:
        return list(folder_paths.get_folder_paths(LLM_FOLDER))
    except KeyError:
        return [os.path.join(folder_paths.models_dir, LLM_FOLDER), PACK_LLM_DIR]


class LaserStoryLLMConfig:
    DESCRIPTION = (
        "Chooses the model behind LLM Prompt Planner nodes: the rule-based planner (no model), a GGUF from "
        "models/LLM served by a llama.cpp server this pack starts on 127.0.0.1, any OpenAI-compatible server, "
        "Ollama, or a local transformers model. API keys are read from the environment variable you name here; "
        "no key is ever stored in the workflow."
    )
    CATEGORY = CATEGORY
    RETURN_TYPES = (LLM_CONFIG,)
    RETURN_NAMES = ("llm_config",)
    OUTPUT_TOOLTIPS = ("Backend settings for one or more LLM Prompt Planner nodes (contains no key).",)
    FUNCTION = "configure"

    @classmethod
    def INPUT_TYPES(cls):
        backends = "; ".join(f"{name}: {what}" for name, what in BACKENDS.items())
        return {
            "required": {
                "backend": (list(BACKENDS), {"default": DEFAULT_BACKEND, "tooltip": backends}),
                "model": ("STRING", {
                    "default": DEFAULT_GGUF,
                    "tooltip": "llama_cpp / transformers: a file (or folder) in models/LLM. llama_cpp: "
                               f"{TUNED_ADAPTER} is Gemma 3 270M tuned on the pack's tasks (the pack's adapter on "
                               f"{DEFAULT_GGUF}, with short prompts; for stories it chooses whom each mention the "
                               "rules found means). openai / ollama: the model name the server knows (e.g. "
                               "gpt-4o-mini, llama3.2). Ignored by rules.",
                }),
                "base_url": ("STRING", {
                    "default": "",
                    "tooltip": f"Server address for openai (default {DEFAULT_URLS['openai']}; a bare "
                               f"http://host:port gets /v1) and ollama (default {DEFAULT_URLS['ollama']}).",
                }),
                "api_key_env": ("STRING", {
                    "default": "",
                    "tooltip": "The NAME of the environment variable that holds the API key (e.g. OPENAI_API_KEY), "
                               "never the key itself. Leave empty for servers without keys.",
                }),
                "timeout_s": ("FLOAT", {"default": 120.0, "min": 1.0, "max": 3600.0, "step": 1.0,
                                        "tooltip": "Seconds to wait for one reply before retrying."}),
                "max_attempts": ("INT", {"default": 3, "min": 1, "max": 10,
                                         "tooltip": "Replies to ask for when one does not fit the plan schema "
                                                    "even after local repair."}),
                "unload_after": ("BOOLEAN", {"default": False,
                                             "tooltip": "Free the model after planning: Ollama gets keep_alive 0, "
                                                        "the pack's own llama.cpp server is stopped."}),
                "n_ctx": ("INT", {"default": 2048, "min": 256, "max": 131072,
                                  "tooltip": "Context window in tokens (the llama_cpp server's --n_ctx); longer "
                                             "text is cut with a warning."}),
            },
            "optional": {
                "chat_format": (list(CHAT_FORMATS), {"default": "auto",
                                                     "tooltip": "llama_cpp only: prompt template. auto = the "
                                                                "GGUF's own, or gemma for Gemma files without one."}),
                "n_threads": ("INT", {"default": 0, "min": 0, "max": 256,
                                      "tooltip": "llama_cpp only: CPU threads; 0 = half the cores (at most 8)."}),
                "http_retries": ("INT", {"default": 2, "min": 0, "max": 10,
                                         "tooltip": "Retries (with backoff) when the server is unreachable, "
                                                    "times out or answers 429/5xx."}),
            },
        }  # fmt: skip

    @classmethod
    def VALIDATE_INPUTS(cls, backend=None, model=None, base_url=None, api_key_env=None):
        if backend is not None and backend not in BACKENDS:
            return f"backend: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}"
        if api_key_env is not None:
            problem = env_name_problem(api_key_env.strip())
            if problem:
                return problem
        if base_url and not base_url.strip().startswith(("http://", "https://")):
            return f"base_url: {base_url!r} must start with http:// or https:// (e.g. http://127.0.0.1:8080/v1)"
        if model is not None and backend in ("llama_cpp", "transformers"):
            if not model.strip() and backend == "transformers":
                return "model: name a folder or GGUF file in models/LLM for the transformers backend"
            # The tuned adapter needs its base; a missing adapter itself falls back to the rules when planning.
            name = ADAPTER_BASES.get(model.strip(), model.strip()) if backend == "llama_cpp" else model.strip()
            try:
                resolve_model_path(name or DEFAULT_GGUF, llm_model_dirs(), suffix=".gguf" if backend == "llama_cpp" else None)
            except LLMConfigError as exc:
                return f"model: {exc}"
        if model is not None and backend in ("openai", "ollama") and not model.strip():
            return f"model: give the model name the {backend} server knows (e.g. gpt-4o-mini or llama3.2)"
        return True

    def configure(self, backend, model, base_url, api_key_env, timeout_s, max_attempts, unload_after, n_ctx,
                  chat_format="auto", n_threads=0, http_retries=2):  # fmt: skip
        config = LLMConfig(
            backend=backend,
            model=model.strip(),
            base_url=base_url.strip(),
            api_key_env=api_key_env.strip(),
            timeout_s=timeout_s,
            http_retries=http_retries,
            max_attempts=max_attempts,
            unload_after=unload_after,
            n_ctx=n_ctx,
            n_threads=n_threads,
            chat_format=chat_format,
        )
        return (config.to_json(),)


NODE_CLASS_MAPPINGS = {"LaserStoryLLMConfig": LaserStoryLLMConfig}
NODE_DISPLAY_NAME_MAPPINGS = {"LaserStoryLLMConfig": "LLM Config"}
