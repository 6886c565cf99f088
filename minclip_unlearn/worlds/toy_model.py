"""The toy CLIP: an open_clip ViT trained contrastively on the whole ToyWorld (grid and distractors), and its recipe.

`data_scripts/train_toy_clip.py` runs `train_toy_clip(RECIPE)` to make the checkpoint the package ships.
"""
from __future__ import annotations

import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
from tqdm.auto import tqdm

from ..paradigms import TOYWORLD_DOMAINS as GRID_STYLES
from .captions import FAMILIES, ToyTokenizer, caption, matches, vocabulary
from .render import IMAGE_SIZE, STYLES, draw, render
from .shapes import CLASSES, GRID_CLASSES

TOY_CLIP_NAME = "toy-vit"  # open_clip config name, registered below: open_clip.create_model(TOY_CLIP_NAME)
CONTEXT_LENGTH = 16
RECIPE = {
    "version": 3, "steps": 7500, "batch_size": 96, "lr": 1e-3, "weight_decay": 0.05, "warmup": 300,
    "pool_size": 240000, "grid_class_p": 0.5, "grid_style_p": 0.6, "max_logit_scale": 100.0, "seed": 0,
    "caption_mix": dict(FAMILIES),
}
SPLITS = {"train": 0, "test": 1, "pretrain": 2}  # first word of every image's seed: the splits never share a seed


def tokenizer() -> ToyTokenizer:
    """The toy CLIP's word-level tokenizer."""
    return ToyTokenizer(vocabulary(), CONTEXT_LENGTH)


def model_config() -> dict:
    """The open_clip config of the toy CLIP (a small ViT; embed_dim well above the grid's 28 cells and 33 classes)."""
    return {
        "embed_dim": 256,
        "vision_cfg": {"image_size": IMAGE_SIZE, "patch_size": 12, "width": 160, "head_width": 32, "mlp_ratio": 2.0, "layers": 5},
        "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": tokenizer().vocab_size, "width": 128, "heads": 4, "layers": 3},
    }


open_clip.factory._MODEL_CONFIGS[TOY_CLIP_NAME] = model_config()  # what add_model_config does with a JSON file


@functools.lru_cache(maxsize=None)  # the world is fixed for a given code: draw the sample once per process
def world_hash(n: int = 64) -> str:
    """A sha256 of what the world draws and says for fixed seeds: it changes whenever rendering or captions change."""
    h = hashlib.sha256(json.dumps([CLASSES, STYLES, IMAGE_SIZE, vocabulary()]).encode())
    for i in range(n):
        rng = np.random.default_rng((99, i))
        image, scene = render(CLASSES[i % len(CLASSES)], STYLES[i % len(STYLES)], rng)
        h.update((image * 255).round().astype(np.uint8).tobytes())
        h.update(repr(caption(scene, rng)).encode())
    return h.hexdigest()[:16]


def recipe_hash(recipe: dict = RECIPE) -> str:
    """A sha256 of the training recipe and the model's config."""
    return hashlib.sha256(json.dumps([recipe, model_config()], sort_keys=True).encode()).hexdigest()[:16]


def _sample_cells(n: int, recipe: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """-> (n,) class and (n,) style indices into CLASSES / STYLES, the grid's classes and styles drawn more often."""
    G, S = len(GRID_CLASSES), len(GRID_STYLES)
    grid_c = rng.random(n) < recipe["grid_class_p"]
    c = np.where(grid_c, rng.integers(0, G, n), rng.integers(G, len(CLASSES), n))
    grid_s = rng.random(n) < recipe["grid_style_p"]
    s = np.where(grid_s, rng.integers(0, S, n), rng.integers(S, len(STYLES), n))
    return c, s


def pretrain_pool(recipe: dict = RECIPE, progress: bool = True) -> tuple[torch.Tensor, list]:
    """The training images -> ((N, 3, H, W) uint8, N Scenes); image i is drawn from seed ('pretrain', seed, i)."""
    c, s = _sample_cells(recipe["pool_size"], recipe, np.random.default_rng((SPLITS["pretrain"], recipe["seed"])))
    images, scenes = [], []
    for i in tqdm(range(recipe["pool_size"]), desc="drawing ToyWorld", disable=not progress):
        image, scene = render(CLASSES[c[i]], STYLES[s[i]], np.random.default_rng((SPLITS["pretrain"], recipe["seed"], i)))
        images.append(torch.from_numpy((image * 255).round().astype(np.uint8)).permute(2, 0, 1))
        scenes.append(scene)
    return torch.stack(images), scenes


def contrastive_loss(logits: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """(B, B) image x caption logits, (B, B) bool positives -> CLIP's two-way loss with several positives per row."""
    p = pos.float()
    i2t = -(p / p.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(p / p.sum(0, keepdim=True) * logits.log_softmax(0)).sum(0).mean()
    return (i2t + t2i) / 2


def train_toy_clip(recipe: dict = RECIPE, progress: bool = True, device: str | None = None):
    """Train the toy CLIP from scratch on ToyWorld's pretrain split -> (model in eval mode, seconds taken).

    Each step draws a batch of images and one fresh caption per image; caption j is a positive of image i when i
    has every property j names (so "a star." is a positive of every star in the batch).
    """
    start = time.time()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(recipe["seed"])
    rng = np.random.default_rng((SPLITS["pretrain"], recipe["seed"], 2**32 - 1))  # the captions' own stream
    g = torch.Generator().manual_seed(recipe["seed"])
    images, scenes = pretrain_pool(recipe, progress)
    model = open_clip.create_model(TOY_CLIP_NAME).to(device)
    mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in (model.visual.image_mean, model.visual.image_std))
    tok = tokenizer()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"], weight_decay=recipe["weight_decay"])
    steps, warm = recipe["steps"], recipe["warmup"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * s / steps)))
    B, max_scale = recipe["batch_size"], float(np.log(recipe["max_logit_scale"]))
    model.train()
    for _ in (bar := tqdm(range(steps), desc="training toy CLIP", disable=not progress)):
        idx = torch.randint(len(images), (B,), generator=g).tolist()
        caps = [caption(scenes[i], rng, recipe["caption_mix"]) for i in idx]
        pos = torch.tensor([[matches(scenes[i], named) for _, named in caps] for i in idx], device=device)
        x = (images[idx].to(device).float() / 255 - mean) / std
        tokens = tok([text for text, _ in caps]).to(device)
        logits = model.logit_scale.exp() * model.encode_image(x, normalize=True) @ model.encode_text(tokens, normalize=True).T
        loss = contrastive_loss(logits, pos)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, max_scale)
        bar.set_postfix(loss=f"{loss.item():.3f}", scale=f"{model.logit_scale.exp().item():.1f}")
    return model.cpu().eval(), time.time() - start


def save_checkpoint(model, path: str | Path, meta: dict) -> tuple[Path, Path]:
    """Write the fp16 state_dict to path and meta (+ the file's sha256) to path with .json -> both paths."""
    from ..cache import atomic_text, atomic_torch_save

    path = Path(path)
    atomic_torch_save(path, {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()})
    meta = {**meta, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    atomic_text(path.with_suffix(".json"), json.dumps(meta, indent=2))
    return path, path.with_suffix(".json")
