"""The Char-LDM trainer's plumbing (smoke preset): the fine-tuned model and its fuser load where the story nodes
use them, the mask loss is on the autograd graph, and an interrupted run resumes bit for bit."""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def smoke_run(comfy_host, tmp_path_factory):
    from laser_story.training import char_ldm

    work = tmp_path_factory.mktemp("char-ldm-smoke")
    out = work / "tinyworld-charldm-smoke.safetensors"
    assert char_ldm.main(["--preset", "smoke", "--threads", "1", "--work", str(work), "--out", str(out)]) == 0
    return out


def test_the_smoke_run_writes_a_tiny_model_and_a_fuser_that_the_story_nodes_load(smoke_run):
    from laser_story.story import fuser as fuser_file
    from laser_story.tinyworld import encoder, weights
    from laser_story.training import char_ldm

    _model, clip, _vae, meta = weights.load(str(smoke_run))
    assert meta["command"].startswith("python -m laser_story.training.char_ldm --preset smoke")
    fuser, fuser_meta = fuser_file.load(char_ldm.fuser_path(str(smoke_run)))
    clip_vision, _, _ = encoder.load()
    dim = fuser_file.image_features(clip_vision, torch.rand(1, 128, 128, 3)).shape[-1]
    assert (fuser.text_dim, fuser.image_dim) == (64, dim) and fuser_meta["model"] == smoke_run.name
    tokens = clip.encode_from_tokens(clip.tokenize("Pip, a small red star, on the left"))[0]
    assert fuser.fuse(tokens, {1: torch.rand(dim)}).shape == tokens.shape


def test_the_mask_loss_pulls_a_token_into_its_mask():
    from laser_story.training.char_ldm import AttentionProbe, reg_loss

    probe = AttentionProbe()
    logits = torch.zeros(1, 16, 4, requires_grad=True)
    probe.maps.append((torch.softmax(logits, -1), (4, 4)))
    mask = torch.zeros(32, 32)
    mask[:, :16] = 1
    loss = reg_loss(probe, [[mask]], [[[2]]])  # frame 0, its one character, whose token is 2
    loss.backward()
    grad = logits.grad[0, :, 2].reshape(4, 4)
    assert float(loss) == pytest.approx(0.0, abs=1e-6), "uniform attention: inside = outside"
    assert bool((grad[:, :2] < 0).all() and (grad[:, 2:] > 0).all()), "descending raises it inside, lowers it outside"


def test_an_interrupted_run_resumes_bit_for_bit(smoke_run, tmp_path):
    from laser_story.tinyworld import weights
    from laser_story.training import char_ldm

    work = tmp_path / "work"
    work.mkdir()
    (work / "data.pt").write_bytes((smoke_run.parent / "data.pt").read_bytes())
    resumed = tmp_path / "resumed.safetensors"
    args = ["--preset", "smoke", "--threads", "1", "--work", str(work), "--out", str(resumed)]
    assert char_ldm.main([*args, "--set", "halt_at=2"]) == 0 and not resumed.exists()
    assert char_ldm.main(args) == 0
    a, b = weights.read(str(smoke_run))[1]["unet"], weights.read(str(resumed))[1]["unet"]
    assert all(torch.equal(a[k], b[k]) for k in a)
