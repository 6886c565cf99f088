"""Pixel-space synthesis of visual prototypes on a small random-init ViT."""
import pytest
import torch

from minclip_unlearn import paradigms, prototypes

CFG = prototypes.SynthesisConfig(n=2, steps=40, lr=0.1, low_res=8, seed=3)


@pytest.fixture(scope="module")
def targets(tiny_clip):
    return torch.nn.functional.normalize(torch.randn(3, 32, generator=torch.Generator().manual_seed(0)), dim=-1)


def test_synthesis_raises_the_cosine_to_its_target(tiny_clip, targets):
    protos, history, images = prototypes.synthesize(tiny_clip, targets, CFG, progress=False)
    assert protos.shape == (3, 2, 32) and images.shape == (6, 3, 32, 32)
    assert images.min() >= 0 and images.max() <= 1
    assert history[-5:].mean() > history[:5].mean() + 0.1
    final = (protos * targets[:, None, :]).sum(-1)  # cosine of each un-augmented prototype to its target
    with torch.no_grad():
        start = torch.nn.functional.normalize(tiny_clip.encode_image(torch.zeros(1, 3, 32, 32)), dim=-1)
    assert final.mean() > (start @ targets.T).mean() + 0.1
    assert all(p.grad is None and p.requires_grad for p in tiny_clip.parameters())


def test_synthesis_is_reproducible_with_a_seed(tiny_clip, targets):
    a = prototypes.synthesize(tiny_clip, targets, CFG, progress=False)[0]
    b = prototypes.synthesize(tiny_clip, targets, CFG, progress=False)[0]
    c = prototypes.synthesize(tiny_clip, targets, prototypes.SynthesisConfig(n=2, steps=40, seed=4), progress=False)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_grid_prototypes_are_cached_on_disk(tiny_clip, tmp_path, monkeypatch):
    grid = paradigms.ConceptGrid("tiny", ("a", "b"), ("x", "y"), {})
    dirs = torch.nn.functional.normalize(torch.randn(2, 2, 32, generator=torch.Generator().manual_seed(5)), dim=-1)
    cfg = prototypes.SynthesisConfig(n=1, steps=5, batch=3)
    first = prototypes.grid_prototypes(tiny_clip, dirs, grid, cfg, cache_dir=tmp_path, progress=False)
    assert first.shape == (2, 2, 1, 32) and len(list(tmp_path.glob("*.pt"))) == 1
    monkeypatch.setattr(prototypes, "synthesize", lambda *a, **k: pytest.fail("cache was not used"))
    assert torch.equal(prototypes.grid_prototypes(tiny_clip, dirs, grid, cfg, cache_dir=tmp_path, progress=False), first)
    other = prototypes.cache_key(tiny_clip, dirs.reshape(4, 32), ["a/x"], prototypes.SynthesisConfig(n=1, steps=6))
    assert not (tmp_path / f"{other}.pt").exists()


def test_total_variation_is_zero_on_flat_images():
    assert torch.equal(prototypes.total_variation(torch.ones(2, 3, 8, 8)), torch.zeros(2))
    assert (prototypes.total_variation(torch.rand(2, 3, 8, 8)) > 0).all()
