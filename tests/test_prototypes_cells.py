"""Prototypes only where the edit needs them: a cell mask, its cache, and the cost estimate printed first."""
import pytest
import torch

from minclip_unlearn import edit, paradigms, prototypes

CFG = prototypes.SynthesisConfig(n=2, steps=3, batch=2)
GRID = paradigms.ConceptGrid("tiny", ("a", "b", "c"), ("x", "y"), {})
CELLS = torch.tensor([[True, False], [False, False], [True, True]])


@pytest.fixture(scope="module")
def dirs():
    return torch.nn.functional.normalize(torch.randn(3, 2, 32, generator=torch.Generator().manual_seed(1)), dim=-1)


def test_only_the_selected_cells_are_synthesised(tiny_clip, dirs, tmp_path, monkeypatch):
    seen = []
    real = prototypes.synthesize
    monkeypatch.setattr(prototypes, "synthesize", lambda m, t, *a, **k: seen.append(t.shape[0]) or real(m, t, *a, **k))
    got = prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False, cells=CELLS)
    assert got.shape == (3, 2, 2, 32) and sum(seen) == int(CELLS.sum())
    expected = prototypes.synthesize_in_chunks(tiny_clip, dirs[CELLS], CFG, progress=False)[0]
    assert torch.equal(got[CELLS], expected)
    assert torch.equal(got[~CELLS], torch.zeros_like(got[~CELLS]))
    assert torch.allclose(got[CELLS].norm(dim=-1), torch.ones(3, 2))


def test_a_cell_mask_is_cached_under_its_own_key(tiny_clip, dirs, tmp_path, monkeypatch):
    first = prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False, cells=CELLS)
    monkeypatch.setattr(prototypes, "synthesize", lambda *a, **k: pytest.fail("cache was not used"))
    again = prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False, cells=CELLS)
    assert torch.equal(again, first)
    full, subset = (prototypes.cache_path(tiny_clip, dirs, GRID, CFG, tmp_path, c) for c in (None, CELLS))
    assert subset.exists() and not full.exists() and subset != full
    every = torch.ones(3, 2, dtype=torch.bool)  # the whole grid as a mask: the whole grid's key
    assert prototypes.cache_path(tiny_clip, dirs, GRID, CFG, tmp_path, every) == full


def test_a_cached_whole_grid_fills_every_cell(tiny_clip, dirs, tmp_path, monkeypatch):
    whole = prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False)
    monkeypatch.setattr(prototypes, "synthesize", lambda *a, **k: pytest.fail("cache was not used"))
    got = prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False, cells=CELLS)
    assert torch.equal(got, whole)


def test_no_cell_selected_synthesises_nothing(tiny_clip, dirs, tmp_path, monkeypatch):
    monkeypatch.setattr(prototypes, "synthesize", lambda *a, **k: pytest.fail("nothing to synthesise"))
    none = torch.zeros(3, 2, dtype=torch.bool)
    got = prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False, cells=none)
    assert torch.equal(got, torch.zeros(3, 2, 2, 32))


@pytest.mark.parametrize("cells", [torch.ones(2, 2, dtype=torch.bool), torch.ones(3, 2, dtype=torch.int64)])
def test_a_bad_cell_mask_is_one_clear_error(tiny_clip, dirs, tmp_path, cells):
    with pytest.raises(ValueError, match=r"cells must be a \(3, 2\) bool mask"):
        prototypes.grid_prototypes(tiny_clip, dirs, GRID, CFG, cache_dir=tmp_path, progress=False, cells=cells)


def test_a_long_synthesis_prints_its_plan_first(tiny_clip, dirs, capsys, monkeypatch):
    targets = dirs.reshape(-1, 32)
    monkeypatch.setattr(prototypes, "ANNOUNCE_SECONDS", 1e9)
    prototypes.synthesize_in_chunks(tiny_clip, targets, CFG, progress=False)
    assert capsys.readouterr().out == ""
    monkeypatch.setattr(prototypes, "ANNOUNCE_SECONDS", 0.0)
    prototypes.synthesize_in_chunks(tiny_clip, targets, CFG, progress=False)
    out = capsys.readouterr().out
    assert out.count("minclip_unlearn: synthesising") == 1 and "12 prototypes (6 cells x 2) in 3 batch(es)" in out
    plan = prototypes.synthesis_plan(2070, prototypes.SynthesisConfig(), step_seconds=3.0)
    assert "65 batch(es)" in plan and "325.0 min" in plan  # 3 s x 100 steps x 65 chunks


def test_zero_prototypes_in_retained_cells_change_no_projector(dirs):
    """Retained cells without prototypes (zeros) give the projector of text-only retain directions."""
    protos = torch.nn.functional.normalize(torch.randn(3, 2, 2, 32, generator=torch.Generator().manual_seed(2)), dim=-1)
    mask = torch.tensor([[True, True], [False, False], [False, False]])
    only_forget = torch.where(mask[..., None, None], protos, torch.zeros_like(protos))
    F, R = edit.directions(dirs, mask, only_forget)
    F_ref = edit.directions(dirs, mask, protos)[0]
    R_text = edit.directions(dirs, mask)[1]
    assert torch.equal(F, F_ref)
    torch.testing.assert_close(edit.projector(F, R), edit.projector(F, R_text), atol=1e-6, rtol=0)
