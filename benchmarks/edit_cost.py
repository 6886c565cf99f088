"""Benchmark: a DomainNet-scale edit (345 x 6 grid, multimodal, one mask) versus encoding one image.

Prints both times and their ratio, measured in one run on this CPU, with fixed torch threads, a warm-up,
interleaved rounds (median, min-max, spread) and the load average beside every figure. Goal: the fast path
<= 0.3 x encoding one 224 px image with ViT-B-32. Weights are random (timing does not depend on them).

Sides, one call each per round, the order rotating:
- image: model.encode_image of one 224 x 224 image;
- fast edit: the package's call on its Gram path, edit.unlearn(..., gram=G_all, inplace=True) (then
  edit.restore), G_all = edit.all_cells_gram(text_dirs, protos) computed once with the directions and timed
  apart: the retain Gram as G_all - F F^T, U = removed_basis(F, retain_gram=...), visual.proj <- W - alpha (W U) U^T,
  and the record's kept fractions from U (no d x d product with R);
- with --package: edit.unlearn without gram= (it forms R R^T, O(d^2 k_r), for the mask).

    python benchmarks/edit_cost.py [--prototypes 2] [--repeats 9] [--threads 1] [--package]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from measure import fix_threads, header, interleave, load_average, median, paired_ratio, show, timed  # noqa: E402
from minclip_unlearn import edit, paradigms  # noqa: E402
from minclip_unlearn.models import load_clip  # noqa: E402


def fast_edit(model, grid, mask: torch.Tensor, text_dirs: torch.Tensor, protos: torch.Tensor | None,
              all_gram: torch.Tensor, alpha: float = 1.0, rho: float = 0.99) -> dict:
    """The package's Gram path: edit.unlearn(..., gram=all_gram, inplace=True), multimodal if protos is given,
    else text; return its record (rank removed, kept fractions). Undo it with edit.restore(model)."""
    mode = "text" if protos is None else "multimodal"
    edited = edit.unlearn(model, grid, mask, text_dirs, protos, mode=mode, alpha=alpha, rho=rho, inplace=True,
                          gram=all_gram)
    return edited.minclip_records[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prototypes", type=int, default=2, help="precomputed prototypes per cell")
    parser.add_argument("--repeats", type=int, default=9, help="interleaved rounds after one warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, fixed for every side")
    parser.add_argument("--package", action="store_true", help="also time edit.unlearn as the package has it")
    args = parser.parse_args()
    threads = fix_threads(args.threads)
    torch.manual_seed(0)
    model, _, _ = load_clip("ViT-B-32")
    grid = paradigms.grid_for("domainnet")
    d = model.visual.proj.shape[1]
    normal = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape), dim=-1)  # noqa: E731
    text_dirs, protos = normal(*grid.shape, d), normal(*grid.shape, args.prototypes, d)
    mask = paradigms.forget_classes_in_domains(grid, ["zebra", "lion"], ["sketch", "quickdraw"])
    image = torch.randn(1, 3, 224, 224)
    t_gram = [timed(lambda: edit.all_cells_gram(text_dirs, protos)) for _ in range(3)]
    all_gram = edit.all_cells_gram(text_dirs, protos)

    def encode():
        with torch.inference_mode():
            model.encode_image(image)

    def fast():
        fast_edit(model, grid, mask, text_dirs, protos, all_gram)
        edit.restore(model)

    def package():
        edit.unlearn(model, grid, mask, text_dirs, protos, inplace=True)
        edit.restore(model)

    sides = {"image": encode, "fast": fast} | ({"package": package} if args.package else {})
    times = interleave(sides, repeats=args.repeats)
    record = fast_edit(model, grid, mask, text_dirs, protos, all_gram)
    edit.restore(model)
    k_f = int(mask.sum()) * (1 + args.prototypes)
    k_r = (grid.shape[0] * grid.shape[1] - int(mask.sum())) * (1 + args.prototypes)
    print(header(threads))
    print(f"grid {grid.shape[0]} x {grid.shape[1]}, d = {d}, {args.prototypes} prototypes per cell: "
          f"k_f = {k_f}, k_r = {k_r}; rank removed {record['rank_removed']}, forget kept "
          f"{record['forget_norm_kept']:.3f}, retain kept {record['retain_norm_kept']:.3f}")
    print(show("once per model and grid: Gram of all cells' directions", t_gram))
    print(show("fast edit: edit.unlearn(..., gram=G_all, inplace=True)    ", times["fast"]))
    if args.package:
        print(show("edit.unlearn without gram= (forms R R^T; in place)        ", times["package"]))
    print(show("encode one 224x224 image with ViT-B-32                    ", times["image"]))
    r, lo, hi = paired_ratio(times["fast"], times["image"])
    print(f"ratio fast edit / image: {r:.2f} (per-round min-max {lo:.2f}-{hi:.2f}; ratio of medians "
          f"{median(times['fast']) / median(times['image']):.2f}) -- goal <= 0.3 | {load_average()}")
    if args.package:
        r, lo, hi = paired_ratio(times["package"], times["image"])
        print(f"ratio edit.unlearn without gram= / image: {r:.2f} (per-round min-max {lo:.2f}-{hi:.2f}) | "
              f"{load_average()}")


if __name__ == "__main__":
    main()
