"""Accuracy matrix, scores and the recovery probe, checked against plain loops."""
import numpy as np
import pytest
import torch

from minclip_unlearn import evaluate, paradigms
from minclip_unlearn.datasets import FeatureSet


@pytest.fixture(scope="module")
def data(tiny_clip):
    g = torch.Generator().manual_seed(0)
    grid = paradigms.ConceptGrid("tiny", ("a", "b", "c"), ("x", "y"), {})
    labels = torch.randint(0, 3, (300,), generator=g)
    domains = torch.randint(0, 2, (300,), generator=g)
    class_emb = torch.nn.functional.normalize(torch.randn(3, 32, generator=g), dim=-1)
    # features that the model's projection maps near their class embedding, plus noise
    W = tiny_clip.visual.proj.detach()
    feats = class_emb[labels] @ torch.linalg.pinv(W) + 0.02 * torch.randn(300, W.shape[0], generator=g)
    return FeatureSet(feats, labels, domains, grid), class_emb


def test_accuracy_matrix_matches_a_loop(tiny_clip, data):
    fs, class_emb = data
    acc = evaluate.accuracy_matrix(tiny_clip, fs, class_emb)
    pred = []
    for f in fs.features:
        h = f @ tiny_clip.visual.proj.detach()
        pred.append(int(np.argmax([float(h @ c / h.norm()) for c in class_emb])))
    pred = torch.tensor(pred)
    for c in range(3):
        for m in range(2):
            sel = (fs.labels == c) & (fs.domains == m)
            assert acc[c, m] == pytest.approx(float((pred[sel] == c).float().mean()))
    assert acc.mean() > 0.5  # the construction is decodable


def test_scores_split_forget_retain_and_off_target(tiny_clip, data):
    fs, class_emb = data
    mask = paradigms.forget_classes_in_domains(fs.grid, "a", "x")
    s = evaluate.scores(tiny_clip, fs, class_emb, mask)
    correct = evaluate.predict(tiny_clip, fs, class_emb) == fs.labels
    assert s["forget"] == pytest.approx(float(correct[(fs.labels == 0) & (fs.domains == 0)].float().mean()))
    assert s["same_class_other_domains"] == pytest.approx(float(correct[(fs.labels == 0) & (fs.domains == 1)].float().mean()))
    assert s["other_classes"] == pytest.approx(float(correct[fs.labels != 0].float().mean()))


def test_recovery_probe_decodes_what_zero_shot_reads(tiny_clip, data):
    fs, _ = data
    mask = paradigms.forget_classes(fs.grid, "b")
    probe = evaluate.recovery_probe(tiny_clip, fs.subset(torch.arange(200)), fs.subset(torch.arange(200, 300)), mask)
    assert set(probe) == {"probe_forget", "probe_retain"}
    assert probe["probe_forget"] > 0.9 and probe["probe_retain"] > 0.9


def test_image_features_skip_the_projection_and_restore_it(tiny_clip):
    x = torch.randn(3, 3, 32, 32)
    proj = tiny_clip.visual.proj
    f = evaluate.image_features(tiny_clip, x, batch_size=2)
    assert tiny_clip.visual.proj is proj and f.shape == (3, 64)
    with torch.no_grad():
        h = tiny_clip.encode_image(x, normalize=True)
    assert torch.allclose(evaluate.embed(f, tiny_clip), h, atol=1e-5)


def test_dimension_mismatch_is_reported():
    with pytest.raises(ValueError, match="32-d but class embeddings are 16-d"):
        evaluate.zero_shot_logits(torch.randn(2, 32), torch.randn(3, 16))
