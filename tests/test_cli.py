"""The command line end to end on a random-init ViT-B-32 given as a local checkpoint path."""
import json
import os
import subprocess
import sys

import open_clip
import pytest
import torch

from minclip_unlearn.models import load_clip


@pytest.fixture(scope="module")
def checkpoint(vitb32, tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "vitb32-random.pt"
    torch.save(vitb32[0].state_dict(), path)
    return path


@pytest.fixture(scope="module")
def features(vitb32, checkpoint, tmp_path_factory):
    """A PACS feature cache of the checkpoint (fake PACS, one image per cell): the features root."""
    from data_scripts import extract_features as X
    from data_scripts.fake_data import make_fake_pacs
    from minclip_unlearn.datasets import cache_dir

    data, root = tmp_path_factory.mktemp("pacs"), tmp_path_factory.mktemp("features")
    make_fake_pacs(data, per_cell=1, size=32)
    image_root, entries = X.dataset_entries("pacs", data)
    model, preprocess, _ = vitb32
    X.extract(model, preprocess, image_root, entries, cache_dir(root, "pacs", "ViT-B-32", checkpoint),
              {"dataset": "pacs", "model": "ViT-B-32", "pretrained": str(checkpoint)}, batch_size=14, progress=False)
    return root


def run(*args, cwd, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "minclip_unlearn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_forget_writes_checkpoint_and_record_and_prints_a_summary(checkpoint, features, tmp_path, vitb32):
    out = tmp_path / "edited.pt"
    env = {"MINCLIP_CACHE": str(tmp_path / "cache"), "MINCLIP_FEATURES": str(features)}
    r = run("forget", "--model", "ViT-B-32", "--pretrained", str(checkpoint), "--dataset", "pacs",
            "--classes", "dog", "--domains", "sketch", "--out", str(out), "--prototypes", "1", "--steps", "2",
            "--prototype-cells", "forget", cwd=tmp_path, env_extra=env)
    assert r.returncode == 0, r.stderr
    assert "forgot 1 cell(s) of pacs: dog/sketch" in r.stdout and "rank removed=" in r.stdout
    # cached real features are at hand: before/after accuracy, off-target split included
    assert "zero-shot accuracy on PACS" in r.stdout and "same class, other domains" in r.stdout
    record = json.loads(out.with_suffix(".json").read_text())[0]
    assert record["forgotten"] == [["dog", "sketch"]] and record["n_prototypes"] == 1
    assert record["prototype_cells"] == "forget"
    edited, _, _ = load_clip("ViT-B-32", pretrained=out)
    original = vitb32[0]
    assert not torch.equal(edited.visual.proj, original.visual.proj)
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in edited.state_dict().items() if k != "visual.proj")
    info = run("info", str(out), cwd=tmp_path)
    assert info.returncode == 0 and "forgot 1 of 28 cells: dog/sketch" in info.stdout
    assert json.loads(run("info", str(out), "--json", cwd=tmp_path).stdout)[0]["forgotten"] == [["dog", "sketch"]]
    ev = run("evaluate", str(out), cwd=tmp_path, env_extra=env)
    assert ev.returncode == 0, ev.stderr
    assert "before" in ev.stdout and "accuracy per cell after the edit" in ev.stdout and "dog" in ev.stdout


def test_a_feature_cache_of_other_weights_is_not_used(checkpoint, features, tmp_path):
    other = tmp_path / checkpoint.name  # same file name, other content
    state = torch.load(checkpoint, weights_only=True)
    state["visual.proj"] = state["visual.proj"] + 1
    torch.save(state, other)
    r = run("forget", "--model", "ViT-B-32", "--pretrained", str(other), "--dataset", "pacs", "--classes", "dog",
            "--out", str(tmp_path / "e.pt"), "--mode", "text", cwd=tmp_path,
            env_extra={"MINCLIP_CACHE": str(tmp_path / "cache"), "MINCLIP_FEATURES": str(features)})
    assert r.returncode == 0, r.stderr
    assert "no cached pacs features for ViT-B-32" in r.stdout and "zero-shot accuracy" not in r.stdout


def test_bad_class_exits_2_with_the_valid_names_and_writes_nothing(checkpoint, tmp_path):
    out = tmp_path / "edited.pt"
    r = run("forget", "--model", "ViT-B-32", "--pretrained", str(checkpoint), "--dataset", "pacs",
            "--classes", "cat", "--out", str(out), "--mode", "text", cwd=tmp_path)
    assert r.returncode == 2
    assert "unknown pacs class(s) ['cat']; valid: dog, elephant" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_existing_output_is_not_overwritten(checkpoint, tmp_path):
    out = tmp_path / "edited.pt"
    out.write_bytes(b"keep me")
    r = run("forget", "--model", "ViT-B-32", "--pretrained", str(checkpoint), "--dataset", "pacs",
            "--domains", "sketch", "--out", str(out), "--mode", "text", cwd=tmp_path)
    assert r.returncode == 2 and "exists" in r.stderr and out.read_bytes() == b"keep me"
