"""Command line: `python -m minclip_unlearn forget ...` writes an edited checkpoint and its record."""
from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from . import edit, paradigms, prompts, prototypes
from .models import load_clip


def build_mask(grid: paradigms.ConceptGrid, classes: list[str] | None, domains: list[str] | None) -> torch.Tensor:
    """--classes / --domains -> (C, M) mask: global, domain-specific, or complete-domain forgetting."""
    if classes and domains:
        return paradigms.forget_classes_in_domains(grid, classes, domains)
    if classes:
        return paradigms.forget_classes(grid, classes)
    if domains:
        return paradigms.forget_domains(grid, domains)
    raise ValueError("name what to forget: --classes, --domains, or both")


def forget(args: argparse.Namespace) -> int:
    """Run one edit from parsed arguments and print a short summary."""
    start = time.perf_counter()
    grid = paradigms.grid_for(args.dataset)
    mask = build_mask(grid, args.classes, args.domains)
    edit.check_writable(args.out, args.overwrite)  # fail before the slow part
    model, _, tokenizer = load_clip(args.model, args.pretrained)
    text_dirs = prompts.text_directions(model, tokenizer, grid, progress=True)
    protos = None
    if args.mode == "multimodal":
        cfg = prototypes.SynthesisConfig(n=args.prototypes, steps=args.steps, seed=args.seed)
        protos = prototypes.grid_prototypes(model, text_dirs, grid, cfg)
    edited = edit.unlearn(model, grid, mask, text_dirs, protos, mode=args.mode, method=args.method,
                          alpha=args.alpha, rho=args.rho, lam=args.lam, mu=args.mu, inplace=True)
    ckpt, rec = edit.save_edited(edited, args.out, overwrite=args.overwrite)
    record = edited.minclip_records[-1]
    print(f"forgot {len(record['forgotten'])} cell(s) of {args.dataset}: "
          + ", ".join(f"{c}/{m}" for c, m in record["forgotten"][:8]) + (" ..." if len(record["forgotten"]) > 8 else ""))
    print(f"mode={args.mode} method={args.method} alpha={args.alpha} rank removed={record['rank_removed']}")
    print(f"norm kept by the edit: forget directions {record['forget_norm_kept']:.3f}, "
          f"retain directions {record['retain_norm_kept']:.3f}")
    print(f"wrote {ckpt} and {rec} in {time.perf_counter() - start:.1f} s")
    return 0


def info(args: argparse.Namespace) -> int:
    """Print the record saved beside an edited checkpoint."""
    print(json.dumps(edit.load_record(args.checkpoint), indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run a subcommand; bad input exits with status 2 and one clear message."""
    parser = argparse.ArgumentParser(prog="python -m minclip_unlearn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    f = sub.add_parser("forget", help="edit a CLIP so that it forgets classes and/or domains")
    f.add_argument("--model", required=True, help="open_clip architecture (e.g. ViT-B-32) or 'toy'")
    f.add_argument("--pretrained", default=None, help="pretrained tag (e.g. openai) or a local checkpoint path")
    f.add_argument("--dataset", required=True, choices=["pacs", "domainnet", "toyworld"])
    f.add_argument("--classes", nargs="+", help="classes to forget (all domains unless --domains)")
    f.add_argument("--domains", nargs="+", help="domains to forget in (all classes unless --classes)")
    f.add_argument("--mode", default="multimodal", choices=edit.MODES)
    f.add_argument("--method", default="hard", choices=edit.METHODS)
    f.add_argument("--alpha", type=float, default=1.0, help="strength in [0, 1] (hard method)")
    f.add_argument("--rho", type=float, default=0.99, help="retain energy kept protected (hard method)")
    f.add_argument("--lam", type=float, default=100.0, help="forget weight (soft method)")
    f.add_argument("--mu", type=float, default=10.0, help="retain weight (soft method)")
    f.add_argument("--prototypes", type=int, default=2, help="visual prototypes per cell (multimodal)")
    f.add_argument("--steps", type=int, default=100, help="synthesis steps per prototype batch")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--out", required=True, help="path of the edited checkpoint (its record goes beside it as .json)")
    f.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    f.set_defaults(run=forget)
    i = sub.add_parser("info", help="show what an edited checkpoint forgot, and how")
    i.add_argument("checkpoint")
    i.set_defaults(run=info)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileExistsError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
