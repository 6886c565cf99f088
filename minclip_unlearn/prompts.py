"""Prompt ensembles: domain-aware text directions t[c, m] and domain-free class prompts (METHOD.md §3, §5)."""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from tqdm.auto import tqdm

# One table per dataset: how a domain is said in words.
DOMAIN_WORDS: dict[str, dict[str, str]] = {
    "pacs": {"photo": "photo", "art_painting": "painting", "cartoon": "cartoon", "sketch": "sketch"},
    "domainnet": {
        "clipart": "clipart", "infograph": "infographic", "painting": "painting",
        "quickdraw": "quick doodle", "real": "photo", "sketch": "sketch",
    },
    "toyworld": {"photo": "photo", "art_painting": "painting", "cartoon": "cartoon", "sketch": "sketch"},
}

# Domain-aware templates for a cell (c, m): {d} is the domain word, {c} the class name.
DOMAIN_TEMPLATES = ("a {d} of a {c}.", "a {d} of the {c}.", "a {c} {d}.", "a {d} showing a {c}.")
EXTRA_TEMPLATES = {"sketch": ("a black and white sketch of a {c}.",)}

# Class prompts that do not single out one domain, used to classify (METHOD.md §5).
CLASS_TEMPLATES: dict[str, tuple[str, ...]] = {
    "pacs": ("a photo of a {c}.", "a drawing of a {c}.", "a painting of a {c}.", "an image of a {c}."),
    "domainnet": ("a photo of a {c}.", "a drawing of a {c}.", "a painting of a {c}.", "an image of a {c}."),
    "toyworld": ("a {c}.", "an image of a {c}."),
}


def _say(name: str) -> str:
    """Class or domain name -> words, e.g. 'aircraft_carrier' -> 'aircraft carrier'."""
    return name.replace("_", " ")


def domain_prompts(cls: str, domain: str, domain_words: dict[str, str]) -> list[str]:
    """The prompt ensemble for one cell (cls, domain)."""
    word = domain_words.get(domain, _say(domain))
    templates = DOMAIN_TEMPLATES + EXTRA_TEMPLATES.get(word, ())
    return [t.format(d=word, c=_say(cls)) for t in templates]


def class_prompts(cls: str, dataset: str) -> list[str]:
    """The domain-free prompt ensemble for one class."""
    templates = CLASS_TEMPLATES.get(dataset, CLASS_TEMPLATES["pacs"])
    return [t.format(c=_say(cls)) for t in templates]


def trimmed_length(model, tokens: torch.Tensor) -> int | None:
    """(n, L) token ids -> the shortest length that changes no embedding, or None if the tower is not trimmable.

    open_clip's text tower is causal and pools at the end-of-text token (pool 'argmax': the highest id;
    'eos': the tokenizer's eos id), so a position after the batch's last EOT reaches no pooled output.
    """
    pool = getattr(model, "text_pool_type", "argmax")
    if not (isinstance(getattr(model, "positional_embedding", None), torch.Tensor)
            and isinstance(getattr(model, "attn_mask", None), torch.Tensor) and pool in ("argmax", "eos")):
        return None  # not open_clip.CLIP with a causal mask (e.g. an HF text tower): keep the full context
    if pool == "eos":
        eos = getattr(model, "text_eos_id", None)
        if eos is None or not (tokens == eos).any(-1).all():
            return None
        last = (tokens == eos).int().argmax(-1)
    else:
        last = tokens.argmax(-1)
    return int(last.max()) + 1


@torch.no_grad()
def encode_tokens(model, tokens: torch.Tensor) -> torch.Tensor:
    """(n, L) token ids -> (n, d) normalised embeddings, run at the batch's longest prompt, not the full L.

    open_clip's own encode_text runs with positional_embedding[:L'] and attn_mask[:L', :L'] swapped in
    for the call (torch.func.functional_call): the result equals the full-context one up to round-off.
    """
    L = trimmed_length(model, tokens)
    if L is None or L >= tokens.shape[1]:
        return model.encode_text(tokens, normalize=True)
    short = {"positional_embedding": model.positional_embedding[:L], "attn_mask": model.attn_mask[:L, :L]}
    out = torch.func.functional_call(model, short, args=(None, tokens[:, :L]), strict=False)
    return out["text_features"] if isinstance(out, dict) else out[1]  # CLIP.forward(None, text): normalised


def encode_text(
    model, tokenizer: Callable, prompts: Sequence[str], batch_size: int = 256, progress: bool = False
) -> torch.Tensor:
    """n prompts -> (n, d) normalised text embeddings: tokenised at once, batched by length, trimmed per batch."""
    if not len(prompts):
        raise ValueError("encode_text needs at least one prompt")
    device = next(model.parameters()).device
    tokens = tokenizer(list(prompts)).to(device)
    order = torch.argsort((tokens != 0).sum(-1), stable=True)  # similar lengths share a batch: little padding
    batches = order.split(batch_size)
    embs = [encode_tokens(model, tokens[idx]).float().cpu()
            for idx in tqdm(batches, desc="encoding prompts", disable=not progress)]
    out = torch.empty(len(prompts), embs[0].shape[-1])
    out[order.cpu()] = torch.cat(embs)
    return out


def ensemble(model, tokenizer: Callable, prompt_sets: Sequence[Sequence[str]], progress: bool = False) -> torch.Tensor:
    """k lists of prompts -> (k, d): each list's normalised mean of normalised embeddings (one batched pass)."""
    flat = [p for ps in prompt_sets for p in ps]
    sizes = [len(ps) for ps in prompt_sets]
    embs = encode_text(model, tokenizer, flat, progress=progress)
    means = torch.stack([e.mean(0) for e in embs.split(sizes)])
    return torch.nn.functional.normalize(means, dim=-1)


def text_directions(model, tokenizer: Callable, grid, progress: bool = False) -> torch.Tensor:
    """Grid (C, M) -> (C, M, d) normalised text direction t[c, m] for every cell."""
    sets = [domain_prompts(c, m, grid.domain_words) for c in grid.classes for m in grid.domains]
    return ensemble(model, tokenizer, sets, progress).reshape(*grid.shape, -1)


def class_embeddings(model, tokenizer: Callable, grid, progress: bool = False) -> torch.Tensor:
    """Grid -> (C, d) normalised zero-shot classifier, one domain-free ensemble per class."""
    return ensemble(model, tokenizer, [class_prompts(c, grid.name) for c in grid.classes], progress)
