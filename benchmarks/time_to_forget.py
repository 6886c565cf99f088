"""Benchmark: how long until ViT-B-32 has forgotten one class everywhere, on this CPU? PACS (7 x 4), DomainNet (345 x 6).

The whole path of one global forget ("dog" in every domain), stage by stage, with a random-init ViT-B-32
(a random init has the FLOPs of a pretrained model):
1. text directions: every cell's prompt ensemble and the class prompts, through the text tower at each
   batch's longest prompt (prompts.encode_text), and the Gram of all cells' directions, computed once;
2. prototypes: pixel-space synthesis for the forget cells only (grid_prototypes(cells=mask)); the cost of
   synthesising every cell is printed beside it;
3. projector: the nullspace Gram path for this mask (retain Gram G_all - F F^T, U = removed_basis);
4. edit: visual.proj <- W - alpha (W U) U^T (edit.apply_basis) and the record's kept fractions from U, timed
   on their own; the package's whole call, edit.unlearn(..., gram=G_all, inplace=True), is printed beside;
5. evaluation on cached features: zero-shot accuracy per cell (evaluate.accuracy_matrix) over N cached
   pre-projection features (PACS: its 9,991 images; DomainNet: its 176,743 test images).

Each stage prints its wall time and its share of two ceilings measured in the same run: a bare torch matmul
(fp32, and fp64 for the float64 projector), and a forward-backward of the image tower at the synthesis batch
(the work one synthesis step cannot avoid). FLOPs are counted by torch.utils.flop_counter (matmuls, attention,
convolutions; eigh is added as 9 d^3). Prototype synthesis is timed over a few steps and extrapolated to the
configured step count; with --quick, text and evaluation are timed on a sample and extrapolated too. Every
extrapolated figure says so.

    python benchmarks/time_to_forget.py [--quick] [--threads 1] [--scales pacs domainnet]
"""
from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from edit_cost import fast_edit  # noqa: E402
from measure import (count_flops, fix_threads, header, interleave, load_average, matmul_rate,  # noqa: E402
                     matmul_side, median, share, show, timed)
from minclip_unlearn import edit as package_edit  # noqa: E402
from minclip_unlearn import evaluate, paradigms, prompts, prototypes  # noqa: E402
from minclip_unlearn.datasets import FeatureSet  # noqa: E402
from minclip_unlearn.models import load_clip  # noqa: E402
from minclip_unlearn.nullspace import kept_fraction, removed_basis, retain_gram  # noqa: E402

TEST_IMAGES = {"pacs": 9_991, "domainnet": 176_743}  # PACS: every image; DomainNet: the official test lists
FORGET = "dog"


def all_prompts(grid) -> list[str]:
    """Every cell's domain-aware prompts, then every class's domain-free prompts."""
    cells = [p for c in grid.classes for m in grid.domains for p in prompts.domain_prompts(c, m, grid.domain_words)]
    return cells + [p for c in grid.classes for p in prompts.class_prompts(c, grid.name)]


def sample(xs: list, k: int) -> list:
    """k items spread evenly over xs (all of them if k >= len(xs))."""
    if k >= len(xs):
        return list(xs)
    step = len(xs) / k
    return [xs[int(i * step)] for i in range(k)]


def full_context(model, tokenizer, texts: list[str]) -> None:
    """The waste removed: open_clip's encode_text at the full padded context, batches of 256."""
    with torch.no_grad():
        for i in range(0, len(texts), 256):
            model.encode_text(tokenizer(texts[i : i + 256]), normalize=True)


def fwd_bwd(model, batch: int):
    """The forward-backward ceiling: a function running the image tower forward and backward w.r.t. a
    (batch, 3, H, W) input, weights frozen (what one synthesis step cannot avoid)."""
    x = torch.randn(batch, 3, *tuple(model.visual.image_size), requires_grad=True)

    def step():
        requires = [p.requires_grad for p in model.parameters()]
        model.requires_grad_(False)
        try:
            model.encode_image(x).sum().backward()
        finally:
            for p, r in zip(model.parameters(), requires):
                p.requires_grad_(r)
        x.grad = None

    return step


def fmt(seconds: float) -> str:
    """Seconds -> a short human figure (ms, s, min, h, days)."""
    for unit, k in (("days", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= k:
            return f"{seconds / k:.1f} {unit}"
    return f"{seconds * 1e3:.1f} ms"


def run_scale(name: str, model, tokenizer, args) -> dict:
    """Time every stage of one global forget at one scale, each interleaved with its ceiling; print the detail;
    return the table row."""
    grid = paradigms.grid_for(name)
    mask = paradigms.forget_classes(grid, FORGET)
    cfg = prototypes.SynthesisConfig()
    texts = all_prompts(grid)
    mm32, mm32_work = matmul_side(1024, torch.float32)
    mm64, mm64_work = matmul_side(512, torch.float64)
    print(f"\n== {name}: grid {grid.shape[0]} x {grid.shape[1]}, forget '{FORGET}' in every domain "
          f"({int(mask.sum())} cells), {len(texts)} prompts | {load_average()}")

    # 1. text directions, against the fp32 matmul; the Gram of all directions, once
    part = sample(texts, args.text_sample) if args.quick else texts
    probe = sample(texts, min(64, len(texts)))
    flops_per_prompt = count_flops(lambda: prompts.encode_text(model, tokenizer, probe)) / len(probe)
    times = interleave({"text": lambda: prompts.encode_text(model, tokenizer, part), "mm": mm32},
                       repeats=3 if args.quick else 1, warmup=1 if args.quick else 0)
    t_text = median(times["text"]) * len(texts) / len(part)
    s_text = share(times["text"], flops_per_prompt * len(part), times["mm"], mm32_work)
    t_full = timed(lambda: full_context(model, tokenizer, probe)) * len(texts) / len(probe)
    d = model.visual.proj.shape[1]
    g = torch.Generator().manual_seed(0)
    text_dirs = torch.nn.functional.normalize(torch.randn(*grid.shape, d, generator=g), dim=-1)
    protos = torch.zeros(*grid.shape, cfg.n, d)
    protos[mask] = torch.nn.functional.normalize(torch.randn(int(mask.sum()), cfg.n, d, generator=g), dim=-1)
    cells = package_edit.cell_directions(text_dirs, mask, protos)
    t_gram = timed(lambda: package_edit.all_cells_gram(text_dirs, protos))
    all_gram = package_edit.all_cells_gram(text_dirs, protos)
    note = f" (sample of {len(part)}, extrapolated)" if len(part) < len(texts) else ""
    print(f"text directions: {fmt(t_text)}{note}, {s_text:.0%} of the fp32 matmul ceiling; at the full "
          f"77-token context: {fmt(t_full)} (extrapolated from {len(probe)} prompts); Gram of all "
          f"{cells.shape[0] * cells.shape[1] * cells.shape[2]} directions, once: {fmt(t_gram)} | {load_average()}")

    # 2. prototypes for the forget cells only, against a forward-backward of the tower at the same batch
    targets = text_dirs[mask]
    chunk = targets[: cfg.batch]
    images = chunk.shape[0] * cfg.n
    run = lambda s: prototypes.synthesize(model, chunk, replace(cfg, steps=s), progress=False)  # noqa: E731
    k = args.synth_steps
    times = interleave({"one": lambda: run(1), "more": lambda: run(1 + k), "fb": fwd_bwd(model, images), "mm": mm32},
                       repeats=args.synth_rounds, warmup=0)
    steps = [(b - a) / k for a, b in zip(times["one"], times["more"])]
    step_s = median(steps)
    step_flops = count_flops(lambda: run(1)) - count_flops(lambda: run(0))
    s_fb = share(steps, images, times["fb"], images)
    s_mm = share(steps, step_flops, times["mm"], mm32_work)
    chunks = -(-targets.shape[0] // cfg.batch)
    t_proto = step_s * cfg.steps * chunks
    all_cells = grid.shape[0] * grid.shape[1]
    t_proto_all = step_s / images * all_cells * cfg.n * cfg.steps  # scaled per image-step
    print(f"prototypes, forget cells only: {fmt(t_proto)} ({targets.shape[0]} cells x {cfg.n} in {chunks} batch(es) x "
          f"{cfg.steps} steps; extrapolated from {k} measured steps x {args.synth_rounds} rounds, one step "
          f"{step_s:.2f} s); throughput {images / step_s:.2f} image-steps/s = {s_fb:.0%} of the forward-backward "
          f"ceiling at batch {images} (goal >= 50%), {s_mm:.0%} of fp32 matmul | {load_average()}")
    print(f"prototypes for every cell ({all_cells} cells, the retain side too): {fmt(t_proto_all)} "
          f"(extrapolated per image-step)")

    # 3-4. projector against a bare eigh (its O(d^3) core), edit against the fp64 matmul
    F = cells[mask].reshape(-1, d).T
    G_R = retain_gram(all_gram, F)

    def projector():
        removed_basis(F, rho=0.99, retain_gram=retain_gram(all_gram, F))

    U = removed_basis(F, rho=0.99, retain_gram=G_R)

    def edit():  # timed on its own (a difference of two noisy times is not a measurement)
        package_edit.apply_basis(model, U, 1.0, inplace=True)
        kept_fraction(U, 1.0, F), kept_fraction(U, 1.0, gram=G_R)
        package_edit.restore(model)

    def whole():
        fast_edit(model, grid, mask, text_dirs, protos, all_gram)
        package_edit.restore(model)

    times = interleave({"projector": projector, "edit": edit, "whole": whole, "eigh": lambda: torch.linalg.eigh(G_R),
                        "mm": mm64}, repeats=args.repeats)
    t_proj, t_edit = median(times["projector"]), median(times["edit"])
    s_proj = share(times["projector"], 1.0, times["eigh"], 1.0)
    s_edit = share(times["edit"], max(count_flops(edit), 1), times["mm"], mm64_work)
    print(show("projector (retain Gram, eigh, U)", times["projector"]) + f" | {s_proj:.0%} of a bare eigh")
    print(show("edit (apply_basis: visual.proj; the record's kept fractions)", times["edit"]) +
          f" | {s_edit:.0%} of fp64 mm")
    print(show("the package's whole call, edit.unlearn(..., gram=G_all, inplace=True)", times["whole"]))

    # 5. evaluation on cached features, against the fp32 matmul
    n = TEST_IMAGES[name]
    n_run = min(n, args.eval_sample) if args.quick else n
    D = model.visual.proj.shape[0]
    data = FeatureSet(torch.randn(n_run, D, generator=g), torch.randint(0, grid.shape[0], (n_run,), generator=g),
                      torch.randint(0, grid.shape[1], (n_run,), generator=g), grid)
    classifier = torch.nn.functional.normalize(torch.randn(grid.shape[0], d, generator=g), dim=-1)
    fast_edit(model, grid, mask, text_dirs, protos, all_gram)
    run_eval = lambda: evaluate.accuracy_matrix(model, data, classifier)  # noqa: E731
    times = interleave({"eval": run_eval, "mm": mm32}, repeats=3)
    t_eval = median(times["eval"]) * n / n_run
    s_eval = share(times["eval"], count_flops(run_eval), times["mm"], mm32_work)
    package_edit.restore(model)
    note = f" (sample of {n_run}, extrapolated)" if n_run < n else ""
    print(f"evaluation on {n} cached features: {fmt(t_eval)}{note}, {s_eval:.0%} of fp32 matmul | {load_average()}")
    return {"scale": f"{name} {grid.shape[0]}x{grid.shape[1]}", "text": (t_text, s_text, "mm32"),
            "protos": (t_proto, s_fb, "fwd-bwd"), "protos_all": t_proto_all, "projector": (t_proj, s_proj, "eigh"),
            "edit": (t_edit, s_edit, "mm64"), "eval": (t_eval, s_eval, "mm32"),
            "total": t_text + t_gram + t_proto + t_proj + t_edit + t_eval}


def table(rows: list[dict]) -> str:
    """One row per scale: each stage's wall time and its share of its ceiling."""
    cols = ["scale", "text dirs", "prototypes (forget)", "projector", "edit", "evaluation", "total",
            "protos (all cells)"]
    lines = [" | ".join(cols), " | ".join("-" * len(c) for c in cols)]
    for r in rows:
        cell = lambda k: f"{fmt(r[k][0])} ({r[k][1]:.0%} of {r[k][2]})"  # noqa: E731
        lines.append(" | ".join([r["scale"], cell("text"), cell("protos"), cell("projector"), cell("edit"), cell("eval"),
                                 fmt(r["total"]), fmt(r["protos_all"])]))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="sample text and evaluation, 2 synthesis steps")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, fixed for every stage")
    parser.add_argument("--scales", nargs="+", default=["pacs", "domainnet"], choices=sorted(TEST_IMAGES))
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds for the short stages")
    parser.add_argument("--synth-steps", type=int, default=None, help="measured synthesis steps (default 1 quick, 3)")
    parser.add_argument("--synth-rounds", type=int, default=None, help="interleaved synthesis rounds (default 2, 3)")
    parser.add_argument("--text-sample", type=int, default=256, help="--quick: prompts actually encoded")
    parser.add_argument("--eval-sample", type=int, default=20_000, help="--quick: features actually scored")
    args = parser.parse_args()
    args.synth_steps = args.synth_steps or (1 if args.quick else 3)
    args.synth_rounds = args.synth_rounds or (2 if args.quick else 3)
    threads = fix_threads(args.threads)
    torch.manual_seed(0)
    model, _, tokenizer = load_clip("ViT-B-32")
    print(header(threads))
    print(f"ceilings (for reference; each stage's share uses the ceiling measured in its own rounds): fp32 matmul "
          f"1024^3 {matmul_rate(1024, torch.float32) / 1e9:.1f} GFLOP/s, fp64 matmul 512^3 "
          f"{matmul_rate(512, torch.float64) / 1e9:.1f} GFLOP/s | {load_average()}")
    rows = [run_scale(name, model, tokenizer, args) for name in args.scales]
    print(f"\ntime to forget '{FORGET}' (one global forget, ViT-B-32, {threads} torch thread(s); "
          f"{'--quick: sampled and ' if args.quick else ''}synthesis extrapolated; shares of the ceilings above)")
    print(table(rows))
    print(f"measured under: {load_average()}")


if __name__ == "__main__":
    main()
