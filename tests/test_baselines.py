"""Baselines: prompt removal never predicts a dropped class; gradient ascent leaves the original model alone and
lowers the forget images' logit margin while keeping the retain images'."""
import pytest
import torch

from minclip_unlearn import baselines, paradigms
from minclip_unlearn.datasets import FeatureSet
from minclip_unlearn.edit import restore
from minclip_unlearn.evaluate import image_features, predict, scores


@pytest.fixture(scope="module")
def setup(tiny_clip):
    """Tiny CLIP, a 3-class classifier aligned with its image embeddings, and class-separable images."""
    g = torch.Generator().manual_seed(0)
    images = torch.rand(6, 3, 32, 32, generator=g).repeat_interleave(4, 0)
    images = (images + 0.1 * torch.rand(images.shape, generator=g)).clamp(0, 1)  # 6 groups of 4 near-copies
    labels = torch.tensor([0, 1, 2, 0, 1, 2]).repeat_interleave(4)
    feats = image_features(tiny_clip, baselines.normalise_images(tiny_clip, images))
    emb = torch.nn.functional.normalize(feats @ tiny_clip.visual.proj.detach(), dim=-1)
    classifier = torch.nn.functional.normalize(torch.stack([emb[labels == c].mean(0) for c in range(3)]), dim=-1)
    return images, labels, feats, classifier


def test_prompt_removal_never_predicts_a_removed_class(tiny_clip, setup):
    _, labels, feats, classifier = setup
    grid = paradigms.ConceptGrid("tiny", ("a", "b", "c"), ("x", "y"), {})
    data = FeatureSet(feats, labels, torch.arange(len(labels)) % 2, grid)
    mask = paradigms.forget_classes_in_domains(grid, "b", "x")
    assert baselines.removed_classes(mask) == [1]  # the whole class goes, whatever the domain
    pred = baselines.prompt_removal_predict(tiny_clip, data, classifier, [1])
    assert not (pred == 1).any()
    kept = labels != 1  # images of other classes keep their full-label-set prediction unless it was class 1
    full = predict(tiny_clip, data, classifier)
    assert torch.equal(pred[kept & (full != 1)], full[kept & (full != 1)])
    s = baselines.prompt_removal_scores(tiny_clip, data, classifier, mask)
    assert s["forget"] == 0.0 and s["same_class_other_domains"] == 0.0
    assert s["other_classes"] >= scores(tiny_clip, data, classifier, mask)["other_classes"]
    with pytest.raises(ValueError, match="all 3 classes"):
        baselines.prompt_removal_logits(torch.randn(2, 32), classifier, [0, 1, 2])


def test_gradient_ascent_forgets_and_leaves_the_original_alone(tiny_clip, setup):
    images, labels, feats, classifier = setup
    forget = labels == 1
    W_before = tiny_clip.visual.proj.detach().clone()
    edited = baselines.gradient_ascent_unlearn(
        tiny_clip, images[forget], images[~forget], labels[forget], labels[~forget], classifier, steps=20, lr=3e-3,
        retain_weight=5.0,
    )
    assert torch.equal(tiny_clip.visual.proj, W_before) and not hasattr(tiny_clip, "minclip_original_proj")
    assert edited is not tiny_clip and not torch.equal(edited.visual.proj, W_before)
    before = baselines.logit_margin(tiny_clip, feats, labels, classifier)
    after = baselines.logit_margin(edited, feats, labels, classifier)
    assert after[forget].mean() < before[forget].mean() and (after[forget] < 0).all()  # forgotten: misclassified
    assert (after[~forget] > 0).float().mean() >= (before[~forget] > 0).float().mean()  # retain still right
    assert edited.minclip_records[-1]["method"] == "gradient_ascent"
    ce = edited.minclip_records[-1]["ce_history"]
    assert ce[-1][0] > ce[0][0]  # the forget loss went up
    assert torch.equal(restore(edited).visual.proj, W_before)  # reversible, like the closed-form edit


def test_prototype_images_match_grid_prototypes_and_are_cached(tiny_clip, tmp_path):
    from minclip_unlearn.prototypes import SynthesisConfig, grid_prototypes

    grid = paradigms.ConceptGrid("tiny", ("a", "b"), ("x", "y"), {})
    text_dirs = torch.nn.functional.normalize(torch.randn(2, 2, 32, generator=torch.Generator().manual_seed(1)), dim=-1)
    cfg = SynthesisConfig(n=2, steps=3, batch=3)  # two chunks, as grid_prototypes would split them
    out = baselines.prototype_images(tiny_clip, text_dirs, grid, cfg, cache_dir=tmp_path)
    assert out["prototypes"].shape == (2, 2, 2, 32) and out["images"].shape == (2, 2, 2, 3, 32, 32)
    assert 0 <= float(out["images"].min()) and float(out["images"].max()) <= 1 and out["seconds"] > 0
    reference = grid_prototypes(tiny_clip, text_dirs, grid, cfg, cache_dir=tmp_path / "ref", progress=False)
    assert torch.allclose(out["prototypes"], reference, atol=1e-5)
    assert torch.equal(grid_prototypes(tiny_clip, text_dirs, grid, cfg, cache_dir=tmp_path), out["prototypes"])  # shared
    again = baselines.prototype_images(tiny_clip, text_dirs, grid, cfg, cache_dir=tmp_path)
    assert torch.equal(again["images"], out["images"]) and again["seconds"] == out["seconds"]  # read from the cache
