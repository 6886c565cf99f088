"""Benchmark: what do retain-side prototypes add over text-only retain directions?

Prototypes cost a synthesis per cell (ViT-B-32 on a CPU: minutes per cell, a day for DomainNet's 2,070
cells; see time_to_forget.py), so the question decides the default. Three edits of the same mask:
- all: prototypes in every cell, forget and retain (the paper's multimodal edit);
- forget only: prototypes in the forget cells, text directions alone on the retain side
  (grid_prototypes(cells=mask); the retained cells' prototypes are zero, which adds nothing to R);
- text: no prototypes at all (mode='text').
Each on the three paradigms (one class everywhere, one class in one domain, one whole domain), at the
package default rho = 0.99 and at the rho the book's rule picks on the training split (Lab.choose_rho, per
edit). Printed: zero-shot accuracy on the test split over forget cells, retained cells, and the retained
cells of the forgotten class (same class, other domains), averaged over the worlds.

Worlds: the dial world (worlds/dial.py) over kappa in {0, 0.5, 1, 2, 4} and three seeds at 7 x 4, and one
345 x 6 dial world (k_r > d, where rho truncates); the ToyWorld CLIP with --toy (its prototypes come from
the disk cache when a chapter has made them).

    python benchmarks/retain_prototypes.py [--toy] [--seeds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import warnings  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from measure import fix_threads, header, load_average  # noqa: E402
from minclip_unlearn import edit, evaluate, paradigms  # noqa: E402
from minclip_unlearn.lab import Lab  # noqa: E402

VARIANTS = ("all", "forget only", "text")
GROUPS = ("forget", "retain", "same_class_other_domains", "probe_forget")


def masks(grid) -> dict[str, torch.Tensor]:
    """The three paradigms on the grid's first class and first domain."""
    c, m = grid.classes[0], grid.domains[0]
    return {"global": paradigms.forget_classes(grid, c),
            "domain-specific": paradigms.forget_classes_in_domains(grid, c, m),
            "complete domain": paradigms.forget_domains(grid, m)}


def variant(protos: torch.Tensor, mask: torch.Tensor, name: str) -> tuple[torch.Tensor | None, str]:
    """(C, M, n, d) prototypes, (C, M) mask, variant name -> (the prototypes the edit gets, its mode)."""
    if name == "all":
        return protos, "multimodal"
    if name == "forget only":
        return torch.where(mask[..., None, None], protos, torch.zeros_like(protos)), "multimodal"
    return None, "text"


def measure_lab(lab: Lab, protos: torch.Tensor, rule: bool) -> dict:
    """{(paradigm, variant, rho_kind): {group: accuracy}} for one world; rho 0.99 and (rule) the book's rho."""
    out = {"grid": lab.grid}
    probe_ok = lab.grid.shape[0] <= 50  # a 345-class logistic regression per edit is too slow for a benchmark
    for paradigm, mask in masks(lab.grid).items():
        for name in VARIANTS:
            p, mode = variant(protos, mask, name)
            for kind in ("0.99", "rule") if rule else ("0.99",):
                rho = 0.99 if kind == "0.99" else lab.choose_rho(mask, p, mode=mode)
                edited = edit.unlearn(lab.model, lab.grid, mask, lab.text_dirs, p, mode=mode, rho=rho)
                s = evaluate.scores(edited, lab.test, lab.classifier, mask)
                probe = evaluate.recovery_probe(edited, lab.train, lab.test, mask) if kind == "0.99" and probe_ok else {}
                out[(paradigm, name, kind)] = {g: s.get(g, probe.get(g, float("nan"))) for g in GROUPS} | {"rho": rho}
    return out


def dial_lab(**kw) -> tuple[Lab, torch.Tensor]:
    """A dial world as a Lab (text directions and classifier preset) and its (C, M, n, d) prototypes."""
    from minclip_unlearn.worlds.dial import dial_world

    w = dial_world(**kw)
    lab = Lab(w.model, None, w.grid, w.train, w.test, w.source, real=False, model_name="dial world")
    lab._cache.update(text_dirs=w.text_dirs, classifier=w.classifier)
    return lab, w.prototypes


def report(title: str, results: list[dict]) -> None:
    """One line per paradigm x variant: means over the worlds (min-max of forget accuracy) at rho 0.99 and rule."""
    print(f"\n{title} ({len(results)} world(s); accuracies in %) | {load_average()}")
    print(f"{'paradigm':<16} {'variant':<12} | rho 0.99: {'forget (min-max)':>17} {'retain':>6} {'same-cls':>8} "
          f"{'probe-fgt':>9} | rule: {'forget':>6} {'retain':>6} {'rho':>5}")

    def mean(key: tuple, _, g: str) -> float:
        xs = np.array([r[key][g] for r in results if key in r], dtype=float)
        return float(np.nanmean(xs)) * (1 if g == "rho" else 100) if np.isfinite(xs).any() else float("nan")

    for paradigm in masks(results[0]["grid"]):
        for name in VARIANTS:
            k99, krule = (paradigm, name, "0.99"), (paradigm, name, "rule")
            xs = [100 * r[k99]["forget"] for r in results]
            line = (f"{paradigm:<16} {name:<12} | {'':>9}{mean(k99, 0, 'forget'):6.1f} ({min(xs):4.1f}-{max(xs):5.1f}) "
                    f"{mean(k99, 0, 'retain'):6.1f} {mean(k99, 0, 'same_class_other_domains'):8.1f} "
                    f"{mean(k99, 0, 'probe_forget'):9.1f} |")
            if krule in results[0]:
                line += f" {'':>5}{mean(krule, 0, 'forget'):6.1f} {mean(krule, 0, 'retain'):6.1f} {mean(krule, 0, 'rho'):5.2f}"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--toy", action="store_true", help="also the ToyWorld CLIP (synthesises its prototypes "
                                                           "once if no chapter has cached them)")
    parser.add_argument("--no-domainnet", action="store_true", help="skip the 345 x 6 dial world")
    args = parser.parse_args()
    print(header(fix_threads(args.threads)))
    warnings.filterwarnings("ignore", message="the edit removes almost nothing")  # expected at kappa = 0
    for kappa in (0.0, 0.5, 1.0, 2.0, 4.0):
        worlds = [measure_lab(*dial_lab(kappa=kappa, seed=s), rule=True) for s in range(args.seeds)]
        report(f"dial world 7 x 4, kappa = {kappa}", worlds)
    if not args.no_domainnet:
        lab, protos = dial_lab(classes=345, domains=6, kappa=1.0, n_per_cell=2, seed=0)
        report("dial world 345 x 6, kappa = 1 (k_r > d)", [measure_lab(lab, protos, rule=False)])
    if args.toy:
        from minclip_unlearn.lab import open_lab

        lab = open_lab("toyworld")
        report("ToyWorld CLIP", [measure_lab(lab, lab.prototypes(progress=False), rule=True)])


if __name__ == "__main__":
    main()
