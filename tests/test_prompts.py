"""Text directions: trimmed, batched encoding equals open_clip's full-context encode_text."""
import open_clip
import pytest
import torch

from minclip_unlearn import paradigms, prompts

PROMPTS = ["a dog.", "a sketch of a dog.", "a black and white sketch of an aircraft carrier.",
           "a quick doodle of the great wall of china, drawn in a hurry on a napkin.", "a photo of a cat."]


def tiny_tokenizer(texts):
    """The tiny_clip fixture's tokenizer: open_clip's BPE at its 16-token context."""
    return open_clip.tokenize(texts, context_length=16)


@pytest.fixture(params=["vitb32", "tiny_clip"])
def model_and_tokenizer(request):
    """(model, tokenizer) for open_clip ViT-B-32 at random init and for the tiny CLIP."""
    if request.param == "vitb32":
        model, _, tokenizer = request.getfixturevalue("vitb32")
        return model, tokenizer
    return request.getfixturevalue("tiny_clip"), tiny_tokenizer


def full_context(model, tokenizer, texts):
    """The reference: open_clip's own encode_text at the full, padded context."""
    with torch.no_grad():
        return model.encode_text(tokenizer(texts), normalize=True)


def test_trimmed_encoding_equals_the_full_context(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    tokens = tokenizer(PROMPTS[:2])
    L = prompts.trimmed_length(model, tokens)
    assert L == int(tokens.argmax(-1).max()) + 1 < tokens.shape[1]  # really shorter than the context
    torch.testing.assert_close(prompts.encode_tokens(model, tokens), full_context(model, tokenizer, PROMPTS[:2]),
                               atol=1e-5, rtol=0)
    assert model.positional_embedding.shape[0] == tokens.shape[1] and model.attn_mask.shape[0] == tokens.shape[1]


def test_a_prompt_that_fills_the_context_is_encoded_whole(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    long = " ".join(["dog"] * 100)
    tokens = tokenizer([long, "a dog."])
    assert prompts.trimmed_length(model, tokens) == tokens.shape[1]
    torch.testing.assert_close(prompts.encode_tokens(model, tokens), full_context(model, tokenizer, [long, "a dog."]),
                               atol=1e-5, rtol=0)


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_encode_text_keeps_the_order_of_the_prompts(model_and_tokenizer, batch_size):
    model, tokenizer = model_and_tokenizer
    got = prompts.encode_text(model, tokenizer, PROMPTS, batch_size=batch_size)
    assert got.shape[0] == len(PROMPTS) and got.dtype == torch.float32
    torch.testing.assert_close(got, full_context(model, tokenizer, PROMPTS), atol=1e-5, rtol=0)


def test_text_directions_equal_full_context_ensembles(tiny_clip):
    grid = paradigms.ConceptGrid("pacs", ("dog", "aircraft_carrier"), ("sketch", "photo"),
                                 paradigms.grid_for("pacs").domain_words)
    got = prompts.text_directions(tiny_clip, tiny_tokenizer, grid)
    assert got.shape == (2, 2, 32)
    for i, c in enumerate(grid.classes):
        for j, m in enumerate(grid.domains):
            ref = full_context(tiny_clip, tiny_tokenizer, prompts.domain_prompts(c, m, grid.domain_words)).mean(0)
            torch.testing.assert_close(got[i, j], torch.nn.functional.normalize(ref, dim=0), atol=1e-5, rtol=0)


def test_towers_that_cannot_be_trimmed_use_the_full_context(tiny_clip, monkeypatch):
    tokens = tiny_tokenizer(PROMPTS[:2])
    monkeypatch.setattr(tiny_clip, "text_pool_type", "last")  # pools at the last position: padding matters
    assert prompts.trimmed_length(tiny_clip, tokens) is None
    monkeypatch.setattr(tiny_clip, "text_pool_type", "argmax")
    monkeypatch.setattr(tiny_clip, "attn_mask", None)  # not causal: every position sees the padding
    assert prompts.trimmed_length(tiny_clip, tokens) is None
    torch.testing.assert_close(prompts.encode_tokens(tiny_clip, tokens), tiny_clip.encode_text(tokens, normalize=True))
