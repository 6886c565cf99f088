"""Visual prototypes: images synthesised in pixel space so that their embeddings align with a text direction.

x* = argmax_x E_A[cos(h(A(x)), t)] - beta * TV(x), with x = sigmoid(upsample(z)) and z at low resolution
(METHOD.md §3). No real image is used. The prototype is the normalised embedding of x* without augmentation.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import open_clip
import torch
import torch.nn.functional as Fn
from tqdm.auto import tqdm

from .cache import atomic_torch_save, cache_dir as _cache_root

ANNOUNCE_SECONDS = 60.0  # a synthesis expected to take longer prints its plan and cost first


@dataclass(frozen=True)
class SynthesisConfig:
    """Settings of one synthesis run (part of the cache key)."""

    n: int = 2  # prototypes per target
    steps: int = 100  # Adam steps
    lr: float = 0.1
    low_res: int = 8  # side of the low-resolution parameterisation
    tv: float = 0.05  # beta, total-variation weight
    min_crop: float = 0.7  # random resized crop keeps at least this fraction of the side
    jitter: float = 0.05  # max shift, as a fraction of the side
    batch: int = 32  # targets optimised together (grid_prototypes works in chunks of this many)
    seed: int = 0


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B,) mean absolute difference between neighbouring pixels."""
    dh = (x[..., 1:, :] - x[..., :-1, :]).abs().mean(dim=(1, 2, 3))
    dw = (x[..., :, 1:] - x[..., :, :-1]).abs().mean(dim=(1, 2, 3))
    return dh + dw


def augment(x: torch.Tensor, cfg: SynthesisConfig, gen: torch.Generator) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 3, H, W): one random resized crop plus a small shift, shared by the batch."""
    H, W = x.shape[-2:]
    s = cfg.min_crop + (1 - cfg.min_crop) * torch.rand((), generator=gen).item()
    h, w = max(2, int(H * s)), max(2, int(W * s))
    top = int(torch.randint(0, H - h + 1, (), generator=gen))
    left = int(torch.randint(0, W - w + 1, (), generator=gen))
    crop = Fn.interpolate(x[..., top : top + h, left : left + w], size=(H, W), mode="bilinear", align_corners=False)
    shift = [int(torch.randint(-int(cfg.jitter * n), int(cfg.jitter * n) + 1, (), generator=gen)) for n in (H, W)]
    return torch.roll(crop, shifts=shift, dims=(-2, -1))


def pixel_stats(model, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The model's own input normalisation (OpenAI's by default) -> ((1, 3, 1, 1) mean, (1, 3, 1, 1) std)."""
    pp = open_clip.get_model_preprocess_cfg(model)
    return tuple(torch.tensor(pp.get(k, v), device=device).view(1, 3, 1, 1)
                 for k, v in (("mean", open_clip.OPENAI_DATASET_MEAN), ("std", open_clip.OPENAI_DATASET_STD)))


def synthesize(model, targets: torch.Tensor, cfg: SynthesisConfig = SynthesisConfig(), progress: bool = True,
               on_first_step: Callable[[float], None] | None = None):
    """(k, d) target directions -> ((k, n, d) normalised prototypes, (steps,) mean cosine, (k*n, 3, H, W) images).

    on_first_step, if given, is called with the first Adam step's wall time in seconds (for a cost estimate).
    """
    size = tuple(model.visual.image_size)
    device = next(model.parameters()).device
    mean, std = pixel_stats(model, device)
    k, d = targets.shape
    t = Fn.normalize(targets.float(), dim=-1).to(device).repeat_interleave(cfg.n, dim=0)  # (k*n, d)
    gen = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(k * cfg.n, 3, cfg.low_res, cfg.low_res, generator=gen).to(device).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr)
    image = lambda: torch.sigmoid(Fn.interpolate(z, size=size, mode="bilinear", align_corners=False))
    requires = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    history = []
    try:
        for step in tqdm(range(cfg.steps), desc=f"synthesising {k * cfg.n} prototypes", disable=not progress):
            start = time.perf_counter()
            x = image()
            h = model.encode_image((augment(x, cfg, gen) - mean) / std)
            cos = Fn.cosine_similarity(h, t, dim=-1)
            loss = (-cos + cfg.tv * total_variation(x)).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            history.append(cos.mean().item())
            if step == 0 and on_first_step is not None:
                on_first_step(time.perf_counter() - start)
        with torch.no_grad():
            x = image()
            protos = Fn.normalize(model.encode_image((x - mean) / std).float(), dim=-1)
    finally:
        for p, r in zip(model.parameters(), requires):
            p.requires_grad_(r)
    return protos.cpu().reshape(k, cfg.n, d), torch.tensor(history), x.detach().cpu()


def default_cache_dir() -> Path:
    """$MINCLIP_CACHE/prototypes, default ~/.cache/minclip_unlearn/prototypes."""
    return _cache_root("prototypes")


def cache_key(model, targets: torch.Tensor, concepts: list[str], cfg: SynthesisConfig) -> str:
    """A hash of model tags, model weights' fingerprint, concepts, targets and settings."""
    h = hashlib.sha256()
    h.update(json.dumps([getattr(model, "minclip_source", {}), concepts, asdict(cfg)], sort_keys=True).encode())
    for tensor in (model.visual.proj, next(model.visual.parameters()), targets):
        h.update(tensor.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def _cell_names(grid, cells: torch.Tensor | None = None) -> list[str]:
    """Grid (C, M), optional (C, M) bool mask -> 'class/domain' of every (selected) cell, row-major."""
    return [f"{c}/{m}" for i, c in enumerate(grid.classes) for j, m in enumerate(grid.domains)
            if cells is None or bool(cells[i, j])]


def cache_path(model, text_dirs: torch.Tensor, grid, cfg: SynthesisConfig,
               cache_dir: str | os.PathLike | None = None, cells: torch.Tensor | None = None) -> Path:
    """(C, M, d) text directions [, (C, M) bool cells] -> the file that caches their prototypes.

    The key covers the model, the (selected) cells' names and targets, and the settings: a mask that selects
    every cell has the whole grid's key.
    """
    targets = text_dirs.reshape(-1, text_dirs.shape[-1]) if cells is None else text_dirs[cells]
    key = cache_key(model, targets, _cell_names(grid, cells), cfg)
    return Path(cache_dir or default_cache_dir()) / f"{key}.pt"


def synthesis_plan(k: int, cfg: SynthesisConfig, step_seconds: float) -> str:
    """k targets, the measured wall time of one step on one chunk -> a one-line plan with its estimated cost."""
    chunks = -(-k // cfg.batch)
    total = step_seconds * cfg.steps * chunks
    return (f"minclip_unlearn: synthesising {k * cfg.n} prototypes ({k} cells x {cfg.n}) in {chunks} batch(es) "
            f"of up to {cfg.batch} cells x {cfg.steps} steps; one step took {step_seconds:.2f} s, "
            f"so about {total / 60:.1f} min ({total / 3600:.2f} h) on this machine")


def synthesize_in_chunks(model, targets: torch.Tensor, cfg: SynthesisConfig, progress: bool = True):
    """(k, d) targets -> ((k, n, d) prototypes, (k*n, 3, H, W) images): chunks of cfg.batch, chunk i seeded cfg.seed + i.

    The first step of the first chunk is timed; if the whole run should exceed ANNOUNCE_SECONDS, its plan and
    estimated cost are printed before the rest runs.
    """
    chunks = targets.split(cfg.batch)

    def announce(seconds: float) -> None:
        if seconds * cfg.steps * len(chunks) > ANNOUNCE_SECONDS:
            print(synthesis_plan(targets.shape[0], cfg, seconds), flush=True)

    outs = [synthesize(model, chunk, replace(cfg, seed=cfg.seed + i), progress, announce if i == 0 else None)
            for i, chunk in enumerate(chunks)]
    return torch.cat([o[0] for o in outs]), torch.cat([o[2] for o in outs])


def grid_prototypes(
    model, text_dirs: torch.Tensor, grid, cfg: SynthesisConfig = SynthesisConfig(),
    cache_dir: str | os.PathLike | None = None, progress: bool = True, cells: torch.Tensor | None = None,
) -> torch.Tensor:
    """(C, M, d) text directions -> (C, M, n, d) prototypes, loaded from or saved to the on-disk cache.

    cells, a (C, M) bool mask, synthesises only those cells (e.g. the forget cells); the other cells are
    zero (a zero direction adds nothing to a span or a Gram), unless the whole grid is already cached.
    """
    full = cache_path(model, text_dirs, grid, cfg, cache_dir)
    if full.exists():
        return torch.load(full, weights_only=True)
    if cells is None:
        protos = synthesize_in_chunks(model, text_dirs.reshape(-1, text_dirs.shape[-1]), cfg, progress)[0]
        protos = protos.reshape(*grid.shape, cfg.n, -1)
        atomic_torch_save(full, protos)
        return protos
    cells = _check_cells(cells, grid)
    path = cache_path(model, text_dirs, grid, cfg, cache_dir, cells)
    if path.exists():
        chosen = torch.load(path, weights_only=True)
    else:
        chosen = synthesize_in_chunks(model, text_dirs[cells], cfg, progress)[0] if cells.any() else \
            text_dirs.new_zeros(0, cfg.n, text_dirs.shape[-1])
        atomic_torch_save(path, chosen)
    protos = chosen.new_zeros(*grid.shape, cfg.n, text_dirs.shape[-1])
    protos[cells] = chosen
    return protos


def _check_cells(cells: torch.Tensor, grid) -> torch.Tensor:
    """A (C, M) bool mask over the grid, or one clear error."""
    cells = torch.as_tensor(cells)
    if cells.dtype != torch.bool or tuple(cells.shape) != tuple(grid.shape):
        raise ValueError(f"cells must be a {tuple(grid.shape)} bool mask over the grid (classes x domains), "
                         f"got {cells.dtype} {tuple(cells.shape)}")
    return cells
