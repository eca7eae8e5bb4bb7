"""One chat interface over every place a plan can come from.

``ChatBackend.chat(messages, schema, sampling)`` returns the model's raw text; validation, repair and
caching live in ``structured`` so every backend gets them the same way. Backends talk plain HTTP with the
standard library (no client packages to install), except the optional transformers one, which imports
its dependencies only when it is used.
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import importlib.util
import json
import logging
import os
import threading
import urllib.parse
from pathlib import Path
from typing import Any, ClassVar

from .config import ADAPTER_BASES, DEFAULT_GGUF, LLMConfig, resolve_model_path
from .errors import AdapterMissingError, LLMConfigError, LLMError, LLMHTTPError
from .form import fill, form_of, gemma_prompt
from .gguf_header import adapter_problem
from .llama_server import POOL, LlamaServerPool, ServerSettings
from .transport import excerpt, request_json

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """Decoding settings; the seed is sent wherever the backend accepts one."""

    temperature: float = 0.2
    seed: int = 0
    max_tokens: int = 512


@dataclasses.dataclass(frozen=True)
class ChatReply:
    text: str
    finish_reason: str = ""


Messages = list[dict[str, str]]


class ChatBackend(abc.ABC):
    """A chat model that may honour a JSON Schema; ``structured_call`` checks the reply either way."""

    name: ClassVar[str]

    def __init__(self, model: str, context_tokens: int) -> None:
        self.model = model
        self.context_tokens = context_tokens

    @property
    def model_id(self) -> str:
        return self.model

    def cache_identity(self) -> dict[str, Any]:
        """What besides the request decides a reply; part of the cache key."""
        return {}

    @property
    def tuned(self) -> bool:
        """A model tuned on the pack's tasks: it gets the short prompts it was trained on, not the few-shot ones."""
        return False

    @abc.abstractmethod
    def chat(self, messages: Messages, schema: dict[str, Any], sampling: Sampling) -> ChatReply:
        """The model's reply to ``messages``, constrained to ``schema`` where the backend can."""

    def unload(self) -> None:  # noqa: B027 - an optional hook: remote backends hold no memory here
        """Free the model's memory now (default: nothing to free)."""


def _redact(message: str, secret: str) -> str:
    return message.replace(secret, "[redacted]") if secret else message


def _answered_without(backend: str, url: str, model: str, field: str, data: Any, secret: str = "") -> LLMHTTPError:
    """The error for a server answer that lacks the field the reply is read from (``secret`` redacted)."""
    return LLMHTTPError(
        f"{backend} backend at {url} (model {model!r}) answered without {field}: {_redact(excerpt(json.dumps(data)), secret)}"
    )


FORMAT_FALLBACK = {"json_schema": "json_object", "json_object": "none"}
FORM_DECODING = 1  # how fixed-shape replies are decoded: part of the cache key, so a change re-asks the model


class OpenAIBackend(ChatBackend):
    """``/chat/completions`` of any OpenAI-compatible server; the schema goes in ``response_format``."""

    name = "openai"

    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key_env: str = "",
        timeout: float = 120.0,
        retries: int = 2,
        context_tokens: int = 8192,
    ) -> None:
        super().__init__(model, context_tokens)
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.retries = retries
        self.format_style = "json_schema"

    def api_base(self) -> str:
        """The ``.../v1`` root; a bare ``http://host:port`` gets ``/v1`` appended, as every such server uses it."""
        url = self.base_url.rstrip("/").removesuffix("/chat/completions")
        return url + "/v1" if urllib.parse.urlsplit(url).path in ("", "/") else url

    def response_format(self, schema: dict[str, Any]) -> dict[str, Any] | None:
        if self.format_style == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "plan", "schema": schema, "strict": False}}
        if self.format_style == "json_object":
            return {"type": "json_object", "schema": schema}
        return None

    def _api_key(self) -> str:
        if not self.api_key_env:
            return ""
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise LLMConfigError(
                f"{self.name} backend: the environment variable {self.api_key_env} named in api_key_env is not set "
                "(or empty); set it in the environment that starts ComfyUI, or clear api_key_env for a server "
                "without keys. The node stores only the variable's name, never a key."
            )
        return key

    def chat(self, messages: Messages, schema: dict[str, Any], sampling: Sampling) -> ChatReply:
        key = self._api_key()
        url = f"{self.api_base()}/chat/completions"
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        while True:
            payload = {
                "model": self.model,
                "messages": messages,
                "temperature": sampling.temperature,
                "max_tokens": sampling.max_tokens,
                "seed": sampling.seed,
            }
            response_format = self.response_format(schema)
            if response_format is not None:
                payload["response_format"] = response_format
            try:
                data = request_json(
                    url,
                    payload,
                    what=f"{self.name} backend",
                    headers=headers,
                    timeout=self.timeout,
                    retries=self.retries,
                )
            except LLMHTTPError as exc:
                # Servers differ in the structured-output form they accept: OpenAI, vLLM, LM Studio and
                # llama.cpp's own server take json_schema, llama-cpp-python only json_object + schema.
                fallback = FORMAT_FALLBACK.get(self.format_style)
                if "response_format" in str(exc) and fallback is not None:
                    log.info(
                        "%s at %s refused response_format %s; using %s", self.name, url, self.format_style, fallback
                    )
                    self.format_style = fallback
                    continue
                raise type(exc)(_redact(str(exc), key)) from None
            except LLMError as exc:
                raise type(exc)(_redact(str(exc), key)) from None
            break
        try:
            choice = data["choices"][0]
            return ChatReply(choice["message"]["content"] or "", choice.get("finish_reason") or "")
        except (KeyError, IndexError, TypeError):
            raise _answered_without(self.name, url, self.model, "choices[0].message.content", data, key) from None


class LlamaCppBackend(OpenAIBackend):
    """A GGUF from ``models/LLM`` served by the pack's own llama.cpp server, started on first use."""

    name = "llama_cpp"

    def __init__(
        self, settings: ServerSettings, *, timeout: float = 120.0, retries: int = 1, pool: LlamaServerPool = POOL
    ) -> None:
        super().__init__(settings.alias, "", timeout=timeout, retries=retries, context_tokens=settings.n_ctx)
        self.settings = settings
        self.pool = pool
        self.fill_forms = True  # False: every schema as a grammar (the baseline benchmarks/planners.py measures)
        self.format_style = "json_object"  # llama-cpp-python's server turns this form into a grammar

    @property
    def model_id(self) -> str:
        return (self.settings.lora_path or self.settings.model_path).name

    @property
    def tuned(self) -> bool:
        return self.settings.lora_path is not None and self.settings.lora_path.name in ADAPTER_BASES

    def cache_identity(self) -> dict[str, Any]:
        identity = {"bytes": self.settings.model_path.stat().st_size, "chat_format": self.settings.effective_chat_format(),
                    "forms": FORM_DECODING if self.fill_forms else 0}
        if self.settings.lora_path is not None:
            identity["adapter_bytes"] = self.settings.lora_path.stat().st_size
        return identity

    def api_base(self) -> str:
        return self.pool.ensure(self.settings, startup_timeout=max(60.0, self.timeout)).base_url

    def chat(self, messages: Messages, schema: dict[str, Any], sampling: Sampling) -> ChatReply:
        """A fixed-shape schema on a Gemma model is filled as a form (:mod:`.form`): a reply that fits it, written
        in a fraction of the decode steps; any other schema goes to the server's chat endpoint as a grammar."""
        gemma = self.settings.effective_chat_format() == "gemma"
        form = form_of(schema) if self.fill_forms and gemma else None
        with self.pool.lease(self.settings, startup_timeout=max(60.0, self.timeout)):
            if form is None:
                return super().chat(messages, schema, sampling)
            url = f"{self.api_base()}/completions"

            def complete(prompt: str, stop: str, max_tokens: int, grammar: str | None) -> str:
                payload = {"prompt": prompt, "stop": [stop], "max_tokens": max_tokens,
                           "temperature": sampling.temperature, "seed": sampling.seed}
                if grammar is not None:
                    payload["grammar"] = grammar
                data = request_json(url, payload, what=f"{self.name} backend", timeout=self.timeout, retries=self.retries)
                try:
                    return data["choices"][0]["text"]
                except (KeyError, IndexError, TypeError):
                    raise _answered_without(self.name, url, self.model, "choices[0].text", data) from None

            filled = fill(form, gemma_prompt(messages), complete)
        log.info("%s filled a %d-slot reply form in %d completions (%d under a grammar)", self.model_id,
                 sum(not isinstance(p, str) for p in form), filled.completions, filled.constrained)
        return ChatReply(filled.text, "stop")

    def unload(self) -> None:
        self.pool.stop(self.settings.key)


class OllamaBackend(ChatBackend):
    """Ollama's native ``/api/chat``: the schema goes in ``format``; unload sends ``keep_alive: 0``."""

    name = "ollama"

    def __init__(
        self, model: str, base_url: str, *, timeout: float = 120.0, retries: int = 2, context_tokens: int = 2048
    ):
        super().__init__(model, context_tokens)
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retries = retries

    def chat(self, messages: Messages, schema: dict[str, Any], sampling: Sampling) -> ChatReply:
        payload = {
            "model": self.model,
            "messages": messages,
            "stream": False,
            "format": schema,
            "options": {
                "temperature": sampling.temperature,
                "seed": sampling.seed,
                "num_predict": sampling.max_tokens,
                "num_ctx": self.context_tokens,
            },
        }
        url = f"{self.base_url}/api/chat"
        data = request_json(url, payload, what="ollama backend", timeout=self.timeout, retries=self.retries)
        try:
            return ChatReply(data["message"]["content"] or "", data.get("done_reason") or "")
        except (KeyError, TypeError):
            raise _answered_without("ollama", url, self.model, "message.content", data) from None

    def unload(self) -> None:
        request_json(
            f"{self.base_url}/api/generate",
            {"model": self.model, "keep_alive": 0},
            what="ollama backend",
            timeout=self.timeout,
            retries=0,
        )


_TRANSFORMERS_MODELS: dict[Path, tuple[Any, Any]] = {}
_TRANSFORMERS_LOCK = threading.Lock()


class TransformersBackend(ChatBackend):
    """A local transformers model (a folder or a GGUF file in ``models/LLM``), loaded once per process.

    transformers has no grammar-constrained decoding, so the schema goes into the prompt and the reply is
    checked like any other.
    """

    name = "transformers"

    def __init__(self, model_path: Path, context_tokens: int = 2048) -> None:
        super().__init__(model_path.name, context_tokens)
        self.model_path = model_path

    def cache_identity(self) -> dict[str, Any]:
        path = self.model_path
        return {"bytes": path.stat().st_size if path.is_file() else None}

    def _load(self) -> tuple[Any, Any]:
        with _TRANSFORMERS_LOCK:
            if self.model_path in _TRANSFORMERS_MODELS:
                return _TRANSFORMERS_MODELS[self.model_path]
            needed = ["transformers", "torch"] + (["gguf"] if self.model_path.suffix.lower() == ".gguf" else [])
            missing = [name for name in needed if importlib.util.find_spec(name) is None]
            if missing:
                raise LLMConfigError(
                    f"the transformers backend needs {', '.join(missing)} (pip install {' '.join(needed)}); "
                    "or choose the rules, llama_cpp, openai or ollama backend"
                )
            transformers = importlib.import_module("transformers")
            torch = importlib.import_module("torch")
            if self.model_path.is_file():
                where, extra = self.model_path.parent, {"gguf_file": self.model_path.name}
            else:
                where, extra = self.model_path, {}
            tokenizer = transformers.AutoTokenizer.from_pretrained(where, local_files_only=True, **extra)
            model = transformers.AutoModelForCausalLM.from_pretrained(where, local_files_only=True, **extra)
            model.to("cuda" if torch.cuda.is_available() else "cpu").eval()
            _TRANSFORMERS_MODELS[self.model_path] = (tokenizer, model)
            return tokenizer, model

    def chat(self, messages: Messages, schema: dict[str, Any], sampling: Sampling) -> ChatReply:
        tokenizer, model = self._load()
        torch = importlib.import_module("torch")
        note = f"\n\nReply with one JSON object that fits this JSON Schema:\n{json.dumps(schema)}"
        messages = [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + note}]
        if getattr(tokenizer, "chat_template", None):
            prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            prompt = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
        sample = sampling.temperature > 0
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(sampling.seed)
            output = model.generate(
                **inputs,
                max_new_tokens=sampling.max_tokens,
                do_sample=sample,
                temperature=sampling.temperature if sample else None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        new_tokens = output[0][inputs["input_ids"].shape[1] :]
        finish = "length" if len(new_tokens) >= sampling.max_tokens else "stop"
        return ChatReply(tokenizer.decode(new_tokens, skip_special_tokens=True), finish)

    def unload(self) -> None:
        with _TRANSFORMERS_LOCK:
            _TRANSFORMERS_MODELS.pop(self.model_path, None)
        torch = importlib.import_module("torch")
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def make_backend(config: LLMConfig, models_dirs: list[str] | tuple[str, ...] = ()) -> ChatBackend | None:
    """The chat backend for ``config``; None for the rule-based planner, which needs no model."""
    if config.backend == "rules":
        return None
    adapter_base = ADAPTER_BASES.get(Path(config.model).name)
    if config.backend == "llama_cpp":
        try:
            path = resolve_model_path(config.model or DEFAULT_GGUF, models_dirs, suffix=".gguf")
        except LLMConfigError as exc:
            if adapter_base is None:
                raise
            raise AdapterMissingError(
                f"the tuned planner adapter {config.model} is missing ({exc}); planned with the rules instead. "
                "Reinstall the pack (it ships the adapter) or build it with `python -m laser_story.training.planner_lora`."
            ) from None
        lora = None
        if adapter_base is not None:
            lora, path = path, resolve_model_path(adapter_base, models_dirs, suffix=".gguf")
            problem = adapter_problem(lora, path)
            if problem:
                raise LLMConfigError(f"{problem}; put {adapter_base} (the base it was trained on) in models/LLM")
        settings = ServerSettings(path, config.n_ctx, config.n_threads, config.chat_format, lora)
        return LlamaCppBackend(settings, timeout=config.timeout_s, retries=config.http_retries)
    if config.backend == "transformers":
        if not config.model:
            raise LLMConfigError("the transformers backend needs model: a folder or GGUF file in models/LLM")
        if adapter_base is not None:
            raise LLMConfigError(
                f"{config.model} is a LoRA adapter for {adapter_base}, served by the llama_cpp backend; choose "
                "backend llama_cpp for it"
            )
        return TransformersBackend(resolve_model_path(config.model, models_dirs), config.n_ctx)
    if not config.model:
        raise LLMConfigError(f"the {config.backend} backend needs model: the model name the server knows")
    if config.backend == "ollama":
        return OllamaBackend(
            config.model, config.url, timeout=config.timeout_s, retries=config.http_retries, context_tokens=config.n_ctx
        )
    return OpenAIBackend(
        config.model,
        config.url,
        api_key_env=config.api_key_env,
        timeout=config.timeout_s,
        retries=config.http_retries,
        context_tokens=config.n_ctx,
    )
