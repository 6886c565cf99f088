"""Loading through open_clip: clear, fast errors when weights cannot be had or do not fit."""
import time

import pytest
import torch

from minclip_unlearn.models import list_models, load_clip


def test_unknown_model_names_valid_ones():
    with pytest.raises(ValueError, match="unknown model 'ViT-B-33'.*ViT-B-32"):
        load_clip("ViT-B-33")
    assert "toy" in list_models() and "ViT-B-32" in list_models()


def test_unfetchable_tag_fails_fast_and_says_how_to_supply_a_file():
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="pass its path: load_clip\\('ViT-B-32', pretrained='/path/to"):
        load_clip("ViT-B-32", pretrained="openai")
    assert time.perf_counter() - start < 30


def test_unknown_tag_lists_the_tags():
    with pytest.raises(ValueError, match="neither a file nor a pretrained tag.*openai"):
        load_clip("ViT-B-32", pretrained="no-such-tag")


def test_checkpoint_of_another_architecture_gives_a_clear_error(tiny_clip, tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(tiny_clip.state_dict(), path)
    with pytest.raises(ValueError, match="does not fit architecture 'ViT-B-32'"):
        load_clip("ViT-B-32", pretrained=path)


def test_loaded_model_is_in_eval_mode_and_tagged(vitb32):
    model, preprocess, tokenizer = vitb32
    assert not model.training
    assert model.minclip_source == {"model": "ViT-B-32", "pretrained": None}
    assert tokenizer(["a photo of a dog"]).shape == (1, 77)
