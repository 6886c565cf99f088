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


def run(*args, cwd, env_extra=None):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "minclip_unlearn", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_forget_writes_checkpoint_and_record_and_prints_a_summary(checkpoint, tmp_path, vitb32):
    out = tmp_path / "edited.pt"
    r = run("forget", "--model", "ViT-B-32", "--pretrained", str(checkpoint), "--dataset", "pacs",
            "--classes", "dog", "--domains", "sketch", "--out", str(out), "--prototypes", "1", "--steps", "2",
            cwd=tmp_path, env_extra={"MINCLIP_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    assert "forgot 1 cell(s) of pacs: dog/sketch" in r.stdout and "rank removed=" in r.stdout
    record = json.loads(out.with_suffix(".json").read_text())[0]
    assert record["forgotten"] == [["dog", "sketch"]] and record["n_prototypes"] == 1
    edited, _, _ = load_clip("ViT-B-32", pretrained=out)
    original = vitb32[0]
    assert not torch.equal(edited.visual.proj, original.visual.proj)
    assert all(torch.equal(v, original.state_dict()[k]) for k, v in edited.state_dict().items() if k != "visual.proj")
    info = run("info", str(out), cwd=tmp_path)
    assert info.returncode == 0 and '"dog"' in info.stdout


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
