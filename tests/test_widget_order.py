"""Every node's widgets in their saved order: ComfyUI stores a UI workflow's widget values by position, so a
renamed, removed or reordered widget silently shifts the values of every saved graph."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.host

WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# "<name>:control_after_generate" is the extra value the frontend saves after a seed widget.
PINNED = {
    "LaserStoryAttentionInjector": ("f_t", "qk_t", "kv_t", "qk_start_layer", "kv_start_layer", "conv_output_block",
                                    "store_fp16"),
    "LaserStoryLLMConfig": ("backend", "model", "base_url", "api_key_env", "timeout_s", "max_attempts", "unload_after",
                            "n_ctx", "chat_format", "n_threads", "http_retries"),
    "LaserStoryLocalCaptionExpander": ("window", "step", "overlap", "steps", "cfg", "sampler_name", "scheduler",
                                       "denoise", "seed", "seed:control_after_generate", "conditioning", "colour_match",
                                       "negative"),
    "LaserStoryLLMPlanner": ("task", "text", "temperature", "seed", "max_tokens", "image_caption", "directions",
                             "plan_override"),
    "LaserStoryMorphInterpolator": ("frames_per_segment", "steps", "cfg", "scheduler", "seed",
                                    "seed:control_after_generate", "width", "height", "prompts", "controls", "negative",
                                    "frame_negative", "frame_spacing"),
    "LaserStorySaveAnimatedGIF": ("filename_prefix", "fps", "loop", "pingpong"),
    "LaserStoryTinyExpansionModel": ("weights",),
    "LaserStoryTinyModel": ("weights",),
    "LaserStoryStoryMapper": ("story", "seed", "plan_override", "reference_names", "prompt_style"),
    "LaserStoryCharLDMSampler": ("seed", "seed:control_after_generate", "steps", "cfg", "sampler_name", "scheduler",
                                 "width", "height", "frames_per_batch", "hold_regions", "consistent_attention",
                                 "fuse_characters", "fuse_from", "negative"),
    "LaserStoryCharFuserLoader": ("fuser_name",),
    "LaserStoryWorldCaption": (),
}  # fmt: skip


def widget_order(node_class) -> tuple[str, ...]:
    spec = node_class.INPUT_TYPES()
    order = []
    for group in ("required", "optional"):
        for name, (kind, *options) in spec.get(group, {}).items():
            if (isinstance(kind, (list, tuple)) or kind in WIDGETS) and not (options and options[0].get("forceInput")):
                order.append(name)
                if options and options[0].get("control_after_generate"):
                    order.append(f"{name}:control_after_generate")
    return tuple(order)


def test_every_node_keeps_its_widget_order(comfy_host):
    nodes = comfy_host.pack_module.NODE_CLASS_MAPPINGS
    assert set(nodes) == set(PINNED), "a node was added or removed: pin its widget order here"
    for node_id, node_class in nodes.items():
        assert widget_order(node_class) == PINNED[node_id], node_id


def test_shipped_ui_workflows_fill_every_widget(comfy_host):
    """Each node of a shipped UI workflow saves exactly one value per pinned widget."""
    import json

    from comfy_harness import REPO_ROOT

    for path in (REPO_ROOT / "workflows").glob("*.json"):
        for node in json.loads(path.read_text())["nodes"]:
            if node["type"] in PINNED:
                assert len(node["widgets_values"]) == len(PINNED[node["type"]]), (path.name, node["type"])
