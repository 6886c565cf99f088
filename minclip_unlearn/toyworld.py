"""ToyWorld: a procedural 7-class x 4-domain image world in PACS-like styles, and a tiny open_clip ViT trained on it."""
from __future__ import annotations

import colorsys
import contextlib
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as Fn
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from .datasets import FeatureSet
from .paradigms import TOYWORLD_CLASSES as CLASSES
from .paradigms import TOYWORLD_DOMAINS as DOMAINS
from .paradigms import grid_for
from .prompts import DOMAIN_WORDS, class_prompts, domain_prompts

IMAGE_SIZE = 32  # pixels; shapes are drawn at 2x and downsampled (anti-aliasing)
_SS = 2
TOY_CLIP_NAME = "toy-vit"  # open_clip config name, registered below: open_clip.create_model(TOY_CLIP_NAME)
RECIPE = "v2"  # bump when the world or the training recipe changes: the cached checkpoint is keyed by it
TRAIN_DEFAULTS = {"steps": 3000, "batch_size": 32, "pool_per_cell": 500, "lr": 1e-3}
_TILT = np.pi / 6  # shapes stand roughly upright, like PACS objects: rotation within +-30 degrees
_SPLITS = {"train": 0, "test": 1}  # first word of every image's seed, so the splits never share a seed
_PALETTE = np.array([[0.80, 0.60, 0.25], [0.60, 0.30, 0.15], [0.40, 0.30, 0.20], [0.45, 0.50, 0.25],
                     [0.15, 0.25, 0.45], [0.65, 0.15, 0.15], [0.90, 0.85, 0.70], [0.30, 0.45, 0.40]])  # earthy oils
open_clip.add_model_config(Path(__file__).parent / "data" / f"{TOY_CLIP_NAME}.json")


# ---------------------------------------------------------------- the world: shapes and domain styles
def _unit_outline(cls: str) -> np.ndarray:
    """Class name -> (P, 2) closed outline, centred, max radius 1 (y points down)."""
    t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    star_r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
    a3, a10, w = np.pi / 2 + np.arange(3) * 2 * np.pi / 3, np.pi / 2 + np.arange(10) * np.pi / 5, 0.32
    p = {
        "circle": lambda: np.stack([np.cos(t), np.sin(t)], 1),
        "square": lambda: np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], float),
        "triangle": lambda: np.stack([np.cos(a3), -np.sin(a3)], 1),
        "star": lambda: np.stack([star_r * np.cos(a10), -star_r * np.sin(a10)], 1),
        "heart": lambda: np.stack([16 * np.sin(t) ** 3, -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))], 1),
        "cross": lambda: np.array([[-w, -1], [w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w]]),
        "arrow": lambda: np.array([[-1, -0.2], [0.15, -0.2], [0.15, -0.6], [1, 0], [0.15, 0.6], [0.15, 0.2], [-1, 0.2]]),
    }[cls]()
    p = p - (p.max(0) + p.min(0)) / 2
    return p / np.linalg.norm(p, axis=1).max()


_OUTLINES = {c: _unit_outline(c) for c in CLASSES}


def _place(cls: str, rng: np.random.Generator) -> np.ndarray:
    """-> (P, 2) outline in 2x pixel coordinates, at a random scale, rotation and position."""
    s = IMAGE_SIZE * _SS
    r, a = rng.uniform(0.28, 0.44) * s, rng.uniform(-_TILT, _TILT)
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * [rng.choice([-1, 1]), 1]  # tilt, maybe mirror
    room = max(0.0, s / 2 - r - _SS) * 0.6  # the centre moves at most 60% of the way to the edge
    return _OUTLINES[cls] @ rot.T * r + s / 2 + rng.uniform(-room, room, size=2)


def _down(im: Image.Image) -> np.ndarray:
    """2x PIL image -> (H, W, channels) float32 in [0, 1] at IMAGE_SIZE."""
    a = np.asarray(im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), np.float32) / 255
    return a[..., None] if a.ndim == 2 else a


def _mask(outline: np.ndarray, blur: float = 0.0) -> np.ndarray:
    """-> (H, W, 1) anti-aliased coverage of the filled outline, optionally blurred."""
    im = Image.new("L", (IMAGE_SIZE * _SS,) * 2, 0)
    ImageDraw.Draw(im).polygon([tuple(q) for q in outline], fill=255)
    return _down(im.filter(ImageFilter.GaussianBlur(blur)) if blur else im)


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """-> (3,) RGB in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _photo(outline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shaded fill, soft drop shadow, textured gradient background -> (H, W, 3)."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE
    d = rng.normal(size=2)
    ramp = (xx * d[0] + yy * d[1])[..., None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    bg = _hsv(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.2, 0.45)) * (1 - ramp)  # a darker scene behind a
    bg = bg + _hsv(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.3, 0.55)) * ramp  # brightly lit object
    cloud = np.asarray(Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).resize((IMAGE_SIZE,) * 2, Image.BICUBIC))
    bg = bg * (0.8 + 0.4 * cloud[..., None] / 255) + rng.normal(0, 0.03, (IMAGE_SIZE, IMAGE_SIZE, 1))
    bg = bg * (1 - 0.55 * _mask(outline + rng.uniform(1.5, 4.0, size=2) * _SS, blur=2.5 * _SS))  # shadow
    light = rng.normal(size=2) / 0.7
    cx, cy = outline.mean(0) / (_SS * IMAGE_SIZE)
    shade = np.clip(0.9 + 1.0 * ((xx - cx) * light[0] + (yy - cy) * light[1]), 0.7, 1.15)[..., None]
    m = _mask(outline)
    return bg * (1 - m) + _hsv(rng.random(), rng.uniform(0.5, 0.9), rng.uniform(0.85, 1.0)) * shade * m


def _art_painting(outline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Painterly palette, blurred edges, short brush strokes over everything -> (H, W, 3)."""
    lum = _PALETTE @ np.array([0.3, 0.59, 0.11])
    i = rng.integers(len(_PALETTE))
    j = rng.choice(np.flatnonzero(np.abs(lum - lum[i]) > 0.3))  # enough contrast to see the shape
    m = _mask(outline, blur=1.0 * _SS)
    base = (_PALETTE[i] + rng.normal(0, 0.04, 3)) * (1 - m) + (_PALETTE[j] + rng.normal(0, 0.04, 3)) * m
    s, n = IMAGE_SIZE * _SS, 35
    big = Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8)).resize((s, s), Image.BILINEAR)
    draw, arr = ImageDraw.Draw(big), np.asarray(big).astype(float)
    xy = rng.integers(0, s, size=(n, 2))
    ang = rng.uniform(0, np.pi) + rng.normal(0, 0.35, n)  # one dominant stroke direction per painting
    half = rng.uniform(1.5, 3.5, (n, 1)) * _SS * np.stack([np.cos(ang), np.sin(ang)], 1)
    cols = np.clip(arr[xy[:, 1], xy[:, 0]] + rng.normal(0, 14, (n, 3)), 0, 255).astype(int)  # paint picks up the colour below
    for k, width in enumerate(rng.integers(2, 4, n)):
        draw.line([tuple(xy[k] - half[k]), tuple(xy[k] + half[k])], fill=tuple(cols[k]), width=int(width))
    return _down(big.filter(ImageFilter.GaussianBlur(0.4 * _SS)))


def _cartoon(outline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flat saturated fill, thick dark outline, flat pale background -> (H, W, 3)."""
    rgb = lambda c: tuple(int(255 * v) for v in c)  # noqa: E731
    im = Image.new("RGB", (IMAGE_SIZE * _SS,) * 2, rgb(_hsv(rng.random(), rng.uniform(0.05, 0.25), 1.0)))
    pts = [tuple(q) for q in outline]
    ImageDraw.Draw(im).polygon(pts, fill=rgb(_hsv(rng.random(), rng.uniform(0.85, 1.0), rng.uniform(0.85, 1.0))))
    ImageDraw.Draw(im).line(pts + pts[:1], fill=(20, 15, 10), width=int(rng.integers(2, 4)) * _SS, joint="curve")
    return _down(im)


def _sketch(outline: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Two or three thin, jittered dark strokes along the outline on white paper, no fill -> (H, W, 3)."""
    closed = np.vstack([outline, outline[:1]])
    dense = np.vstack([a + (b - a) * np.arange(n)[:, None] / n  # resample every ~3 px, so strokes can wobble
                       for a, b in zip(closed[:-1], closed[1:]) for n in [max(1, int(np.linalg.norm(b - a) / (3 * _SS)))]])
    dense = np.vstack([dense, dense[:1]])
    im = Image.new("L", (IMAGE_SIZE * _SS,) * 2, int(rng.uniform(240, 256)))
    ink = int(rng.uniform(0, 60))
    for _ in range(int(rng.integers(2, 4))):
        wobble = rng.normal(0, 0.45 * _SS, dense.shape) + rng.normal(0, 0.6 * _SS, 2)
        ImageDraw.Draw(im).line([tuple(q) for q in dense + wobble], fill=ink, width=int(rng.integers(2, 4)))
    return np.repeat(_down(im), 3, axis=2)


_STYLES = {"photo": _photo, "art_painting": _art_painting, "cartoon": _cartoon, "sketch": _sketch}


def render(cls: str, domain: str, rng: np.random.Generator) -> np.ndarray:
    """One random image of class cls in domain's style -> (H, W, 3) float32 in [0, 1]."""
    return np.clip(_STYLES[domain](_place(cls, rng), rng), 0, 1).astype(np.float32)


class ToyWorld(torch.utils.data.Dataset):
    """n_per_cell images of every (class, domain) cell; item i -> (image (3, H, W) in [0, 1], class, domain).

    Image i is drawn from its own seed (split, seed, i): reproducible, and train and test never share a seed.
    """

    def __init__(self, split: str = "train", n_per_cell: int = 100, seed: int = 0):
        if split not in _SPLITS:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(_SPLITS)}")
        self.split, self.n_per_cell, self.seed = split, n_per_cell, seed

    def __len__(self) -> int:
        return len(CLASSES) * len(DOMAINS) * self.n_per_cell

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, int]:
        if not 0 <= i < len(self):
            raise IndexError(i)
        c, m = divmod(i // self.n_per_cell, len(DOMAINS))
        rng = np.random.default_rng((_SPLITS[self.split], self.seed, i))
        return torch.from_numpy(render(CLASSES[c], DOMAINS[m], rng)).permute(2, 0, 1), c, m


def toy_images(split: str = "test", n_per_cell: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> images (N, 3, H, W) in [0, 1], labels (N,), domains (N,); N = 28 * n_per_cell, cell by cell."""
    ds = ToyWorld(split, n_per_cell, seed)
    images, labels, domains = zip(*(ds[i] for i in range(len(ds))))
    return torch.stack(images), torch.tensor(labels), torch.tensor(domains)


def sample_grid_figure(seed: int = 0, per_cell: int = 1):
    """A labelled classes x domains grid of sample images -> matplotlib Figure."""
    import matplotlib.pyplot as plt

    images, _, _ = toy_images("train", per_cell, seed)
    C, M = len(CLASSES), len(DOMAINS)
    fig, axes = plt.subplots(C, M * per_cell, figsize=(1.1 * M * per_cell + 0.8, 1.1 * C + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        c, col = divmod(k, M * per_cell)
        m, j = divmod(col, per_cell)
        ax.imshow(images[(c * M + m) * per_cell + j].permute(1, 2, 0).numpy(), interpolation="nearest")
        ax.set_xticks([]), ax.set_yticks([])
        if c == 0 and j == 0:
            ax.set_title(DOMAINS[m], fontsize=9)
        if col == 0:
            ax.set_ylabel(CLASSES[c], fontsize=9)
    fig.suptitle(f"ToyWorld ({IMAGE_SIZE} px): classes x domains, seed {seed}", fontsize=10)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------- the model: captions, training, cache
def caption_sets() -> tuple[list[list[str]], list[list[str]]]:
    """-> the captions of each cell (C*M lists, cell c*M+m: the package's domain prompts and a few more)
    and of each class (C lists: the package's class prompts and a few more)."""
    words = DOMAIN_WORDS["toyworld"]
    more_cell = ("a {d} of a {c} shape.", "a {c} shape, {d} style.", "this is a {d} of a {c}.")
    more_class = ("a picture of a {c}.", "a {c} shape.", "the {c}.")
    cells = [domain_prompts(c, m, words) + [t.format(d=words[m], c=c) for t in more_cell] for c in CLASSES for m in DOMAINS]
    return cells, [class_prompts(c, "toyworld") + [t.format(c=c) for t in more_class] for c in CLASSES]


def _mirror(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """(B, 3, H, W) -> each image mirrored left-right with probability 1/2."""
    return torch.where(torch.rand(len(x), 1, 1, 1, generator=g) < 0.5, x.flip(-1), x)


def train_toy_clip(steps: int = TRAIN_DEFAULTS["steps"], batch_size: int = TRAIN_DEFAULTS["batch_size"],
                   pool_per_cell: int = TRAIN_DEFAULTS["pool_per_cell"], lr: float = TRAIN_DEFAULTS["lr"],
                   seed: int = 0, progress: bool = True):
    """Train the toy CLIP from scratch on ToyWorld's train split -> model (eval mode).

    Each step draws one caption per cell and one per class (C*M + C captions, no duplicates). An image of
    cell (c, m) has two positives: its cell's caption and class c's caption. The loss is CLIP's two-way
    cross-entropy with these multi-positive targets: image -> captions and caption -> images of the batch.
    """
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = open_clip.create_model(TOY_CLIP_NAME)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.visual.image_mean, model.visual.image_std))
    images, labels, domains = toy_images("train", pool_per_cell, seed)
    tokenizer, (cell_caps, class_caps) = open_clip.get_tokenizer(TOY_CLIP_NAME), caption_sets()
    token_sets = [tokenizer(caps) for caps in cell_caps + class_caps]  # C*M + C tensors (n_templates, L)
    CM = len(cell_caps)
    model.token_embedding.requires_grad_(False)  # random fixed word vectors suffice for a few hundred captions
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.05)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1, (s + 1) / warm) * 0.5 * (1 + np.cos(np.pi * s / steps)))
    model.train()
    for _ in (bar := tqdm(range(steps), desc="training toy CLIP", disable=not progress)):
        idx = torch.randint(len(images), (batch_size,), generator=g)
        tokens = torch.stack([t[torch.randint(len(t), (), generator=g)] for t in token_sets])
        x = (_mirror(images[idx], g) - mean) / std
        logits = model.logit_scale.exp() * model.encode_image(x, normalize=True) @ model.encode_text(tokens, normalize=True).T
        pos = torch.zeros(batch_size, CM + len(class_caps))
        pos[torch.arange(batch_size), labels[idx] * len(DOMAINS) + domains[idx]] = 1
        pos[torch.arange(batch_size), CM + labels[idx]] = 1
        i2t = -(pos / 2 * logits.log_softmax(1)).sum(1).mean()
        seen = pos.any(0)  # captions with at least one image in the batch
        t2i = -(pos[:, seen] / pos[:, seen].sum(0) * logits[:, seen].log_softmax(0)).sum(0).mean()
        loss = (i2t + t2i) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, np.log(100))
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def toy_features(model, split: str = "test", n_per_cell: int = 50, seed: int = 0) -> FeatureSet:
    """ToyWorld images through the image tower, visual.proj skipped -> FeatureSet of (N, D) pre-projection features."""
    from .evaluate import image_features

    images, labels, domains = toy_images(split, n_per_cell, seed)
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (model.visual.image_mean, model.visual.image_std))
    meta = {"data": f"ToyWorld {split} split ({n_per_cell} per cell, seed {seed})", "model": "toy CLIP",
            "name": f"ToyWorld {split} split, toy CLIP"}
    return FeatureSet(image_features(model, (images - mean) / std), labels, domains, grid_for("toyworld"), meta)


def domain_accuracy(model, tokenizer, data: FeatureSet) -> dict[str, float]:
    """Zero-shot accuracy per domain with the domain-free class prompts -> {domain: accuracy}."""
    from .evaluate import accuracy_matrix
    from .prompts import class_embeddings

    acc = accuracy_matrix(model, data, class_embeddings(model, tokenizer, data.grid))
    return {m: float(np.nanmean(acc[:, j])) for j, m in enumerate(data.grid.domains)}


def cache_path() -> Path:
    """Where the trained toy CLIP is cached: $MINCLIP_CACHE (default ~/.cache/minclip_unlearn)/toy-vit-<recipe>.pt."""
    root = os.environ.get("MINCLIP_CACHE") or Path.home() / ".cache" / "minclip_unlearn"
    return Path(root) / f"{TOY_CLIP_NAME}-{RECIPE}.pt"


def save_atomic(model, path: Path) -> None:
    """Write model.state_dict() to path all at once: a temp file in the same folder, then os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(model.state_dict(), f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def _lock(path: Path):
    """Hold an exclusive lock on path (where fcntl exists), so two processes do not train at once."""
    try:
        import fcntl
    except ImportError:  # Windows: atomic replace alone keeps the cache whole
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def load_toy_clip(pretrained: str | os.PathLike | None = None, device: str = "cpu"):
    """None (the cached model, trained on first use) | checkpoint path -> (model.eval(), preprocess, tokenizer)."""
    path = Path(pretrained) if pretrained is not None else cache_path()
    if pretrained is None and not path.is_file():
        with _lock(path.with_name(path.name + ".lock")):
            if not path.is_file():  # another process may have trained it while we waited
                print(f"minclip_unlearn: training the ToyWorld CLIP once ({TRAIN_DEFAULTS['steps']} steps on the CPU, "
                      f"a few minutes; progress below); cache: {path}")
                start, threads = time.time(), torch.get_num_threads()
                torch.set_num_threads(min(2, os.cpu_count() or 1))
                try:
                    save_atomic(train_toy_clip(), path)
                finally:
                    torch.set_num_threads(threads)
                print(f"minclip_unlearn: trained in {time.time() - start:.0f} s")
    if not path.is_file():
        raise FileNotFoundError(f"no toy CLIP checkpoint at {path}")
    model, _, preprocess = open_clip.create_model_and_transforms(TOY_CLIP_NAME, pretrained=str(path), device=device)
    return model.eval(), preprocess, open_clip.get_tokenizer(TOY_CLIP_NAME)
