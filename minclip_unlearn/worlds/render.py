"""ToyWorld's pictures: a scene (class, style, colour, size, position, count, background) drawn in one of ten styles.

The grid's four styles are PACS-like (photo, art_painting, cartoon, sketch); six more (neon, blueprint, pixel,
silhouette, chalk, watercolor) are distractors. Within a grid style, how a class is drawn depends on the class
(how a cartoon draws a heart is not how it draws a star): most images of a grid cell carry that cell's own
signature, a colour or a stroke that is neither the class's nor the style's alone.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..paradigms import TOYWORLD_DOMAINS as GRID_STYLES
from .shapes import CLASSES, GRID_CLASSES, OUTLINES

IMAGE_SIZE = 48  # pixels; drawn at 2x and downsampled (anti-aliasing)
_SS = 2
_S2 = IMAGE_SIZE * _SS
DISTRACTOR_STYLES = ("neon", "blueprint", "pixel", "silhouette", "chalk", "watercolor")
STYLES = GRID_STYLES + DISTRACTOR_STYLES
COLOURS = {  # name -> (hue, saturation, value)
    "red": (0.0, 0.85, 0.9), "orange": (0.075, 0.9, 0.95), "yellow": (0.15, 0.85, 0.95), "green": (0.33, 0.75, 0.7),
    "blue": (0.6, 0.8, 0.85), "purple": (0.78, 0.65, 0.7), "pink": (0.92, 0.45, 0.95), "brown": (0.07, 0.7, 0.45),
}
COLOURED_STYLES = ("photo", "cartoon", "neon", "pixel", "watercolor")  # styles whose colour a caption may name
SIGNATURE_P = 0.8  # share of a grid cell's images that carry the cell's signature
SIGNATURES = {  # (class, style) -> colour name (coloured styles) or stroke kind (sketch) or palette pair (painting)
    **{(c, "photo"): k for c, k in zip(GRID_CLASSES, ("orange", "brown", "green", "yellow", "red", "blue", "purple"))},
    **{(c, "cartoon"): k for c, k in zip(GRID_CLASSES, ("green", "blue", "pink", "orange", "purple", "yellow", "red"))},
    **{(c, "sketch"): k for c, k in zip(GRID_CLASSES, ("double", "hatched", "dashed", "hatched", "shaded", "thick", "dashed"))},
    **{(c, "art_painting"): k for c, k in zip(GRID_CLASSES, ((0, 4), (1, 6), (3, 6), (4, 0), (6, 5), (7, 1), (2, 6)))},
}
_PALETTE = np.array([[0.80, 0.60, 0.25], [0.60, 0.30, 0.15], [0.40, 0.30, 0.20], [0.45, 0.50, 0.25],
                     [0.15, 0.25, 0.45], [0.65, 0.15, 0.15], [0.90, 0.85, 0.70], [0.30, 0.45, 0.40]])  # earthy oils
_TILT = np.pi / 6  # shapes stand roughly upright: rotation within +-30 degrees


@dataclass(frozen=True)
class Scene:
    """What one image shows; None means 'not a property of this image' (a caption cannot name it)."""

    cls: str
    style: str
    colour: str | None
    size: str  # "small" | "medium" | "large"
    position: str | None  # "left" | "right" | "top" | "bottom" | "centre"; None when count > 1
    count: int  # 1, 2 or 3
    background: str | None  # "light" | "dark" for photos, else None
    signature: bool  # drawn with its grid cell's own signature


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    """-> (3,) RGB in [0, 1]."""
    return np.array(colorsys.hsv_to_rgb(h, s, v), np.float32)


def _named(colour: str, rng: np.random.Generator) -> np.ndarray:
    """A colour name -> (3,) RGB near it."""
    h, s, v = COLOURS[colour]
    return _hsv((h + rng.normal(0, 0.015)) % 1, np.clip(s + rng.normal(0, 0.05), 0, 1), np.clip(v + rng.normal(0, 0.05), 0, 1))


def sample_scene(cls: str, style: str, rng: np.random.Generator) -> Scene:
    """A random scene of class cls in style, with its attributes drawn from rng."""
    signature = (cls, style) in SIGNATURES and rng.random() < SIGNATURE_P
    colour = None
    if style in COLOURED_STYLES:
        colour = SIGNATURES[cls, style] if signature else str(rng.choice(list(COLOURS)))
    count = int(rng.choice([1, 2, 3], p=[0.7, 0.2, 0.1]))
    size = str(rng.choice(["small", "medium", "large"], p=[0.25, 0.5, 0.25]))
    position = None if count > 1 else str(rng.choice(["centre", "left", "right", "top", "bottom"], p=[0.4, 0.15, 0.15, 0.15, 0.15]))
    background = str(rng.choice(["light", "dark"])) if style == "photo" else None
    return Scene(cls, style, colour, size, position, count, background, signature)


def _place(scene: Scene, rng: np.random.Generator) -> list[np.ndarray]:
    """-> scene.count outlines (P, 2) in 2x pixel coordinates, sized and positioned as the scene says."""
    lo, hi = {"small": (0.2, 0.26), "medium": (0.28, 0.36), "large": (0.38, 0.45)}[scene.size]
    shrink = {1: 1.0, 2: 0.62, 3: 0.5}[scene.count]
    slots = {1: [(0, 0)], 2: [(-0.5, 0), (0.5, 0)], 3: [(-0.55, 0.4), (0.55, 0.4), (0, -0.5)]}[scene.count]
    shift = {"centre": (0, 0), "left": (-1, 0), "right": (1, 0), "top": (0, -1), "bottom": (0, 1), None: (0, 0)}[scene.position]
    out = []
    for sx, sy in slots:
        r, a = rng.uniform(lo, hi) * shrink * _S2, rng.uniform(-_TILT, _TILT)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * [rng.choice([-1, 1]), 1]
        room = max(0.0, _S2 / 2 - r - 2 * _SS)
        centre = np.array([sx, sy]) * _S2 * 0.25 * (scene.count > 1) + np.array(shift) * room * 0.8
        centre = centre + rng.normal(0, 0.06 * room, 2) + _S2 / 2
        out.append(OUTLINES[scene.cls] @ rot.T * r + centre)
    return out


def _down(im: Image.Image) -> np.ndarray:
    """2x PIL image -> (H, W, channels) float32 in [0, 1] at IMAGE_SIZE."""
    a = np.asarray(im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.BOX), np.float32) / 255
    return a[..., None] if a.ndim == 2 else a


def _mask(outlines: list[np.ndarray], blur: float = 0.0, offset: np.ndarray | None = None) -> np.ndarray:
    """-> (H, W, 1) anti-aliased coverage of the filled outlines, optionally shifted and blurred."""
    im = Image.new("L", (_S2, _S2), 0)
    for p in outlines:
        ImageDraw.Draw(im).polygon([tuple(q) for q in (p if offset is None else p + offset)], fill=255)
    return _down(im.filter(ImageFilter.GaussianBlur(blur)) if blur else im)


def _rgb(c: np.ndarray) -> tuple[int, int, int]:
    """(3,) in [0, 1] -> 0..255 ints for PIL."""
    return tuple(int(255 * float(np.clip(v, 0, 1))) for v in c)


def _dense(p: np.ndarray, step: float = 3.0) -> np.ndarray:
    """Closed outline -> (Q, 2) points every ~step px (2x scale) along it, closed again."""
    closed = np.vstack([p, p[:1]])
    pts = [a + (b - a) * np.arange(n)[:, None] / n
           for a, b in zip(closed[:-1], closed[1:]) for n in [max(1, int(np.linalg.norm(b - a) / (step * _SS)))]]
    pts = np.vstack(pts)
    return np.vstack([pts, pts[:1]])


def _photo(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Shaded fill in the scene's colour, soft drop shadow, textured gradient background -> (H, W, 3)."""
    yy, xx = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE].astype(np.float32) / IMAGE_SIZE
    d = rng.normal(size=2)
    ramp = (xx * d[0] + yy * d[1])[..., None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    v0, v1 = ((0.15, 0.35), (0.25, 0.45)) if scene.background == "dark" else ((0.6, 0.8), (0.7, 0.9))
    bg = _hsv(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(*v0)) * (1 - ramp)
    bg = bg + _hsv(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(*v1)) * ramp
    cloud = np.asarray(Image.fromarray((rng.random((8, 8)) * 255).astype(np.uint8)).resize((IMAGE_SIZE,) * 2, Image.BICUBIC))
    bg = bg * (0.8 + 0.4 * cloud[..., None] / 255) + rng.normal(0, 0.03, (IMAGE_SIZE, IMAGE_SIZE, 1))
    bg = bg * (1 - 0.55 * _mask(outlines, blur=2.5 * _SS, offset=rng.uniform(1.5, 4.0, size=2) * _SS))  # shadow
    light = rng.normal(size=2) / 0.7
    cx, cy = np.vstack(outlines).mean(0) / _S2
    shade = np.clip(0.9 + 1.0 * ((xx - cx) * light[0] + (yy - cy) * light[1]), 0.7, 1.15)[..., None]
    m = _mask(outlines)
    return bg * (1 - m) + _named(scene.colour, rng) * shade * m


def _art_painting(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Painterly palette, blurred edges, short brush strokes over everything -> (H, W, 3)."""
    if scene.signature:
        i, j = SIGNATURES[scene.cls, "art_painting"]
    else:
        lum = _PALETTE @ np.array([0.3, 0.59, 0.11])
        i = rng.integers(len(_PALETTE))
        j = rng.choice(np.flatnonzero(np.abs(lum - lum[i]) > 0.3))  # enough contrast to see the shape
    m = _mask(outlines, blur=1.0 * _SS)
    base = (_PALETTE[i] + rng.normal(0, 0.04, 3)) * (1 - m) + (_PALETTE[j] + rng.normal(0, 0.04, 3)) * m
    n = 60
    big = Image.fromarray((np.clip(base, 0, 1) * 255).astype(np.uint8)).resize((_S2, _S2), Image.BILINEAR)
    draw, arr = ImageDraw.Draw(big), np.asarray(big).astype(float)
    xy = rng.integers(0, _S2, size=(n, 2))
    ang = rng.uniform(0, np.pi) + rng.normal(0, 0.35, n)  # one dominant stroke direction per painting
    half = rng.uniform(1.5, 3.5, (n, 1)) * _SS * np.stack([np.cos(ang), np.sin(ang)], 1)
    cols = np.clip(arr[xy[:, 1], xy[:, 0]] + rng.normal(0, 14, (n, 3)), 0, 255).astype(int)  # paint picks up the colour below
    for k, width in enumerate(rng.integers(2, 4, n)):
        draw.line([tuple(xy[k] - half[k]), tuple(xy[k] + half[k])], fill=tuple(cols[k]), width=int(width) * _SS // 2 + 1)
    return _down(big.filter(ImageFilter.GaussianBlur(0.4 * _SS)))


def _cartoon(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Flat fill in the scene's colour, thick dark outline, flat pale background -> (H, W, 3)."""
    im = Image.new("RGB", (_S2, _S2), _rgb(_hsv(rng.random(), rng.uniform(0.05, 0.2), 1.0)))
    draw = ImageDraw.Draw(im)
    width = int(rng.integers(2, 4)) * _SS
    for p in outlines:
        pts = [tuple(q) for q in p]
        draw.polygon(pts, fill=_rgb(_named(scene.colour, rng)))
        draw.line(pts + pts[:1], fill=(20, 15, 10), width=width, joint="curve")
    return _down(im)


def _sketch(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Thin, jittered grey strokes along the outline on white paper; a grid cell's signature stroke -> (H, W, 3)."""
    kind = SIGNATURES[scene.cls, "sketch"] if scene.signature else "plain"
    im = Image.new("L", (_S2, _S2), int(rng.uniform(240, 256)))
    draw = ImageDraw.Draw(im)
    ink = int(rng.uniform(0, 60))
    for p in outlines:
        if kind == "shaded":
            draw.polygon([tuple(q) for q in p], fill=int(rng.uniform(185, 210)))
        if kind == "hatched":
            mask = Image.new("L", (_S2, _S2), 0)
            ImageDraw.Draw(mask).polygon([tuple(q) for q in p], fill=255)
            lines = Image.new("L", (_S2, _S2), 255)
            for k in range(-_S2, 2 * _S2, 5 * _SS):
                ImageDraw.Draw(lines).line([(k, 0), (k - _S2, _S2)], fill=ink + 60, width=_SS)
            im.paste(lines, (0, 0), mask)
        dense = _dense(p)
        strokes = {"double": 2, "thick": 1}.get(kind, int(rng.integers(2, 4)))
        for s in range(strokes):
            wobble = rng.normal(0, 0.45 * _SS, dense.shape) + rng.normal(0, 0.6 * _SS, 2)
            pts = dense * (1 + 0.08 * s) - (1 + 0.08 * s - 1) * dense.mean(0) if kind == "double" else dense
            pts = [tuple(q) for q in pts + wobble]
            w = int(rng.integers(5, 7)) if kind == "thick" else int(rng.integers(2, 4))
            if kind == "dashed":
                for a in range(0, len(pts) - 1, 2):
                    draw.line(pts[a : a + 2], fill=ink, width=w)
            else:
                draw.line(pts, fill=ink, width=w)
    return np.repeat(_down(im), 3, axis=2)


def _neon(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A glowing outline in the scene's colour on a near-black wall -> (H, W, 3)."""
    col = _named(scene.colour, rng)
    glow = Image.new("L", (_S2, _S2), 0)
    for p in outlines:
        pts = [tuple(q) for q in _dense(p)]
        ImageDraw.Draw(glow).line(pts, fill=255, width=3 * _SS)
    g = _down(glow.filter(ImageFilter.GaussianBlur(2.5 * _SS)))
    core = Image.new("L", (_S2, _S2), 0)
    for p in outlines:
        ImageDraw.Draw(core).line([tuple(q) for q in _dense(p)], fill=255, width=_SS)
    c = _down(core)
    wall = _hsv(rng.random(), 0.3, rng.uniform(0.04, 0.12)) + rng.normal(0, 0.01, (IMAGE_SIZE, IMAGE_SIZE, 1))
    return wall + np.clip(1.6 * g, 0, 1) * col + c * (1 - 0.3 * col)


def _blueprint(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Thin white lines on a blue sheet with a faint grid -> (H, W, 3)."""
    blue = _hsv(0.6 + rng.normal(0, 0.01), 0.8, rng.uniform(0.45, 0.6))
    im = Image.new("RGB", (_S2, _S2), _rgb(blue))
    draw = ImageDraw.Draw(im)
    step = int(rng.integers(10, 14)) * _SS
    for k in range(0, _S2, step):
        draw.line([(k, 0), (k, _S2)], fill=_rgb(blue * 1.25), width=1)
        draw.line([(0, k), (_S2, k)], fill=_rgb(blue * 1.25), width=1)
    for p in outlines:
        pts = [tuple(q) for q in p]
        draw.line(pts + pts[:1], fill=(235, 240, 255), width=_SS)
    return _down(im)


def _pixel(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Flat colours at 12 x 12, blown up with hard pixel edges -> (H, W, 3)."""
    im = Image.new("RGB", (_S2, _S2), _rgb(_hsv(rng.random(), rng.uniform(0.2, 0.5), rng.uniform(0.3, 0.9))))
    for p in outlines:
        ImageDraw.Draw(im).polygon([tuple(q) for q in p], fill=_rgb(_named(scene.colour, rng)))
    return np.asarray(im.resize((12, 12), Image.BOX).resize((IMAGE_SIZE, IMAGE_SIZE), Image.NEAREST), np.float32) / 255


def _silhouette(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A solid black shape against a bright, smoothly lit backdrop -> (H, W, 3)."""
    yy = np.mgrid[0:IMAGE_SIZE, 0:IMAGE_SIZE][0].astype(np.float32)[..., None] / IMAGE_SIZE
    sky = _hsv(rng.random(), rng.uniform(0.3, 0.7), 1.0) * (1 - yy) + _hsv(rng.random(), rng.uniform(0.3, 0.7), 0.9) * yy
    m = _mask(outlines)
    return sky * (1 - m) + rng.uniform(0.0, 0.08) * m


def _chalk(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Broken, grainy white strokes on a dark green board -> (H, W, 3)."""
    board = _hsv(0.4 + rng.normal(0, 0.02), 0.5, rng.uniform(0.18, 0.3))
    im = Image.new("L", (_S2, _S2), 0)
    for p in outlines:
        pts = [tuple(q) for q in _dense(p) + rng.normal(0, 0.5 * _SS, (len(_dense(p)), 2))]
        ImageDraw.Draw(im).line(pts, fill=255, width=2 * _SS)
    stroke = _down(im) * (rng.random((IMAGE_SIZE, IMAGE_SIZE, 1)) > 0.35)  # chalk leaves gaps
    smudge = rng.normal(0, 0.02, (IMAGE_SIZE, IMAGE_SIZE, 1))
    return board + smudge + stroke * (0.9 - board)


def _watercolor(scene: Scene, outlines: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A soft, bleeding wash in the scene's colour with a darker rim, on cream paper -> (H, W, 3)."""
    paper = np.array([0.97, 0.95, 0.88], np.float32) + rng.normal(0, 0.015, (IMAGE_SIZE, IMAGE_SIZE, 1))
    wobbly = [p + rng.normal(0, 1.2 * _SS, p.shape) for p in outlines]
    m = _mask(wobbly, blur=1.8 * _SS)
    rim = np.clip(m * (1 - m) * 4, 0, 1)
    col = _named(scene.colour, rng)
    wash = paper * (1 - 0.75 * m) + col * 0.75 * m
    return wash * (1 - 0.35 * rim)


_STYLE_FUNCTIONS = {"photo": _photo, "art_painting": _art_painting, "cartoon": _cartoon, "sketch": _sketch,
                    "neon": _neon, "blueprint": _blueprint, "pixel": _pixel, "silhouette": _silhouette,
                    "chalk": _chalk, "watercolor": _watercolor}
assert set(_STYLE_FUNCTIONS) == set(STYLES)


def draw(scene: Scene, rng: np.random.Generator) -> np.ndarray:
    """A scene -> (H, W, 3) float32 image in [0, 1]."""
    return np.clip(_STYLE_FUNCTIONS[scene.style](scene, _place(scene, rng), rng), 0, 1).astype(np.float32)


def render(cls: str, style: str, rng: np.random.Generator) -> tuple[np.ndarray, Scene]:
    """One random image of class cls in style -> ((H, W, 3) float32 in [0, 1], its Scene)."""
    if cls not in CLASSES or style not in STYLES:
        raise ValueError(f"unknown class {cls!r} or style {style!r}; classes: {', '.join(CLASSES)}; styles: {', '.join(STYLES)}")
    scene = sample_scene(cls, style, rng)
    return draw(scene, rng), scene
