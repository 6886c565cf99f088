"""A checkpoint file that is missing, empty, not a PyTorch file or of another architecture is one clear ValueError
(issue 16: these were raw UnpicklingError / EOFError / FileNotFoundError tracebacks)."""
import pickle
import zipfile

import open_clip
import pytest
import torch

from minclip_unlearn.models import check_pretrained, load_clip
from minclip_unlearn.toyworld import TOY_CLIP_NAME


def _write(path, kind, tiny_clip):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "pickle-garbage":
        path.write_bytes(b"\x80\x04\x95garbage that is not a pickle")
    elif kind == "text":
        path.write_text("<html>not a checkpoint</html>")
    elif kind == "tensor":
        torch.save(torch.zeros(3), path)
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("x", "y")
    elif kind == "other-arch":
        torch.save(tiny_clip.state_dict(), path)
    return path


CASES = [("empty", "cannot be read", EOFError), ("pickle-garbage", "cannot be read", pickle.UnpicklingError),
         ("text", "cannot be read", None), ("tensor", "cannot be read", None), ("zip", "cannot be read", None),
         ("other-arch", "does not fit architecture", None)]


@pytest.mark.parametrize("kind, message, cause", CASES)
def test_bad_toy_checkpoint_is_one_clear_value_error(kind, message, cause, tmp_path, tiny_clip):
    path = _write(tmp_path / "ckpt.pt", kind, tiny_clip)
    with pytest.raises(ValueError, match=message) as e:
        load_clip("toy", path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    if cause is not None:
        assert isinstance(e.value.__cause__, cause)


@pytest.mark.parametrize("kind, message, cause", [CASES[0], CASES[1]])
def test_unpickling_and_eof_errors_on_the_vit_path_are_clear(kind, message, cause, tmp_path, tiny_clip):
    path = _write(tmp_path / "ckpt.bin", kind, tiny_clip)
    with pytest.raises(ValueError, match=f"{message} .*'ViT-B-32'") as e:
        load_clip("ViT-B-32", path)
    assert isinstance(e.value.__cause__, cause) and "\n" not in str(e.value)


def test_missing_checkpoint_names_the_path_before_any_model_is_built(tmp_path, monkeypatch):
    monkeypatch.setattr(open_clip, "create_model_and_transforms", lambda *a, **k: pytest.fail("built a model"))
    for name in ("toy", "ViT-B-32"):
        with pytest.raises(ValueError, match="missing.pt"):
            load_clip(name, tmp_path / "missing.pt")
        with pytest.raises(ValueError, match="missing.pt"):
            check_pretrained(name, tmp_path / "missing.pt")
    check_pretrained("ViT-B-32", "openai")  # a tag is fine (fetching it is load_clip's business)
    with pytest.raises(ValueError, match="unknown model"):
        check_pretrained("ViT-B-33", None)
    with pytest.raises(ValueError, match="name the model 'toy'"):  # loaded under that name, its tokenizer was wrong
        check_pretrained(TOY_CLIP_NAME, None)


def test_a_good_toy_checkpoint_still_loads(tmp_path):
    torch.manual_seed(0)
    model = open_clip.create_model(TOY_CLIP_NAME)
    torch.save(model.state_dict(), tmp_path / "toy.pt")
    loaded, _, _ = load_clip("toy", tmp_path / "toy.pt")
    assert torch.equal(loaded.visual.proj, model.visual.proj)
