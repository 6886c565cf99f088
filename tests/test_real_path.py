"""The book's real-data path, end to end: a feature cache made by data_scripts/extract_features.py is found by
open_lab (no ToyWorld banner), and the PACS and DomainNet chapters run on it.

Real data and pretrained weights cannot be fetched here, so the caches are made from fake PACS and DomainNet
trees (random images in the official layouts) encoded by the trained ToyWorld CLIP, named through $MINCLIP_MODEL and
$MINCLIP_PRETRAINED. The figures are meaningless (the toy CLIP does not know dogs); what is tested is that
every step of the real path runs and says which model and data it used.
"""
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from data_scripts import extract_features as X
from data_scripts.fake_data import make_fake_domainnet, make_fake_pacs
from minclip_unlearn import forget_classes_in_domains
from minclip_unlearn.lab import RHOS, open_lab
from minclip_unlearn.toyworld import cache_path

ROOT = Path(__file__).resolve().parents[1]
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")


@pytest.fixture(scope="module")
def features(tmp_path_factory, toy_clip):
    """PACS and DomainNet feature caches of the trained toy CLIP over fake trees: the features root."""
    root, out = tmp_path_factory.mktemp("data"), tmp_path_factory.mktemp("features")
    make_fake_pacs(root, per_cell=8, size=48)
    make_fake_domainnet(root, domains=DOMAINNET_DOMAINS, n_classes=6, per_class=4, size=48)
    for dataset in ("pacs", "domainnet"):
        assert X.main(["--model", "toy", "--dataset", dataset, "--root", str(root), "--out", str(out)]) == 0
    return out


@pytest.fixture
def real_env(features, monkeypatch):
    """Point the book at the fake cache, as a reader with real features would (kernels inherit it)."""
    monkeypatch.setenv("MINCLIP_FEATURES", str(features))
    monkeypatch.setenv("MINCLIP_MODEL", "toy")
    monkeypatch.setenv("MINCLIP_PRETRAINED", str(cache_path()))


def test_open_lab_finds_the_cache_and_says_so(real_env, capsys):
    lab = open_lab("pacs")
    assert lab.real and "NOT FOUND" not in capsys.readouterr().out
    assert lab.grid.name == "pacs" and lab.grid.shape == (7, 4)
    assert lab.source.startswith("model: toy (") and "PACS" in lab.source
    assert len(lab.train) + len(lab.test) == 7 * 4 * 8 and lab.train.features.shape[1] == lab.test.features.shape[1]
    assert lab.accuracy().shape == (7, 4)
    mask = forget_classes_in_domains(lab.grid, "dog", "sketch")
    assert set(lab.scores(lab.model, mask)) >= {"forget", "retain", "same_class_other_domains"}
    assert lab.choose_rho(mask, mode="text") in RHOS


def test_without_the_variables_the_lab_falls_back_to_toyworld(features, monkeypatch, capsys):
    monkeypatch.setenv("MINCLIP_FEATURES", str(features))  # a cache of another model: not used
    monkeypatch.delenv("MINCLIP_MODEL", raising=False)
    monkeypatch.delenv("MINCLIP_PRETRAINED", raising=False)
    lab = open_lab("pacs")
    assert not lab.real and "REAL PACS FEATURES NOT FOUND" in capsys.readouterr().out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("chapter, data", [("08_experiments_pacs", "PACS"), ("09_experiments_domainnet", "DomainNet")])
def test_the_dataset_chapters_run_on_real_features(real_env, chapter, data):
    nb = nbformat.read(ROOT / "book" / f"{chapter}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    printed = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "NOT FOUND" not in printed
    assert "model: toy (" in printed and f"data: {data}" in printed
    if data == "DomainNet":  # the text-side figures name the lab's model, not a default one
        assert f"toy ({cache_path().stem}) text directions" in printed
