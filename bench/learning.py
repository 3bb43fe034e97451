#!/usr/bin/env python3
"""PyTorch reference for docs/LEARNING.md: MeZO (and variants) and backprop
on the same model, data, mini-batch order, eps and lr as `zopeer train`.

Runs with Debian's python3-torch (apt-get install python3-torch), no other
packages:

    /usr/bin/python3 bench/learning.py --model model/defaults/english \\
        --method mezo --lr 1e-4 --eps 1e-3 --samples 16 --steps 100 --seed 1

What is the same as zopeer (node/trainer.go, model/dataset):
  - the model: a Hugging Face GPT-2 directory (config.json, model.safetensors,
    read here without the safetensors package), float32, gelu_new, tied head;
  - the records: {"text"} JSON lines as bytes (the byte-level tokenizer of
    model/defaults/english maps byte b to id b), cut into windows exactly as
    `--window --window-overlap N` does (dataset.Options);
  - the loss: mean next-token cross-entropy over every target of the batch;
  - the mini-batch order: record Sample(run, machine, k*batch + j) of
    dataset.Sample (SHA-256 Feistel permutation per epoch, docs/DATA.md), so
    sample k of machine m trains on the same records in both;
  - a step: --samples SPSA estimates at the same weights, each on its own
    mini-batch, then all applied (theta -= lr * g * z for each); eps and lr
    mean what they mean in zopeer (lr per update).
What differs: z. PyTorch's z comes from torch's generator seeded with
(seed, sample), not zopeer's Philox stream; --dist rademacher or gauss.

Methods (--method):
  mezo     full-parameter SPSA (MeZO, Malladi et al. 2023).
  sparse   Sparse MeZO: perturb only the elements whose |base weight| is at
           most the --sparse-q quantile of their tensor (mask fixed from the
           base weights); --sparse-whole-vectors masks the matrices only.
  layer    one tensor group per update: each update perturbs only the
           tensors of one transformer block (or the embeddings/final norm),
           chosen uniformly from the seed.
  parts    zopeer's parts=P: the tensors in layout order cut into P groups of
           consecutive tensors, each update perturbs one group (drawn from its seed).
  tensor   one tensor per update, chosen uniformly from the seed.
  lozo     low-rank z for matrices: z = U V^T (U: rows x r, V: cols x r,
           Rademacher), 1-D tensors as in mezo; scaled by 1/sqrt(r).
  scaled   z of each tensor scaled by a power of two near its base RMS / --scale-ref
           (a diagonal preconditioner fixed from the base weights).
  gscaled  z of each tensor scaled by a power of two from its measured
           projected-gradient energy per element (see gscale).
  vectors  zopeer's scale=vectors: z of every matrix and embedding times 2^-8;
           --keep/--keep-scale give some matrices another power of two,
           --only keeps only the named tensors at 1 (scale=vectors-grad's
           kind of result).
  (--onesided Q, with any perturbing method: forward differences with a
  shared base, DeepZero-style: each group of Q updates of a step trains on
  the group's first mini-batch; one pass at theta gives L0, one pass at
  theta+eps*z_i gives g_i = (L(theta+eps*z_i) - L0)/eps; Q+1 passes for Q
  updates instead of 2Q.)
  adam     backprop with Adam (the ceiling), same mini-batches; one step is
           --samples mini-batches, each one Adam step (2 forward-equivalents
           of work are counted per mini-batch for the backward pass: the
           x-axis is forward passes, backward counted as 2).

Prints one JSON object per evaluation: {"method", "seed", "step", "updates",
"forwards", "eval_loss", "train_loss", "t"}; --out FILE also writes them.
"""
import argparse
import json
import math
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

# dataset.Sample, the batch order, from the independent implementation that
# model/dataset's tests check the Go code against.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model", "dataset", "testdata"))
from reference import sample  # noqa: E402


# ---- data: records, windows and the mini-batch order of model/dataset ----

def load_records(path, ctx, window, overlap):
    """Byte records of a {"text"} JSONL file as (tokens, loss_start) pairs,
    windowed like dataset.Options{Window, Overlap} (or truncated)."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            ids = list(json.loads(line)["text"].encode("utf-8"))
            if len(ids) < 2:
                continue
            if len(ids) <= ctx or not window:
                out.append((ids[:ctx], 1))
                continue
            start, nxt = 0, 0
            while nxt < len(ids):
                end = min(start + ctx, len(ids))
                out.append((ids[start:end], max(1 - start, nxt - start, 1)))
                nxt = end
                start = end - max(overlap, 1)
    return out


# ---- model: Hugging Face GPT-2 from config.json + model.safetensors ----

def load_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "F32", info["dtype"]
        a, b = info["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"]).clone()
    return out


class GPT2:
    def __init__(self, model_dir):
        cfg = json.load(open(os.path.join(model_dir, "config.json")))
        self.L, self.H, self.eps = cfg["n_layer"], cfg["n_head"], cfg["layer_norm_epsilon"]
        w = load_safetensors(os.path.join(model_dir, "model.safetensors"))
        # zopeer's layout order (model.Params): embeddings, blocks, final norm.
        per = ["ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias", "attn.c_proj.weight",
               "attn.c_proj.bias", "ln_2.weight", "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias",
               "mlp.c_proj.weight", "mlp.c_proj.bias"]
        self.names = ["transformer.wte.weight", "transformer.wpe.weight"] + \
            [f"transformer.h.{l}.{n}" for l in range(self.L) for n in per] + \
            ["transformer.ln_f.weight", "transformer.ln_f.bias"]
        assert sorted(self.names) == sorted(w), "unexpected tensors"
        self.p = {n: w[n] for n in self.names}

    def params(self):
        return [self.p[n] for n in self.names]

    def loss(self, batch):
        """Mean cross-entropy over every target of the batch (model.Loss)."""
        p = self.p
        T = max(len(t) for t, _ in batch)
        x = torch.zeros(len(batch), T, dtype=torch.long)
        tgt = torch.full((len(batch), T), -100, dtype=torch.long)
        for i, (t, ls) in enumerate(batch):
            x[i, :len(t)] = torch.tensor(t)
            for j in range(max(ls, 1), len(t)):
                tgt[i, j - 1] = t[j]
        B = len(batch)
        h = p["transformer.wte.weight"][x] + p["transformer.wpe.weight"][:T]
        d = h.shape[-1]
        hd = d // self.H
        mask = torch.full((T, T), float("-inf")).triu(1)
        for l in range(self.L):
            q = f"transformer.h.{l}."
            a = F.layer_norm(h, (d,), p[q + "ln_1.weight"], p[q + "ln_1.bias"], self.eps)
            qkv = a @ p[q + "attn.c_attn.weight"] + p[q + "attn.c_attn.bias"]
            qq, kk, vv = qkv.split(d, dim=-1)
            qq, kk, vv = (t.view(B, T, self.H, hd).transpose(1, 2) for t in (qq, kk, vv))
            att = (qq @ kk.transpose(-1, -2)) / math.sqrt(hd) + mask
            o = (att.softmax(-1) @ vv).transpose(1, 2).reshape(B, T, d)
            h = h + o @ p[q + "attn.c_proj.weight"] + p[q + "attn.c_proj.bias"]
            a = F.layer_norm(h, (d,), p[q + "ln_2.weight"], p[q + "ln_2.bias"], self.eps)
            a = F.gelu(a @ p[q + "mlp.c_fc.weight"] + p[q + "mlp.c_fc.bias"], approximate="tanh")
            h = h + a @ p[q + "mlp.c_proj.weight"] + p[q + "mlp.c_proj.bias"]
        h = F.layer_norm(h, (d,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], self.eps)
        logits = h @ p["transformer.wte.weight"].T
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), ignore_index=-100)


def group_of(name, layers):
    """The tensor group of the layer method: block l, or L for the rest."""
    if name.startswith("transformer.h."):
        return int(name.split(".")[2])
    return layers


# ---- perturbations ----

class Perturb:
    def __init__(self, m, a):
        self.m, self.a = m, a
        self.masks = {}
        self.scale = {}
        if a.method == "gscaled":
            self.scale = gscale(m, a)
        if a.method == "vectors":
            # zopeer's scale=vectors: tensors of two or more dimensions at 2^-8.
            self.scale = {n: 2.0 ** (a.keep_scale if any(k and k in n for k in a.keep.split(",")) else -8)
                          for n in m.names if m.p[n].dim() >= 2}
            if a.only:
                # Only the named tensors at scale 1, every other tensor at 2^-8.
                self.scale = {n: 2.0 ** -8 for n in m.names if not any(k and k in n for k in a.only.split(","))}
        if a.method == "scaled":
            for n in m.names:
                rms = float(m.p[n].pow(2).mean().sqrt())
                self.scale[n] = 2.0 ** round(math.log2(max(rms, 1e-3) / a.scale_ref))
        if a.method == "sparse":
            for n in m.names:
                if a.sparse_whole_vectors and m.p[n].dim() < 2:
                    continue
                w = m.p[n].abs().flatten()
                k = max(1, int(a.sparse_q * w.numel()))
                thr = w.kthvalue(k).values
                self.masks[n] = (m.p[n].abs() <= thr).float()

    def z(self, seed):
        """{name: z} for one update; tensors absent are not perturbed."""
        a, m = self.a, self.m
        g = torch.Generator().manual_seed(seed)
        chosen = None
        if a.method == "layer":
            chosen = int(torch.randint(m.L + 1, (1,), generator=g))
        if a.method == "parts":
            # zopeer's parts=P: tensor j of T in group j*P//T, the group drawn per update.
            chosen = int(torch.randint(a.parts, (1,), generator=g))
        one = None
        if a.method == "tensor":
            one = m.names[int(torch.randint(len(m.names), (1,), generator=g))]
        out = {}
        for n in m.names:
            t = m.p[n]
            grp = m.names.index(n) * a.parts // len(m.names) if a.method == "parts" else group_of(n, m.L)
            if chosen is not None and grp != chosen or one is not None and n != one:
                continue
            if a.method == "lozo" and t.dim() == 2 and min(t.shape) > a.rank:
                u = torch.randint(2, (t.shape[0], a.rank), generator=g).float() * 2 - 1
                v = torch.randint(2, (t.shape[1], a.rank), generator=g).float() * 2 - 1
                out[n] = (u @ v.T) / math.sqrt(a.rank)
                continue
            if a.dist == "gauss":
                z = torch.randn(t.shape, generator=g)
            else:
                z = torch.randint(2, t.shape, generator=g).float() * 2 - 1
            if n in self.masks:
                z = z * self.masks[n]
            if n in self.scale:
                z = z * self.scale[n]
            out[n] = z
        return out


def gscale(m, a):
    """Per-tensor powers of two from each tensor's projected-gradient energy
    per element, e_t = E[g_t^2] / n_t, measured by SPSA on the tensor alone
    (--calib samples of the first training batches at the base weights):
    s_t = 2^round(log2(e_t / max e) / 2), floored at 2^-8. A tensor whose
    elements carry little gradient per element adds mostly noise to a full
    perturbation; this shrinks its share (docs/LEARNING.md)."""
    out = {}
    e = {}
    for n in m.names:
        t = m.p[n]
        acc = 0.0
        for k in range(a.calib):
            b = a._batch(k)
            g = torch.Generator().manual_seed(7_000_003 + k)
            z = torch.randint(2, t.shape, generator=g).float() * 2 - 1
            with torch.no_grad():
                t.add_(z, alpha=a.eps)
                lp = float(m.loss(b))
                t.add_(z, alpha=-2 * a.eps)
                lm = float(m.loss(b))
                t.add_(z, alpha=a.eps)
            acc += ((lp - lm) / (2 * a.eps)) ** 2 / a.calib
        e[n] = acc / t.numel()
    top = max(e.values())
    for n, v in e.items():
        out[n] = 2.0 ** max(-8, round(0.5 * math.log2(max(v, 1e-30) / top)))
    print(json.dumps({"gscale": {n: int(round(math.log2(v))) for n, v in out.items()}}), file=sys.stderr)
    return out


def evaluate(m, recs, bs=64):
    tot, cnt = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(recs), bs):
            b = recs[i:i + bs]
            n = sum(len(t) - max(ls, 1) for t, ls in b)
            tot += float(m.loss(b)) * n
            cnt += n
    return tot / cnt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="model/defaults/english")
    ap.add_argument("--data", default=None, help="default: MODEL/train.jsonl")
    ap.add_argument("--eval-data", default=None, help="default: MODEL/eval.jsonl")
    ap.add_argument("--method", default="mezo", choices=["mezo", "sparse", "layer", "parts", "tensor", "lozo", "scaled", "gscaled", "vectors", "adam"])
    ap.add_argument("--dist", default="rademacher", choices=["rademacher", "gauss"])
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--samples", type=int, default=16, help="updates per step (zopeer --samples)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--window-overlap", type=int, default=16)
    ap.add_argument("--run", default="learn", help="run id: decides the mini-batch order, as in zopeer")
    ap.add_argument("--seed", type=int, default=1, help="seed of z (PyTorch's generator)")
    ap.add_argument("--sparse-q", type=float, default=0.25)
    ap.add_argument("--sparse-whole-vectors", action="store_true", help="sparse: mask only tensors of two or more dimensions")
    ap.add_argument("--keep", default="", help="vectors: comma-separated name parts of matrices kept at scale 1 (e.g. wte,wpe)")
    ap.add_argument("--keep-scale", type=int, default=0, help="vectors: exponent of the --keep matrices' scale")
    ap.add_argument("--only", default="", help="vectors: comma-separated name parts of the only tensors at scale 1")
    ap.add_argument("--rank", type=int, default=2)
    ap.add_argument("--calib", type=int, default=4, help="gscaled: SPSA samples per tensor to measure its gradient energy")
    ap.add_argument("--parts", type=int, default=4, help="parts: groups of consecutive tensors")
    ap.add_argument("--scale-ref", type=float, default=0.0625, help="scaled: z of a tensor is multiplied by 2^round(log2(rms/ref))")
    ap.add_argument("--onesided", type=int, default=0, metavar="Q",
                    help="forward differences with a shared base: each group of Q updates of a step trains on the "
                         "group's first mini-batch, one pass at theta (L0) and one at theta+eps*z per update, "
                         "g = (L+ - L0)/eps (Q+1 passes for Q updates); 0: central differences (2 per update)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--eval-max", type=int, default=0, help="evaluate on the first N held-out windows only (0: all)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    m = GPT2(a.model)
    ctx = m.p["transformer.wpe.weight"].shape[0]
    train = load_records(a.data or os.path.join(a.model, "train.jsonl"), ctx, True, a.window_overlap)
    held = load_records(a.eval_data or os.path.join(a.model, "eval.jsonl"), ctx, True, a.window_overlap)
    if a.eval_max:
        held = held[:a.eval_max]
    out = open(a.out, "w") if a.out else None
    start = time.time()

    def report(step, fw, tl):
        r = {"method": a.method + (f"+onesided{a.onesided}" if a.onesided else ""), "seed": a.seed, "lr": a.lr, "eps": a.eps, "step": step, "updates": step * a.samples,
             "forwards": fw, "eval_loss": evaluate(m, held), "train_loss": tl, "t": round(time.time() - start, 2)}
        line = json.dumps(r)
        print(line, flush=True)
        if out:
            out.write(line + "\n")
            out.flush()

    def batch(k):
        return [train[sample(a.run, 0, k * a.batch_size + j, len(train))] for j in range(a.batch_size)]

    a._batch = batch
    report(0, 0, None)
    pert = Perturb(m, a)
    opt = None
    if a.method == "adam":
        for t in m.params():
            t.requires_grad_(True)
        opt = torch.optim.Adam(m.params(), lr=a.lr)
    fw, tl, since = 0, 0.0, 0
    for step in range(1, a.steps + 1):
        since += 1
        ups = []
        for j in range(a.samples):
            k = (step - 1) * a.samples + j
            b = batch(k)
            if opt is not None:
                opt.zero_grad()
                l = m.loss(b)
                l.backward()
                opt.step()
                fw += 3
                tl += float(l) / a.samples
                continue
            seed = a.seed * 1_000_003 + k
            z = pert.z(seed)
            if a.onesided:
                # DeepZero-style: the group's first mini-batch and one base pass for the group.
                if j % a.onesided == 0:
                    gb = b
                    with torch.no_grad():
                        l0 = float(m.loss(gb))
                    fw += 1
                with torch.no_grad():
                    for n, t in z.items():
                        m.p[n].add_(t, alpha=a.eps)
                    lp = float(m.loss(gb))
                    for n, t in z.items():
                        m.p[n].add_(t, alpha=-a.eps)
                fw += 1
                tl += l0 / a.samples
                ups.append(((lp - l0) / a.eps, seed))
                continue
            with torch.no_grad():
                for n, t in z.items():
                    m.p[n].add_(t, alpha=a.eps)
                lp = float(m.loss(b))
                for n, t in z.items():
                    m.p[n].add_(t, alpha=-2 * a.eps)
                lm = float(m.loss(b))
                for n, t in z.items():
                    m.p[n].add_(t, alpha=a.eps)
            fw += 2
            tl += (lp + lm) / 2 / a.samples
            ups.append(((lp - lm) / (2 * a.eps), seed))
        with torch.no_grad():
            for g, seed in ups:
                for n, t in pert.z(seed).items():
                    m.p[n].add_(t, alpha=-a.lr * g)
        if step % a.eval_every == 0 or step == a.steps:
            report(step, fw, tl / since)
            tl, since = 0.0, 0


if __name__ == "__main__":
    main()
