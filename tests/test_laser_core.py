"""LASER capture/injection and the morph orchestration on a tiny SD1.x model inside ComfyUI."""

from __future__ import annotations

import collections

import pytest
import torch

from laser_story.attention.laser import ControlSettings, LaserState, SegmentControl, apply_injector
from laser_story.attention.morph import interpolate, run_morph, run_segment, sample_frames
from laser_story.attention.sampling import Embedding, invert, schedule
from laser_story.attention.state import FeatureBank, attach

pytestmark = pytest.mark.host

STEPS = 10
LATENT = (1, 4, 8, 8)


@pytest.fixture(scope="module")
def encode(tiny_sd):
    _, clip, _ = tiny_sd

    def _encode(text: str) -> Embedding:
        tokens, pooled = clip.encode_from_tokens(clip.tokenize(text), return_pooled=True)
        return Embedding(tokens, pooled)

    return _encode


@pytest.fixture(scope="module")
def keyframe():
    return torch.randn(LATENT, generator=torch.Generator().manual_seed(3))


def test_alpha0_frame_equals_reconstruction_from_inverted_noise(tiny_sd, encode, keyframe):
    model = apply_injector(tiny_sd[0], ControlSettings())
    sigmas = schedule(model, "ddim_uniform", STEPS)
    source, target = encode("a red star"), encode("a blue circle")
    for code in ("0", "1", "2"):
        control = SegmentControl(code, ControlSettings(), STEPS)
        bank = FeatureBank(torch.float32)
        capture = model.clone()
        attach(capture, LaserState("capture", bank, sigmas, control=control))
        noise = invert(capture, keyframe, source, sigmas)
        inject = model.clone()
        attach(inject, LaserState("inject", bank, sigmas, control=control))
        alphas = control.alphas(5)
        frames = sample_frames(inject, noise, interpolate(source, target, alphas),
                               Embedding(source.tokens.expand(5, -1, -1), source.pooled.expand(5, -1)), sigmas, 5.0)
        reconstruction = sample_frames(inject, noise, source, source, sigmas, 5.0)
        assert alphas[0] == 0.0
        torch.testing.assert_close(frames[:1], reconstruction, rtol=1e-4, atol=1e-4)
        assert (frames[-1:] - reconstruction).abs().max() > 1e-4, f"control {code}: the last frame did not move"


def test_last_frame_of_a_segment_is_exactly_the_next_keyframe(tiny_sd, encode, keyframe):
    prompts = ["a red star", "a red star jumping", "a blue circle"]
    result = run_morph(tiny_sd[0], [encode(p) for p in prompts], encode(""), ["1", "0"], keyframe, 4, STEPS, 5.0)
    assert torch.equal(result.keyframes[0], keyframe)
    assert torch.equal(result.keyframes[1], result.segments[0].latents[-1:])
    # frame 0 of segment 1 re-creates the hand-off keyframe and is not shown twice
    assert result.latents.shape[0] == 4 + 3
    assert torch.equal(result.latents[3], result.segments[0].latents[-1])
    assert len(result.frame_info) == 7


def test_fading_negative_starts_at_the_source_and_ends_at_the_given_negative(tiny_sd, encode, keyframe):
    """Frame 0 with the fading negative is LASER's own reconstruction; the last frame is the one sampled with
    the given negative throughout; the frames between differ from both choices."""
    model = apply_injector(tiny_sd[0], ControlSettings())
    sigmas = schedule(model, "ddim_uniform", STEPS)
    source, target, empty = encode("a red star"), encode("a blue star"), encode("")

    def segment(**negative):
        return run_segment(model, keyframe, source, target, "0", ControlSettings(), sigmas, 4, 5.0,
                           FeatureBank(torch.float32), **negative).latents

    laser, fade, plain = segment(), segment(frame_negative=empty, fade_negative=True), segment(frame_negative=empty)
    torch.testing.assert_close(fade[:1], laser[:1], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fade[-1:], plain[-1:], rtol=1e-4, atol=1e-4)
    assert (fade[1:3] - laser[1:3]).abs().max() > 1e-4 and (fade[1:3] - plain[1:3]).abs().max() > 1e-4


def test_even_spacing_keeps_both_ends_and_steps_no_less_evenly(tiny_sd, encode, keyframe):
    """The evenly spaced frames share the linear run's first and last frame, their weights rise, and the sum of
    squared steps (what the choice minimises, over frames of both passes) is no larger than the linear run's."""
    model = apply_injector(tiny_sd[0], ControlSettings())
    sigmas = schedule(model, "ddim_uniform", STEPS)
    source, target = encode("a red star"), encode("a blue circle")

    def segment(even: bool):
        return run_segment(model, keyframe, source, target, "1", ControlSettings(), sigmas, 5, 5.0,
                           FeatureBank(torch.float32), even_spacing=even)

    linear, even = segment(False), segment(True)
    torch.testing.assert_close(even.latents[[0, -1]], linear.latents[[0, -1]], rtol=1e-4, atol=1e-4)
    assert even.alphas[0] == 0.0 and even.alphas[-1] == 1.0 and even.alphas == sorted(even.alphas)
    assert even.latents.shape == linear.latents.shape

    def squares(latents):
        return float((latents[1:] - latents[:-1]).flatten(1).norm(dim=1).pow(2).sum())

    assert squares(even.latents) <= squares(linear.latents) + 1e-6


def expected_fires(code: str, steps: int, settings: ControlSettings) -> set[tuple]:
    control = SegmentControl(code, settings, steps)
    fires = set()
    for step in range(steps):
        for layer in range(16):
            if control.qk_active(step, layer):
                fires |= {("qk", step, layer), ("capture_attn", step, layer)}
            if control.kv_active(step, layer):
                fires |= {("kv", step, layer), ("capture_attn", step, layer)}
        if control.conv_active(step, settings.conv_output_block):
            fires |= {("conv", step, settings.conv_output_block), ("capture_conv", step, settings.conv_output_block)}
    return fires


@pytest.mark.parametrize("code", ["0", "1", "2"])
def test_each_control_fires_only_at_its_steps_and_layers(tiny_sd, encode, keyframe, code):
    steps, settings = 25, ControlSettings()
    model = apply_injector(tiny_sd[0], settings)
    sigmas = schedule(model, "ddim_uniform", steps)
    result = run_segment(model, keyframe, encode("a red star"), encode("a blue star"), code, settings, sigmas, 3, 5.0,
                         FeatureBank())
    expected = expected_fires(code, steps, settings)
    assert set(result.fired) == expected
    # one UNet call per step in the inversion (cfg 1) and in the frame batch (cond and uncond batched together)
    assert set(result.fired.values()) == {1}
    kinds = {event for event, _, _ in expected}
    assert kinds == {"0": {"qk", "conv", "capture_attn", "capture_conv"}, "1": {"kv", "capture_attn"},
                     "2": {"kv", "conv", "capture_attn", "capture_conv"}}[code]
    # defaults mean what PnP / MasaCtrl use on SD1.5: Q/K on layers 8-15 for the first half, K/V from layer 10 and step 2
    layers = {layer for event, _, layer in expected if event in ("qk", "kv")}
    assert layers == (set(range(8, 16)) if code == "0" else set(range(10, 16)))
    steps_hit = {step for event, step, _ in expected if event in ("qk", "kv")}
    assert steps_hit == (set(range(0, 12)) if code == "0" else set(range(2, 25)))


def test_run_bookkeeping_is_reset_at_each_sampling_run(tiny_sd, encode, keyframe):
    settings = ControlSettings()
    model = apply_injector(tiny_sd[0], settings)
    sigmas = schedule(model, "ddim_uniform", STEPS)
    control, bank, source = SegmentControl("1", settings, STEPS), FeatureBank(torch.float32), encode("a red star")
    capture = model.clone()
    attach(capture, LaserState("capture", bank, sigmas, settings=settings, control=control))
    noise = invert(capture, keyframe, source, sigmas)
    state = LaserState("inject", bank, sigmas, settings=settings, control=control)
    inject = model.clone()
    attach(inject, state)
    sample_frames(inject, noise, source, source, sigmas, 5.0)
    first = collections.Counter(state.fired)
    sample_frames(inject, noise, source, source, sigmas, 5.0)
    assert first and state.fired == first, "the OUTER_SAMPLE wrapper starts every run with fresh counts"


def plain_sample(model, clip_embedding: Embedding) -> torch.Tensor:
    import comfy.sample

    noise = torch.randn(LATENT, generator=torch.Generator().manual_seed(7))
    cond = [[clip_embedding.tokens, {"pooled_output": clip_embedding.pooled}]]
    return comfy.sample.sample(model, noise, 6, 5.0, "euler", "normal", cond, cond, torch.zeros(LATENT), disable_pbar=True)


def test_input_model_is_unchanged_by_a_morph(tiny_sd, encode, keyframe):
    model = tiny_sd[0]
    options_before = repr(model.model_options)
    before = plain_sample(model, encode("a red star"))
    run_morph(model, [encode("a red star"), encode("a blue star")], encode(""), ["2"], keyframe, 3, STEPS, 5.0)
    after = plain_sample(model, encode("a red star"))
    assert torch.equal(before, after)
    assert repr(model.model_options) == options_before


def test_injector_stacks_with_other_attn1_patches_and_attn2_replace(tiny_sd, encode, keyframe):
    from comfy.ldm.modules.attention import optimized_attention

    calls = collections.Counter()

    def other_pack_attn1(n, context, value, extra_options):
        calls["attn1_patch"] += 1
        return n, context, value

    def other_pack_attn2_replace(q, k, v, extra_options):
        calls["attn2_replace"] += 1
        return optimized_attention(q, k, v, extra_options["n_heads"])

    other = tiny_sd[0].clone()
    other.set_model_attn1_patch(other_pack_attn1)
    for block, index in [("input", 1), ("input", 2), ("input", 4), ("input", 5), ("input", 7), ("input", 8), ("middle", 0)] + \
            [("output", i) for i in range(3, 12)]:
        other.set_model_attn2_replace(other_pack_attn2_replace, block, index)
    model = apply_injector(other, ControlSettings())
    sigmas = schedule(model, "ddim_uniform", STEPS)
    result = run_segment(model, keyframe, encode("a red star"), encode("a blue star"), "1", ControlSettings(), sigmas, 3, 5.0,
                         FeatureBank())
    assert any(event == "kv" for event, _, _ in result.fired)
    # 16 self-attention and 16 cross-attention layers, one call each per step, in the inversion and in the frames
    assert calls["attn1_patch"] == 16 * STEPS * 2
    assert calls["attn2_replace"] == 16 * STEPS * 2


def test_interrupt_stops_promptly_and_frees_the_bank(tiny_sd, encode, keyframe):
    import comfy.model_management

    banks: list[FeatureBank] = []

    def make_bank(settings):
        banks.append(FeatureBank())
        return banks[-1]

    seen: list[int] = []

    def progress(done, total, preview):
        seen.append(done)
        if done == STEPS + 3:  # mid frame-sampling of segment 0: the bank is full
            assert len(banks[-1]) > 0
            comfy.model_management.interrupt_current_processing(True)

    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            run_morph(tiny_sd[0], [encode("a red star"), encode("a blue star")], encode(""), ["1"], keyframe, 3, STEPS, 5.0,
                      progress=progress, bank_factory=make_bank)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert max(seen) == STEPS + 3
    assert len(banks) == 1 and len(banks[0]) == 0 and banks[0].nbytes == 0


def test_non_sd_unet_model_is_refused_with_the_supported_families(comfy_host, tiny_sd):
    import comfy.latent_formats
    import comfy.model_patcher
    import comfy.supported_models

    from laser_story.tinyworld.model import TinySpec

    config = comfy.supported_models.SD15(TinySpec().unet_config())
    config.latent_format = comfy.latent_formats.SDXL
    config.set_inference_dtype(torch.float32, None)
    sdxl_like = comfy.model_patcher.ModelPatcher(config.get_model({}, ""), torch.device("cpu"), torch.device("cpu"))
    injector = comfy_host.nodes.NODE_CLASS_MAPPINGS["LaserStoryAttentionInjector"]()
    with pytest.raises(ValueError, match="SD1.x and SD2.x"):
        injector.patch(sdxl_like, **{k: v[1]["default"] for k, v in injector.INPUT_TYPES()["required"].items() if k != "model"})
