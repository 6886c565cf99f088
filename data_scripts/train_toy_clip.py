"""Reproduce the toy CLIP that the package ships: train it from scratch on ToyWorld and write the checkpoint.

    python data_scripts/train_toy_clip.py                       # into minclip_unlearn/data/ (replaces the shipped one)
    python data_scripts/train_toy_clip.py --out toy.pt          # anywhere; then load_clip("toy", pretrained="toy.pt")
    python data_scripts/train_toy_clip.py --steps 20 --pool-size 500 --out /tmp/t.pt   # a smoke run of the recipe

Seeded; uses CUDA when present; on the CPU it uses --threads threads (the shipped checkpoint: 1). Training is
deterministic for a fixed device and thread count. It prints its time, the checkpoint's size and held-out accuracy.
The checkpoint is an fp16 open_clip state_dict; `open_clip.create_model_and_transforms("toy-vit", pretrained=PATH)`
loads it once minclip_unlearn.worlds is imported (it registers the config); its tokenizer is
`minclip_unlearn.worlds.tokenizer()` (a word-level one over the toy language, not CLIP's BPE).
"""
from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import torch

from minclip_unlearn.worlds import toy, toy_model


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, train, save checkpoint + metadata, report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=toy.checkpoint_path(), help="checkpoint path (default: %(default)s)")
    p.add_argument("--steps", type=int, default=toy_model.RECIPE["steps"])
    p.add_argument("--pool-size", type=int, default=toy_model.RECIPE["pool_size"], help="training images drawn up front")
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default: %(default)s, as the shipped checkpoint)")
    p.add_argument("--eval-per-cell", type=int, default=50, help="held-out test images per grid cell for the report")
    args = p.parse_args(argv)
    if args.steps < 1 or args.pool_size < 1 or args.threads < 1:
        p.error("--steps, --pool-size and --threads must be >= 1")
    if args.out.is_dir():
        p.error(f"--out {args.out} is a folder; give a file path such as {args.out / 'toy.pt'}")
    torch.set_num_threads(args.threads)
    recipe = {**toy_model.RECIPE, "steps": args.steps, "pool_size": args.pool_size}
    model, seconds = toy_model.train_toy_clip(recipe)
    with torch.no_grad():  # evaluate the fp16 weights that are saved, as every reader will load them
        for p in model.parameters():
            p.copy_(p.half().float())
    accuracy = toy.domain_accuracy(model, toy_model.tokenizer(), toy.toy_features(model, "test", args.eval_per_cell, cache=False))
    meta = {
        "world_hash": toy_model.world_hash(), "recipe_hash": toy_model.recipe_hash(recipe), "recipe": recipe,
        "model_config": toy_model.model_config(), "train_seconds": round(seconds, 1), "threads": args.threads,
        "device": "cuda" if torch.cuda.is_available() else "cpu", "torch": torch.__version__,
        "python": platform.python_version(), "held_out_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        "held_out": f"ToyWorld test split, {args.eval_per_cell} images per grid cell, seed 0",
    }
    path, meta_path = toy_model.save_checkpoint(model, args.out, meta)
    print(f"trained in {seconds:.0f} s ({seconds / 60:.1f} min); checkpoint {path} ({path.stat().st_size / 2**20:.2f} MiB), "
          f"metadata {meta_path}")
    print("held-out zero-shot accuracy per grid domain:", {k: round(v, 3) for k, v in accuracy.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
