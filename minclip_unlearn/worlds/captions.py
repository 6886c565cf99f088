"""ToyWorld's language: varied captions of a scene, with idioms, and a compact word-level tokenizer for the toy CLIP.

A caption names some of a scene's properties and leaves the rest out, as real alt-text does. Some grid cells
also have their own word (an idiom, as "stick figure" names a sketch of a person), so the language is not
purely compositional. The book's prompts (prompts.DOMAIN_TEMPLATES, prompts.CLASS_TEMPLATES["toyworld"]) are
among the caption templates, so they mean something to the model.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import torch

from ..prompts import CLASS_TEMPLATES, DOMAIN_TEMPLATES, DOMAIN_WORDS, EXTRA_TEMPLATES
from .render import COLOURS, STYLES, Scene
from .shapes import CLASSES, GRID_CLASSES

STYLE_WORDS = {**DOMAIN_WORDS["toyworld"], "neon": "neon sign", "blueprint": "blueprint", "pixel": "pixel art",
               "silhouette": "silhouette", "chalk": "chalk drawing", "watercolor": "watercolor"}
IDIOMS = {  # (class, style) -> a word of its own
    ("circle", "photo"): "ball", ("circle", "cartoon"): "smiley", ("circle", "sketch"): "loop",
    ("square", "photo"): "crate", ("square", "sketch"): "grid", ("square", "art_painting"): "canvas",
    ("triangle", "photo"): "wedge", ("triangle", "cartoon"): "pennant", ("triangle", "sketch"): "delta",
    ("star", "photo"): "medal", ("star", "cartoon"): "twinkle", ("star", "art_painting"): "nova",
    ("heart", "photo"): "valentine", ("heart", "cartoon"): "emoji", ("heart", "sketch"): "doodle",
    ("cross", "photo"): "badge", ("cross", "art_painting"): "icon", ("cross", "sketch"): "plus sign",
    ("arrow", "photo"): "signpost", ("arrow", "cartoon"): "pointer", ("arrow", "sketch"): "scribble",
}
CLASS_ONLY = CLASS_TEMPLATES["toyworld"] + ("a picture of a {c}.", "the {c}.", "a {c} shape.", "{c}")
CELL = DOMAIN_TEMPLATES + ("a {c} shape, {d} style.", "this is a {d} of a {c}.", "{d} {c}")
IDIOM = ("a {i}.", "an image of a {i}.", "a {i} picture.", "{i}")
NUMBERS = {1: "one", 2: "two", 3: "three"}
POSITIONS = {"centre": "in the centre", "left": "on the left", "right": "on the right", "top": "at the top",
             "bottom": "at the bottom"}
FAMILIES = {"class": 0.25, "cell": 0.35, "idiom": 0.1, "attributes": 0.3}  # how often each kind of caption is drawn (default)


def plural(word: str) -> str:
    """'cross' -> 'crosses', 'star' -> 'stars' (the toy language's only rule)."""
    return word + ("es" if word.endswith(("s", "x", "sh", "ch")) else "s")


def _attribute_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, dict]:
    """A caption naming the class and a random subset of the scene's other properties -> (text, what it names)."""
    named: dict = {"cls": scene.cls}
    noun = scene.cls
    adjectives = []
    if scene.size != "medium" and rng.random() < 0.4:
        adjectives.append(scene.size), named.update(size=scene.size)
    if scene.colour is not None and rng.random() < 0.6:
        adjectives.append(scene.colour), named.update(colour=scene.colour)
    if rng.random() < 0.5:
        named["count"] = scene.count
    count = NUMBERS[scene.count] if "count" in named else "a"
    phrase = " ".join([count, *adjectives, plural(noun) if scene.count > 1 and "count" in named else noun])
    if rng.random() < 0.6:
        phrase = f"{phrase} {STYLE_WORDS[scene.style]}" if rng.random() < 0.5 else f"a {STYLE_WORDS[scene.style]} of {phrase}"
        named["style"] = scene.style
    if scene.position is not None and rng.random() < 0.35:
        phrase, named["position"] = f"{phrase} {POSITIONS[scene.position]}", scene.position
    if scene.background is not None and rng.random() < 0.35:
        phrase, named["background"] = f"{phrase} on a {scene.background} background", scene.background
    return phrase + ".", named


def caption(scene: Scene, rng: np.random.Generator, mix: dict[str, float] = FAMILIES) -> tuple[str, dict]:
    """A random caption of scene -> (text, {property: value} it names; a caption matches the images that agree).

    mix: how often each family of caption is drawn ({"class", "cell", "idiom", "attributes"} -> probability).
    """
    family = rng.choice(list(mix), p=list(mix.values()))
    idiom = IDIOMS.get((scene.cls, scene.style))
    if family == "idiom" and idiom is not None:
        return str(rng.choice(IDIOM)).format(i=idiom), {"cls": scene.cls, "style": scene.style}
    if family == "cell":
        d = STYLE_WORDS[scene.style]
        templates = CELL + EXTRA_TEMPLATES.get(d, ())
        return str(rng.choice(templates)).format(d=d, c=scene.cls), {"cls": scene.cls, "style": scene.style}
    if family == "attributes":
        return _attribute_caption(scene, rng)
    return str(rng.choice(CLASS_ONLY)).format(c=scene.cls), {"cls": scene.cls}


def matches(scene: Scene, named: dict) -> bool:
    """True if the scene has every property the caption names."""
    return all(getattr(scene, k) == v for k, v in named.items())


# ---------------------------------------------------------------- the tokenizer
def _words(text: str) -> list[str]:
    """'A sketch of a star.' -> ['a', 'sketch', 'of', 'a', 'star']."""
    return re.findall(r"[a-z0-9]+", text.lower().replace("_", " "))


def vocabulary() -> list[str]:
    """Every word the toy language uses, sorted: class, style, colour, number, idiom and template words."""
    texts = [*CLASS_ONLY, *CELL, *IDIOM, *POSITIONS.values(), *NUMBERS.values(), *STYLE_WORDS.values(), *COLOURS,
             *CLASSES, *map(plural, CLASSES), *IDIOMS.values(), "small medium large light dark background of on",
             *(t for ts in EXTRA_TEMPLATES.values() for t in ts), *(t for ts in CLASS_TEMPLATES.values() for t in ts),
             *STYLES]
    return sorted({w for t in texts for w in _words(t.replace("{c}", "").replace("{d}", "").replace("{i}", ""))})


class ToyTokenizer:
    """Word-level tokenizer of the toy language: texts -> (N, context_length) int64; 0 pads, the end token is the largest id.

    open_clip's text tower pools at the argmax token id, so the end-of-text token has the largest id, as in CLIP's BPE.
    Unknown words map to one <unk> id.
    """

    PAD, SOT, UNK = 0, 1, 2

    def __init__(self, words: Sequence[str], context_length: int):
        self.words, self.context_length = list(words), context_length
        self.index = {w: i + 3 for i, w in enumerate(self.words)}
        self.EOT = len(self.words) + 3

    @property
    def vocab_size(self) -> int:
        """Ids 0 .. EOT."""
        return self.EOT + 1

    def encode(self, text: str) -> list[int]:
        """One text -> its ids, start and end tokens included, truncated to the context (end token kept)."""
        ids = [self.SOT, *(self.index.get(w, self.UNK) for w in _words(text))][: self.context_length - 1]
        return ids + [self.EOT]

    def __call__(self, texts: str | Sequence[str], context_length: int | None = None) -> torch.Tensor:
        """Text(s) -> (N, context_length) token ids, zero-padded."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        L = context_length or self.context_length
        out = torch.zeros(len(texts), L, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = self.encode(t)[:L]
            ids[-1] = self.EOT
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def grid_caption_sets() -> tuple[list[list[str]], list[list[str]]]:
    """-> the cell templates of each grid cell (C*M lists, cell c*M+m) and the class-only captions of each grid class."""
    from ..paradigms import TOYWORLD_DOMAINS

    cells = [[t.format(d=STYLE_WORDS[m], c=c) for t in CELL + EXTRA_TEMPLATES.get(STYLE_WORDS[m], ())]
             for c in GRID_CLASSES for m in TOYWORLD_DOMAINS]
    return cells, [[t.format(c=c) for t in CLASS_ONLY] for c in GRID_CLASSES]
