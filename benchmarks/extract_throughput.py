"""Feature-extraction throughput on this CPU, against the FLOP-bound ceiling of a bare matmul loop.

    python benchmarks/extract_throughput.py [--images 192] [--batch-size 64] [--threads N]

Runs, on the same CPU in one process:
1. data_scripts/extract_features.encode_paths (the function extract_features.py uses: decode JPEG, preprocess,
   model.visual with proj skipped) on generated 224x224 JPEGs, with a random-init open_clip ViT-B-32;
2. the same forward on already-preprocessed tensors (no decoding), to show where time goes;
3. a bare fp32 matmul loop with the shapes of ViT-B-32's MLP, giving the FLOP rate this CPU can sustain.
Ceiling = that rate / the FLOPs of one image (4.4 GMAC = 8.8 GFLOP for ViT-B-32 at 224 px). Goal: >= 70%.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from data_scripts.extract_features import encode_paths  # noqa: E402
from measure import fix_threads, header, interleave, load_average, median, spread  # noqa: E402


def vit_macs(model) -> float:
    """Multiply-accumulates of one image through model.visual up to (not including) visual.proj."""
    v = model.visual
    width = v.conv1.out_channels
    patch = v.conv1.kernel_size[0]
    grid = v.grid_size[0] * v.grid_size[1]
    n = grid + 1  # tokens, with the class token
    blocks = v.transformer.resblocks
    hidden = blocks[0].mlp.c_fc.out_features
    per_layer = n * width * 3 * width + n * width * width + 2 * n * n * width + 2 * n * width * hidden
    return grid * 3 * patch * patch * width + len(blocks) * per_layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds (median and spread)")
    ap.add_argument("--workers", type=int, default=2, help="image-decoding threads (extract_features.py's default)")
    a = ap.parse_args()
    threads = fix_threads(a.threads)
    import open_clip

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32")
    model.eval()
    flops = 2 * vit_macs(model)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(a.images):  # smooth noise, so JPEG decoding costs what a photo costs
            small = rng.integers(0, 256, (28, 28, 3), dtype=np.uint8)
            im = Image.fromarray(small).resize((224, 224), Image.BICUBIC)
            paths.append(Path(tmp) / f"{i:04d}.jpg")
            im.save(paths[-1], quality=90)
        x = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths[: a.batch_size]])
        tokens = a.batch_size * (model.visual.grid_size[0] * model.visual.grid_size[1] + 1)
        mm_a, mm_b = torch.randn(tokens, 768), torch.randn(768, 3072)
        feats = []

        def e2e():
            feats[:] = [encode_paths(model, preprocess, paths, batch_size=a.batch_size, workers=a.workers)]

        def forward():
            proj, model.visual.proj = model.visual.proj, None
            try:
                with torch.inference_mode():
                    model.visual(x)
            finally:
                model.visual.proj = proj

        def matmul():
            for _ in range(5):
                torch.mm(mm_a, mm_b)

        # a warm-up, then interleaved rounds: the CPU may be shared with other work
        times = interleave({"e2e": e2e, "fwd": forward, "mm": matmul}, repeats=a.rounds)
    rates = {"e2e": [len(paths) / t for t in times["e2e"]], "fwd": [len(x) / t for t in times["fwd"]],
             "mm": [5 * 2 * tokens * 768 * 3072 / t for t in times["mm"]]}
    ceilings = [r / flops for r in rates["mm"]]  # img/s per round
    share = lambda k: median([r / c for r, c in zip(rates[k], ceilings)])  # noqa: E731
    ceiling = median(ceilings)
    print(header(threads))
    print(f"batch {a.batch_size}, {len(paths)} images of 224x224, features {tuple(feats[0].shape)}; median of "
          f"{a.rounds} interleaved rounds after a warm-up (spread = (max - min) / median)")
    print(f"ViT-B-32 image tower: {flops / 2e9:.2f} GMAC = {flops / 1e9:.2f} GFLOP per image")
    print(f"bare matmul ({tokens}x768 @ 768x3072, fp32): {median(rates['mm']) / 1e9:.1f} GFLOP/s "
          f"(spread {spread(rates['mm']):.0%}) -> ceiling {ceiling:.1f} img/s | {load_average()}")
    print(f"model forward only (preprocessed tensors): {median(rates['fwd']):.1f} img/s (spread "
          f"{spread(rates['fwd']):.0%}) = {share('fwd'):.0%} of ceiling | {load_average()}")
    print(f"extract_features.encode_paths (decode + preprocess + forward): {median(rates['e2e']):.1f} img/s (spread "
          f"{spread(rates['e2e']):.0%}) = {share('e2e'):.0%} of ceiling (goal >= 70%) | {load_average()}")


if __name__ == "__main__":
    main()
