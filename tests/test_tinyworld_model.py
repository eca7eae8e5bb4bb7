"""The built-in tiny model inside ComfyUI: weights file, loader node, training plumbing."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import torch
from comfy_harness import tiny_txt2img

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def shipped(comfy_host):
    from laser_story.tinyworld import weights

    if weights.check() is not None:
        pytest.fail(weights.check())
    return weights.load()


def test_shipped_weights_are_small_and_carry_their_spec_and_command(comfy_host):
    from laser_story.tinyworld import weights

    total = sum(os.path.getsize(os.path.join(weights.WEIGHTS_DIR, f)) for f in os.listdir(weights.WEIGHTS_DIR))
    print(f"\nweights folder {total / 1e6:.2f} MB")
    assert total <= 40 * 1024 * 1024
    assert weights.DEFAULT_WEIGHTS.endswith(weights.SHIPPED[128])
    for side, name in weights.SHIPPED.items():
        spec, parts, meta = weights.read(os.path.join(weights.WEIGHTS_DIR, name))
        assert meta["command"] == weights.REBUILD_COMMANDS[name]  # errors name the very command that made the file
        assert meta["seed"].isdigit() and weights.image_size(meta) == side
        assert set(parts) == {"unet", "clip", "vae"}


def test_shipped_model_is_comfy_native_sd15_with_sd15_topology(shipped):
    import comfy.latent_formats
    import comfy.supported_models
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    model, clip, vae, _ = shipped
    assert isinstance(model.model.diffusion_model, UNetModel)
    assert isinstance(model.model.model_config, comfy.supported_models.SD15)
    assert isinstance(model.model.latent_format, comfy.latent_formats.SD15)
    unet = model.model.diffusion_model
    assert len(unet.input_blocks) == 12 and len(unet.output_blocks) == 12
    n_self_attn = sum(1 for name, _ in unet.named_modules() if name.endswith("attn1"))
    assert n_self_attn == 16


def test_shipped_model_generates_in_a_comfy_graph(comfy_host):
    graph = tiny_txt2img("tinyworld_test", ("LaserStoryTinyModel", {"weights": "tinyworld-128.safetensors"}),
                         "a large red star in the center", steps=20, batch_size=2)
    graph["4"]["inputs"].update(width=128, height=128)
    outputs = comfy_host.run(graph)
    assert len(outputs["7"]["images"]) == 2


def test_loader_node_reports_a_missing_file_with_the_rebuild_command(comfy_host):
    from laser_story.tinyworld import weights

    node = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryTinyModel"]
    assert comfy_host.nodes.NODE_DISPLAY_NAME_MAPPINGS["LaserStoryTinyModel"] == "Built-in Tiny Model"
    assert node.CATEGORY == "laser-story/loaders" and node.RETURN_TYPES == ("MODEL", "CLIP", "VAE", "CLIP_VISION")
    for spec in node.INPUT_TYPES()["required"].values():
        assert spec[1]["tooltip"]
    msg = node.VALIDATE_INPUTS("no_such_file.safetensors")
    assert isinstance(msg, str) and "no_such_file.safetensors" in msg and weights.rebuild_command(weights.DEFAULT_WEIGHTS) in msg
    assert node.VALIDATE_INPUTS("tinyworld.safetensors") is True and node.VALIDATE_INPUTS("tinyworld-128.safetensors") is True
    assert node.INPUT_TYPES()["required"]["weights"][1]["default"] == "tinyworld-128.safetensors"


def test_missing_and_corrupt_weights_name_the_file_and_the_command(comfy_host, tmp_path):
    from laser_story.tinyworld import weights

    missing = tmp_path / "gone.safetensors"
    with pytest.raises(weights.TinyWeightsError) as e:
        weights.load(str(missing))
    assert str(missing) in str(e.value) and weights.rebuild_command(weights.DEFAULT_WEIGHTS) in str(e.value)

    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all")
    with pytest.raises(weights.TinyWeightsError) as e:
        weights.load(str(corrupt))
    assert str(corrupt) in str(e.value) and weights.rebuild_command(weights.DEFAULT_WEIGHTS) in str(e.value)
    assert weights.check(str(corrupt)) is not None
    gone_64 = tmp_path / weights.SHIPPED[64]
    with pytest.raises(weights.TinyWeightsError) as e:
        weights.load(str(gone_64))
    assert weights.REBUILD_COMMANDS[weights.SHIPPED[64]] in str(e.value) and "--preset" not in str(e.value)

    truncated = tmp_path / "truncated.safetensors"
    data = open(weights.DEFAULT_WEIGHTS, "rb").read()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(weights.TinyWeightsError) as e:
        weights.load(str(truncated))
    assert str(truncated) in str(e.value)


def test_weights_round_trip_keeps_every_tensor(comfy_host, tmp_path):
    from laser_story.tinyworld import weights
    from laser_story.tinyworld.model import TinySpec, build_clip, build_model, build_vae
    from laser_story.training import tiny_model as train

    spec = TinySpec()
    mp, clip, vae = build_model(spec, seed=0), build_clip(spec, seed=1), build_vae(spec, seed=2)
    tokens = train.CaptionTokens(clip.tokenizer)
    keep = train.vocabulary_token_ids(tokens)
    path = str(tmp_path / "w.safetensors")
    weights.save(path, spec, mp.model.diffusion_model.state_dict(), clip.cond_stage_model.state_dict(),
                 vae.first_stage_model.state_dict(), keep, keep[5], {"command": "python -m laser_story.training.tiny_model --test", "seed": "0"})
    assert os.stat(path).st_mode & 0o777 == 0o644
    spec2, parts, meta = weights.read(path)
    assert spec2 == spec and meta["seed"] == "0"
    ref = mp.model.diffusion_model.state_dict()
    assert all(torch.allclose(parts["unet"][k], ref[k].half().float()) for k in ref)
    emb = parts["clip"][weights.TOKEN_EMBEDDING_KEY]
    full = clip.cond_stage_model.state_dict()[weights.TOKEN_EMBEDDING_KEY].float()
    assert torch.allclose(emb[keep], full[keep].half().float())
    assert torch.allclose(emb[12345], full[keep[5]].half().float())  # any other token -> the default row
    m2, c2, v2, _ = weights.load(path)
    assert isinstance(m2.model.diffusion_model, type(mp.model.diffusion_model))


def test_training_text_forward_matches_comfy_clip(comfy_host):
    from laser_story.tinyworld import world
    from laser_story.tinyworld.model import build_clip
    from laser_story.training import tiny_model as train

    clip = build_clip(train.TRAINED_SPEC, seed=1)
    te = clip.cond_stage_model.clip_l.transformer.float()
    train.training_init(te)
    tokens = train.CaptionTokens(clip.tokenizer)
    caps = [world.caption(world.scene_from_seed(i), world.rng_for("tf", i)) for i in range(4)]
    ids = torch.tensor([tokens.ids(c) for c in caps])
    with torch.no_grad():
        ours = train.text_forward(te, ids)
        theirs = te(input_tokens=ids)[0]
        cond = clip.encode_from_tokens(clip.tokenize(caps[0]))
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert torch.allclose(ours[0], cond[0].float(), atol=1e-2)  # ComfyUI's own CLIPTextEncode path


def test_caption_token_alignment_matches_the_whole_caption_tokenisation(comfy_host):
    from laser_story.tinyworld import world
    from laser_story.tinyworld.model import build_clip
    from laser_story.training import tiny_model as train

    clip = build_clip(train.TRAINED_SPEC, seed=1)
    tokens = train.CaptionTokens(clip.tokenizer)
    for i in range(200):
        segs, _ = world.caption_segments(world.scene_from_seed(i), world.rng_for("align", i))
        ids, owner = tokens.encode(segs)
        assert ids == tokens.ids(world.join_segments(segs)), world.join_segments(segs)
        assert len(owner) == len(ids) == 77


def test_out_of_vocabulary_caption_still_generates(shipped):
    from laser_story.tinyworld import evaluate, judge

    model, clip, vae, _ = shipped
    caps = ["a dragon flying over snowy mountains at sunset", "an astronaut riding a horse"]
    images = evaluate.generate(model, clip, vae, caps, [0, 1], steps=8)
    assert images.shape == (2, 64, 64, 3) and np.isfinite(images).all()
    for img, cap in zip(images, caps, strict=True):
        assert judge.prompt_fidelity(img, cap).scorable is False


@pytest.mark.slow
def test_training_command_runs_end_to_end_and_resumes(comfy_host, tmp_path):
    from laser_story.tinyworld import weights
    from laser_story.training import tiny_model as train

    out = tmp_path / "smoke.safetensors"
    work = tmp_path / "work"
    argv = ["--preset", "smoke", "--work", str(work), "--out", str(out), "--threads", "1"]
    assert train.main(argv + ["--stop-after", "vae"]) == 0
    assert (work / "vae.pt").exists() and not out.exists()
    assert train.main(argv) == 0  # resumes after the VAE stage
    log = (work / "train.log").read_text()
    assert '"stage": "unet"' in log and '"stage": "vae"' in log
    spec, parts, meta = weights.read(str(out))
    assert spec == train.TRAINED_SPEC and "--preset smoke" in meta["command"]
    shutil.rmtree(work)


def test_each_loader_lists_only_its_own_kind_of_weights(comfy_host, tmp_path):
    """A weights file of another kind in the folder is not offered, and picking it names what it holds."""
    from safetensors.torch import save_file

    from laser_story.tinyworld import weights

    other = tmp_path / "encoder.safetensors"
    save_file({"w": torch.zeros(1)}, str(other), metadata={"format": weights.FORMAT, "kind": "image-encoder"})
    shutil.copy(weights.DEFAULT_WEIGHTS, tmp_path / "tiny.safetensors")
    (tmp_path / "notes.txt").write_text("not weights")
    assert weights.files_of_kind(weights.KIND, str(tmp_path)) == ["tiny.safetensors"]
    assert weights.files_of_kind("image-encoder", str(tmp_path)) == ["encoder.safetensors"]
    problem = weights.check(str(other))
    assert str(other) in problem and "'image-encoder'" in problem and weights.KIND in problem
    node = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryTinyModel"]
    assert node.INPUT_TYPES()["required"]["weights"][0] == weights.files_of_kind(weights.KIND) == [
        "tinyworld-128.safetensors", "tinyworld-charldm.safetensors", "tinyworld.safetensors"]  # the Char-LDM is one too
    assert weights.files_of_kind("image-encoder") == ["tinyworld-image-encoder.safetensors"], "it shares the folder"


def test_the_image_encoder_is_a_core_clip_vision(comfy_host):
    """The loader's CLIP_VISION goes through core CLIPVisionEncode like any CLIP vision model."""
    graph = {
        "1": {"class_type": "LaserStoryTinyModel", "inputs": {"weights": "tinyworld.safetensors"}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 128, "height": 128, "batch_size": 2, "color": 0xCC2211}},
        "3": {"class_type": "CLIPVisionEncode", "inputs": {"clip_vision": ["1", 3], "image": ["2", 0], "crop": "none"}},
        "4": {"class_type": "LaserStoryTestCapture", "inputs": {"value": ["3", 0], "key": "vision"}},
    }
    comfy_host.run(graph)
    output = comfy_host.captured["vision"]
    assert tuple(output["image_embeds"].shape) == (2, 64)
    assert output["last_hidden_state"].shape[:2] == (2, 65)  # CLS + 8x8 patches


def test_core_sag_pag_freeu_and_a_plain_ksampler_at_128(comfy_host):
    """One graph: a plain KSampler and one through FreeU, Self-Attention Guidance and Perturbed-Attention
    Guidance, both on the default built-in model at 128x128 (SAG needs the middle block bigger than 1x1)."""
    graph = tiny_txt2img("tinyworld_core_patches", ("LaserStoryTinyModel", {"weights": "tinyworld-128.safetensors"}),
                         "a large red star in the center", steps=6)
    graph["4"]["inputs"].update(width=128, height=128)
    graph.update({
        "10": {"class_type": "FreeU", "inputs": {"model": ["1", 0], "b1": 1.1, "b2": 1.2, "s1": 0.9, "s2": 0.2}},
        "11": {"class_type": "SelfAttentionGuidance", "inputs": {"model": ["10", 0], "scale": 0.5, "blur_sigma": 2.0}},
        "12": {"class_type": "PerturbedAttentionGuidance", "inputs": {"model": ["11", 0], "scale": 3.0}},
        "13": {"class_type": "KSampler", "inputs": {**graph["5"]["inputs"], "model": ["12", 0]}},
        "14": {"class_type": "VAEDecode", "inputs": {"samples": ["13", 0], "vae": ["1", 2]}},
        "15": {"class_type": "SaveImage", "inputs": {"images": ["14", 0], "filename_prefix": "tinyworld_core_patches"}},
    })  # fmt: skip
    outputs = comfy_host.run(graph)
    assert len(outputs["7"]["images"]) == 1 and len(outputs["15"]["images"]) == 1


def test_a_model_of_the_other_size_names_the_file_what_it_holds_and_what_was_expected(comfy_host):
    from laser_story.tinyworld import weights

    grown = weights.DEFAULT_WEIGHTS
    for path, expect, holds in ((weights.BASE_FILE, 128, "64x64"), (grown, 64, "128x128")):
        with pytest.raises(weights.TinyWeightsError) as e:
            weights.load(path, expect_size=expect)
        message = str(e.value)
        assert path in message and f"holds the {holds} tiny model" in message
        assert f"{expect}x{expect} is expected" in message and weights.SHIPPED[expect] in message
    assert weights.image_size(weights.read(grown)[2]) == 128 and weights.image_size(weights.read(weights.BASE_FILE)[2]) == 64
