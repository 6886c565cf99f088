"""ToyWorld: a seeded world whose four domains look different, an atomic model cache, and a model good enough to unlearn."""
import os

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from minclip_unlearn import toyworld
from minclip_unlearn.evaluate import embed
from minclip_unlearn.paradigms import TOYWORLD_CLASSES, TOYWORLD_DOMAINS
from minclip_unlearn.prompts import text_directions

C, M, S = len(TOYWORLD_CLASSES), len(TOYWORLD_DOMAINS), toyworld.IMAGE_SIZE


def _domain_images(domain: str, n: int = 6, split: str = "test") -> torch.Tensor:
    """(C * n, 3, S, S) images of every class in one domain."""
    images, _, domains = toyworld.toy_images(split, n, seed=0)
    return images[domains == TOYWORLD_DOMAINS.index(domain)]


# ---------------------------------------------------------------- the world
def test_images_have_the_promised_shapes_and_labels():
    images, labels, domains = toyworld.toy_images("test", n_per_cell=2, seed=0)
    assert images.shape == (C * M * 2, 3, S, S) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert torch.equal(torch.bincount(labels * M + domains), torch.full((C * M,), 2))
    image, c, m = toyworld.ToyWorld("train", n_per_cell=3, seed=0)[3 * (2 * M + 1)]
    assert image.shape == (3, S, S) and (TOYWORLD_CLASSES[c], TOYWORLD_DOMAINS[m]) == ("triangle", "art_painting")


def test_rendering_is_seeded_and_reproducible():
    a, b = toyworld.toy_images("test", 2, seed=0)[0], toyworld.toy_images("test", 2, seed=0)[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, toyworld.toy_images("test", 2, seed=1)[0])


def test_train_and_test_splits_share_no_image():
    train, test = toyworld.toy_images("train", 3, seed=0)[0], toyworld.toy_images("test", 3, seed=0)[0]
    assert torch.cdist(train.flatten(1), test.flatten(1)).min() > 1.0
    with pytest.raises(ValueError, match="split"):
        toyworld.ToyWorld("validation")


def test_sketches_are_grey_strokes_on_white_with_no_fill():
    x = _domain_images("sketch")
    assert (x.max(1).values - x.min(1).values).max() < 1e-6  # grey: no colour at all
    assert (x > 0.9).all(1).float().mean() > 0.75  # mostly white paper
    assert (x < 0.5).all(1).float().mean() < 0.2  # thin lines
    images, labels, domains = toyworld.toy_images("test", 6, seed=0)
    circles = images[(labels == TOYWORLD_CLASSES.index("circle")) & (domains == TOYWORLD_DOMAINS.index("sketch"))]
    middle = circles[..., S // 2 - 2 : S // 2 + 2, S // 2 - 2 : S // 2 + 2]
    assert (middle.mean((1, 2, 3)) > 0.9).all()  # no fill: a sketched circle is paper-white inside


def test_cartoons_have_a_dark_outline_a_vivid_fill_and_a_flat_pale_background():
    x = _domain_images("cartoon")
    assert ((x.max(1).values < 0.15).sum((1, 2)) >= 20).all()  # a near-black outline in every image
    assert (((x.max(1).values - x.min(1).values) > 0.6).sum((1, 2)) >= 8).all()  # a vivid fill
    def corners(x):  # (N, 3, 4): background only
        return x[..., [0, 0, -1, -1], [0, -1, 0, -1]]
    assert (corners(x).std(-1) < 0.01).all() and (corners(x) > 0.75).all()
    assert corners(_domain_images("photo")).std(-1).mean() > 0.03  # photo backgrounds are textured


def test_photos_are_shaded_and_paintings_are_stroked():
    photo, art = _domain_images("photo"), _domain_images("art_painting")
    # photos: a textured background and shading give smooth but wide tonal range; no white paper
    assert (photo > 0.9).all(1).float().mean() < 0.05 and photo.std((2, 3)).mean() > 0.08
    # paintings: brush strokes make neighbouring pixels differ more than in a flat cartoon
    def roughness(x):
        return (x[..., 1:, :] - x[..., :-1, :]).abs().median()
    assert roughness(art) > 2 * roughness(_domain_images("cartoon"))


def test_sample_grid_figure_labels_every_class_and_domain():
    import matplotlib.pyplot as plt

    fig = toyworld.sample_grid_figure(seed=0)
    assert len(fig.axes) == C * M
    labels = {ax.get_ylabel() for ax in fig.axes} | {ax.get_title() for ax in fig.axes}
    assert set(TOYWORLD_CLASSES) | set(TOYWORLD_DOMAINS) <= labels
    plt.close(fig)


def test_captions_include_the_packages_prompts_and_fit_the_context():
    cells, classes = toyworld.caption_sets()
    assert len(cells) == C * M and len(classes) == C
    star_sketch = cells[TOYWORLD_CLASSES.index("star") * M + TOYWORLD_DOMAINS.index("sketch")]
    assert {"a sketch of a star.", "a star sketch.", "a black and white sketch of a star."} <= set(star_sketch)
    assert {"a star.", "an image of a star."} <= set(classes[TOYWORLD_CLASSES.index("star")])
    tokens = open_clip.get_tokenizer(toyworld.TOY_CLIP_NAME)([t for ts in cells + classes for t in ts])
    assert (tokens[:, -1] == 0).all()  # nothing truncated: every caption ends before the context does


# ---------------------------------------------------------------- the cache
@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    """MINCLIP_CACHE -> tmp_path; returns a random-init toy model (not yet saved) and its state."""
    monkeypatch.setenv("MINCLIP_CACHE", str(tmp_path))
    torch.manual_seed(1)
    return open_clip.create_model(toyworld.TOY_CLIP_NAME)


def test_a_cached_checkpoint_is_loaded_not_retrained(tiny_checkpoint, monkeypatch):
    toyworld.save_atomic(tiny_checkpoint, toyworld.cache_path())
    monkeypatch.setattr(toyworld, "train_toy_clip", lambda **kw: pytest.fail("retrained despite a cached checkpoint"))
    model, preprocess, tokenizer = toyworld.load_toy_clip()
    assert torch.equal(model.visual.proj, tiny_checkpoint.visual.proj) and not model.training
    assert tokenizer(["a star."]).shape == (1, 16)


def test_a_leftover_partial_file_is_ignored_and_a_missing_cache_is_trained(tiny_checkpoint, monkeypatch, capsys):
    path = toyworld.cache_path()
    (path.parent / (path.name + ".abc123.partial")).write_bytes(b"half a checkpoint")
    monkeypatch.setattr(toyworld, "train_toy_clip", lambda **kw: tiny_checkpoint)
    model, _, _ = toyworld.load_toy_clip()
    assert "training" in capsys.readouterr().out
    assert path.is_file() and torch.equal(model.visual.proj, tiny_checkpoint.visual.proj)
    assert sorted(p.name for p in path.parent.iterdir() if p.name.endswith(".partial")) == [path.name + ".abc123.partial"]


def test_an_explicit_checkpoint_path_loads_with_load_clip_and_with_open_clip(tiny_checkpoint, tmp_path):
    from minclip_unlearn.models import load_clip

    path = tmp_path / "mine.pt"
    toyworld.save_atomic(tiny_checkpoint, path)
    model, preprocess, _ = load_clip("toy", pretrained=path)
    assert torch.equal(model.visual.proj, tiny_checkpoint.visual.proj)
    direct, _, _ = open_clip.create_model_and_transforms(toyworld.TOY_CLIP_NAME, pretrained=str(path))
    assert torch.equal(direct.visual.proj, tiny_checkpoint.visual.proj)
    image = toyworld.toy_images("test", 1, seed=0)[0][0]
    pil = Image.fromarray((image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in (model.visual.image_mean, model.visual.image_std))
    assert torch.allclose(preprocess(pil), (image - mean) / std, atol=0.02)
    with pytest.raises(FileNotFoundError):
        toyworld.load_toy_clip(tmp_path / "missing.pt")


# ---------------------------------------------------------------- the trained model (shared, cached)
@pytest.fixture(scope="module")
def test_features(toy_clip):
    """The held-out ToyWorld test split through the toy CLIP."""
    return toyworld.toy_features(toy_clip[0], "test", n_per_cell=50, seed=0)


def test_features_are_pre_projection_and_leave_the_model_intact(toy_clip, test_features):
    model = toy_clip[0]
    D, d = model.visual.proj.shape
    assert test_features.features.shape == (C * M * 50, D) and d >= 128
    assert isinstance(model.visual.proj, torch.nn.Parameter)
    assert "ToyWorld test" in test_features.meta["name"] and "toy CLIP" in test_features.meta["name"]
    assert test_features.grid.shape == (C, M)


@pytest.mark.xfail(strict=False, reason="issue 3 blocked: recipe v2 reaches 86-99% per domain, not yet 95% in every one")
def test_class_prompts_classify_held_out_images_in_every_domain(toy_clip, test_features):
    accuracy = toyworld.domain_accuracy(toy_clip[0], toy_clip[2], test_features)
    print("held-out zero-shot accuracy per domain:", {k: round(v, 4) for k, v in accuracy.items()})
    assert min(accuracy.values()) >= 0.95, accuracy


def test_domain_prompts_are_domain_specific(toy_clip, test_features):
    """t[c, m] ('a sketch of a star') is closer to (c, m) images than to the same class in any other domain."""
    model, _, tokenizer = toy_clip
    t = text_directions(model, tokenizer, test_features.grid)  # (C, M, d)
    h = embed(test_features.features, model)
    cos = torch.zeros(C, M, M)  # cos[c, m, m2]: t[c, m] against images of (c, m2)
    for c in range(C):
        for m2 in range(M):
            cos[c, :, m2] = (h[(test_features.labels == c) & (test_features.domains == m2)] @ t[c].T).mean(0)
    own = cos.diagonal(dim1=1, dim2=2)  # (C, M)
    others = cos.masked_fill(torch.eye(M, dtype=torch.bool), -1).amax(2)
    assert (own > others).all(), (own - others)
