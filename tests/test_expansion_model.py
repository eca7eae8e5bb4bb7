"""The built-in expansion model's plumbing: its trainer (smoke preset), file, loader node, and the Local Caption
Expander's trained path (9-channel inpainting input, [global | local | visual] context)."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def smoke_model(comfy_host, tmp_path_factory):
    from laser_story.training import expansion_model

    work = tmp_path_factory.mktemp("expansion-smoke")
    out = work / "tinyworld-expand-smoke.safetensors"
    assert expansion_model.main(["--preset", "smoke", "--threads", "1", "--work", str(work), "--out", str(out)]) == 0
    return out


def test_the_smoke_run_writes_an_inpainting_model_that_resumes_bit_for_bit(smoke_model, tmp_path):
    from laser_story.tinyworld import expansion
    from laser_story.training import expansion_model

    model, meta = expansion.load(str(smoke_model))
    assert model.model.concat_keys == ("mask", "masked_image"), "ComfyUI builds it as an inpainting model"
    assert meta["kind"] == expansion.KIND and meta["base"] == "tinyworld-128.safetensors"
    assert meta["command"].startswith("python -m laser_story.training.expansion_model --preset smoke")
    found = expansion.find(model.clone())
    assert found is not None and found.projection.tokens == expansion.VISUAL_TOKENS

    # the same run interrupted after its first checkpoint (step 2 of 4) and run again gives the same weights
    work = tmp_path / "work"
    work.mkdir()
    (work / "data.pt").write_bytes((smoke_model.parent / "data.pt").read_bytes())
    resumed = tmp_path / "resumed.safetensors"
    args = ["--preset", "smoke", "--threads", "1", "--work", str(work), "--out", str(resumed)]
    assert expansion_model.main([*args, "--set", "halt_at=2"]) == 0 and not resumed.exists()
    assert expansion_model.main(args) == 0
    a, b = expansion.load(str(smoke_model))[0], expansion.load(str(resumed))[0]
    for (k, x), (_, y) in zip(a.model.diffusion_model.state_dict().items(), b.model.diffusion_model.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


def test_the_expander_feeds_the_trained_model_its_context_and_inpaint_inputs(comfy_host, smoke_model):
    from laser_story.canvas.expand import Settings, expand
    from laser_story.tinyworld import encoder, expansion, weights

    model, _ = expansion.load(str(smoke_model))
    _m, clip, vae, _ = weights.load()
    clip_vision, _head, _ = encoder.load()
    seen = []

    def wrapper(apply_model, args):
        seen.append((tuple(args["c"]["c_concat"].shape), tuple(args["c"]["c_crossattn"].shape)))
        return apply_model(args["input"], args["timestep"], **args["c"])

    patched = model.clone()
    patched.set_model_unet_function_wrapper(wrapper)
    image = torch.full((128, 128, 3), 0.5)
    result = expand(patched, clip, vae, image, "a grey scene with a red star", [("right", "a red star on the right")],
                    Settings(window=128, step=64, overlap=16, steps=2, cfg=3.0), clip_vision=clip_vision)
    assert tuple(result.canvas.shape) == (128, 192, 3)
    assert seen and {s for s in seen} == {((2, 5, 16, 16), (2, 77 + 77 + expansion.VISUAL_TOKENS, 64))}, seen
    kept = result.generated == 0
    assert torch.equal(result.canvas[:, :64][kept[:, :64]], image[:, :64][kept[:, :64]])


def test_the_loader_node_names_a_missing_file_and_the_command(comfy_host):
    from laser_story.tinyworld import expansion

    node = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryTinyExpansionModel"]
    message = node.VALIDATE_INPUTS("no_such_expand.safetensors")
    assert message.startswith("weights: built-in expansion model") and expansion.REBUILD_COMMAND in message
