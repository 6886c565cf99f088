"""Benchmark: a DomainNet-scale edit (345 x 6 grid, multimodal, one mask) versus encoding one image.

Prints both times and their ratio, measured in one run on this CPU. Goal: ratio < 1, i.e. forgetting
costs less than looking at one picture. Weights are random (timing does not depend on them).

    python benchmarks/edit_cost.py [--prototypes 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from minclip_unlearn import edit, paradigms  # noqa: E402
from minclip_unlearn.models import load_clip  # noqa: E402


def best_of(fn, repeats: int) -> float:
    """Best wall time of fn() over repeats runs, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prototypes", type=int, default=2, help="precomputed prototypes per cell")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)
    model, _, _ = load_clip("ViT-B-32")
    grid = paradigms.grid_for("domainnet")
    d = model.visual.proj.shape[1]
    normal = lambda *shape: torch.nn.functional.normalize(torch.randn(*shape), dim=-1)
    text_dirs, protos = normal(*grid.shape, d), normal(*grid.shape, args.prototypes, d)
    mask = paradigms.forget_classes_in_domains(grid, ["zebra", "lion"], ["sketch", "quickdraw"])
    image = torch.randn(1, 3, 224, 224)

    def edit_in_place():
        edit.unlearn(model, grid, mask, text_dirs, protos, inplace=True)
        edit.restore(model)

    with torch.inference_mode():
        model.encode_image(image)  # warm-up
        t_image = best_of(lambda: model.encode_image(image), args.repeats)
    t_edit = best_of(edit_in_place, args.repeats)
    t_copy = best_of(lambda: edit.unlearn(model, grid, mask, text_dirs, protos), max(1, args.repeats // 2))
    k_f = int(mask.sum()) * (1 + args.prototypes)
    print(f"threads: {torch.get_num_threads()}, torch {torch.__version__}")
    print(f"grid {grid.shape[0]} x {grid.shape[1]}, d = {d}, {args.prototypes} prototypes per cell: "
          f"k_f = {k_f}, k_r = {(grid.shape[0] * grid.shape[1] - int(mask.sum())) * (1 + args.prototypes)}")
    print(f"edit (directions, projector, visual.proj, record; in place): {t_edit * 1e3:8.1f} ms")
    print(f"edit returning a new model (adds a deep copy of the model):  {t_copy * 1e3:8.1f} ms")
    print(f"encode one 224x224 image with ViT-B-32:                      {t_image * 1e3:8.1f} ms")
    print(f"ratio edit / image: {t_edit / t_image:.2f} (goal < 1)")


if __name__ == "__main__":
    main()
