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


@torch.no_grad()
def encode_text(model, tokenizer: Callable, prompts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """n prompts -> (n, d) normalised text embeddings."""
    device = next(model.parameters()).device
    out = []
    for i in range(0, len(prompts), batch_size):
        tokens = tokenizer(list(prompts[i : i + batch_size])).to(device)
        out.append(model.encode_text(tokens, normalize=True).float().cpu())
    return torch.cat(out)


def ensemble(model, tokenizer: Callable, prompt_sets: Sequence[Sequence[str]], progress: bool = False) -> torch.Tensor:
    """k lists of prompts -> (k, d): each list's normalised mean of normalised embeddings."""
    flat = [p for ps in prompt_sets for p in ps]
    sizes = [len(ps) for ps in prompt_sets]
    chunks, embs = 256, []
    for i in tqdm(range(0, len(flat), chunks), desc="encoding prompts", disable=not progress):
        embs.append(encode_text(model, tokenizer, flat[i : i + chunks]))
    means = torch.stack([e.mean(0) for e in torch.cat(embs).split(sizes)])
    return torch.nn.functional.normalize(means, dim=-1)


def text_directions(model, tokenizer: Callable, grid, progress: bool = False) -> torch.Tensor:
    """Grid (C, M) -> (C, M, d) normalised text direction t[c, m] for every cell."""
    sets = [domain_prompts(c, m, grid.domain_words) for c in grid.classes for m in grid.domains]
    return ensemble(model, tokenizer, sets, progress).reshape(*grid.shape, -1)


def class_embeddings(model, tokenizer: Callable, grid, progress: bool = False) -> torch.Tensor:
    """Grid -> (C, d) normalised zero-shot classifier, one domain-free ensemble per class."""
    return ensemble(model, tokenizer, [class_prompts(c, grid.name) for c in grid.classes], progress)
