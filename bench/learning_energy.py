#!/usr/bin/env python3
"""Where the gradient is, for docs/LEARNING.md's choice of estimators: the
mean squared per-mini-batch gradient (backprop) of the English model at its
base weights on the Jargon task, per element, for subsets of the parameters
an estimator could perturb (all, the vectors, the smallest or largest |w| of
each matrix: Sparse MeZO's mask, each tensor). An SPSA estimate over a set S
of elements carries descent in proportion to S's gradient energy and noise
in proportion to |S|, so energy per element is the first thing to compare.

    /usr/bin/python3 bench/learning_energy.py [--batches 8] [--batch-size 64] [--run learn-1]
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import learning as L  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="model/defaults/english")
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--run", default="learn-1")
    a = ap.parse_args()
    torch.set_num_threads(1)
    m = L.GPT2(a.model)
    train = L.load_records(os.path.join(a.model, "train.jsonl"), m.p["transformer.wpe.weight"].shape[0], True, 16)
    for t in m.params():
        t.requires_grad_(True)
    g2 = {n: torch.zeros_like(m.p[n]) for n in m.names}
    for k in range(a.batches):
        b = [train[L.sample(a.run, 0, k * a.batch_size + j, len(train))] for j in range(a.batch_size)]
        for t in m.params():
            t.grad = None
        m.loss(b).backward()
        for n in m.names:
            g2[n] += m.p[n].grad.detach() ** 2 / a.batches

    def line(what, e, n):
        print(f"{what:<44} elements {n:>7}  energy {e:8.4f}  per element {e / n:.3g}")

    tot = sum(float(g2[n].sum()) for n in m.names)
    line("all (MeZO)", tot, sum(g2[n].numel() for n in m.names))
    vec = [n for n in m.names if m.p[n].dim() < 2]
    ev, nv = sum(float(g2[n].sum()) for n in vec), sum(g2[n].numel() for n in vec)
    line("vectors (scale=vectors)", ev, nv)
    for q in (0.01, 0.05, 0.25):
        for side in ("smallest", "largest"):
            e, c = 0.0, 0
            for n in m.names:
                if m.p[n].dim() < 2:
                    continue
                w, g = m.p[n].detach().abs().flatten(), g2[n].flatten()
                k = max(1, int(q * w.numel()))
                mk = w <= w.kthvalue(k).values if side == "smallest" else w >= w.kthvalue(w.numel() - k + 1).values
                e, c = e + float(g[mk].sum()), c + int(mk.sum())
            line(f"{side} {q:.0%} |w| of each matrix", e, c)
            line(f"  the same + the vectors", e + ev, c + nv)
    for n in m.names:
        line(n.removeprefix("transformer."), float(g2[n].sum()), g2[n].numel())


if __name__ == "__main__":
    main()
