#!/usr/bin/env python3
"""PyTorch baseline for `zopeer bench`: fp32 inference and a MeZO step.

Builds the same model shapes as zopeer's built-in bench shapes (node/bench.go)
in plain PyTorch (no transformers needed), random weights, one sequence of
--tokens random tokens, and measures, like `zopeer bench`:

  - RSS of the process holding the weights (before any pass),
  - a forward pass with the loss (torch.no_grad()): seconds and peak RSS,
  - a MeZO step as the MeZO paper's code does it (princeton-nlp/MeZO,
    large_models/trainer.py: zo_step + zo_update): perturb every parameter
    in place by +eps*z (z ~ N(0,1) regenerated from a seed per tensor), loss,
    -2*eps*z, loss, +eps*z (restore), then regenerate z and update
    theta -= lr*g*z. Seconds and peak RSS.

Peak RSS is the kernel's VmHWM after resetting it through
/proc/self/clear_refs, as zopeer bench does. Token values do not change the
work; the shapes and the token count do.

Run with Debian's torch (apt-get install python3-torch):

    /usr/bin/python3 bench/pytorch_mezo.py --model gpt2-small --threads 2 --reps 3

Debian's torch multiplies through OpenBLAS; the script sets OPENBLAS_CORETYPE
from the CPU's flags the way zopeer does (unless already set), so both use
the same kernels. Prints one JSON object.
"""
import argparse
import gc
import json
import math
import os
import time


def core_type():
    try:
        flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return None
    if "avx512_bf16" in flags:
        return "COOPERLAKE"
    if "avx512f" in flags:
        return "SKYLAKEX"
    if "avx2" in flags and "fma" in flags:
        return "HASWELL"
    return None


SHAPES = {
    "gpt2-small": dict(arch="gpt2", vocab=50257, d=768, layers=12, heads=12, pos=1024),
    "gpt2-3m": dict(arch="gpt2", vocab=8192, d=192, layers=4, heads=4, pos=512),
    "smollm-135m": dict(arch="llama", vocab=49152, d=576, ff=1536, layers=30, heads=9, kv=3, theta=100000.0),
}


def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024.0
    return 0.0


def reset_peak():
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="gpt2-small", choices=sorted(SHAPES))
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eps", type=float, default=1e-3)
    ap.add_argument("--lr", type=float, default=1e-6)
    a = ap.parse_args()

    ct = core_type()
    if ct and "OPENBLAS_CORETYPE" not in os.environ:
        os.environ["OPENBLAS_CORETYPE"] = ct
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(a.threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    # OpenMP threads that spin between ops compete with OpenBLAS's own
    # threads for the same cores: on 2 cores the default (active) policy made
    # a GPT-2-small forward 0.9-2.1 s, PASSIVE 0.38 s (the best setting found;
    # see docs/BENCHMARKS.md). Override with OMP_WAIT_POLICY=ACTIVE.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    s = SHAPES[a.model]

    class GPT2Block(nn.Module):
        def __init__(self, d, h):
            super().__init__()
            self.h = h
            self.ln_1, self.ln_2 = nn.LayerNorm(d, eps=1e-5), nn.LayerNorm(d, eps=1e-5)
            self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
            self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

        def forward(self, x, mask):
            n, d = x.shape
            q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=1)
            q, k, v = (t.view(n, self.h, d // self.h).transpose(0, 1) for t in (q, k, v))
            att = (q @ k.transpose(1, 2)) / math.sqrt(d // self.h)
            att = att.masked_fill(mask, float("-inf")).softmax(-1)
            x = x + self.c_proj((att @ v).transpose(0, 1).reshape(n, d))
            return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))

    class GPT2(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(s["vocab"], s["d"]), nn.Embedding(s["pos"], s["d"])
            self.h = nn.ModuleList(GPT2Block(s["d"], s["heads"]) for _ in range(s["layers"]))
            self.ln_f = nn.LayerNorm(s["d"], eps=1e-5)

        def forward(self, ids):
            n = ids.shape[0]
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
            x = self.wte(ids) + self.wpe(torch.arange(n))
            for b in self.h:
                x = b(x, mask)
            return self.ln_f(x) @ self.wte.weight.t()  # tied head

    class RMSNorm(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.weight

    class LlamaBlock(nn.Module):
        def __init__(self, d, ff, h, kv):
            super().__init__()
            self.h, self.kv, self.hd = h, kv, d // h
            self.input_layernorm, self.post_attention_layernorm = RMSNorm(d), RMSNorm(d)
            self.q_proj = nn.Linear(d, h * self.hd, bias=False)
            self.k_proj = nn.Linear(d, kv * self.hd, bias=False)
            self.v_proj = nn.Linear(d, kv * self.hd, bias=False)
            self.o_proj = nn.Linear(h * self.hd, d, bias=False)
            self.gate_proj, self.up_proj = nn.Linear(d, ff, bias=False), nn.Linear(d, ff, bias=False)
            self.down_proj = nn.Linear(ff, d, bias=False)

        def forward(self, x, mask, cos, sin):
            n = x.shape[0]
            y = self.input_layernorm(x)
            q = self.q_proj(y).view(n, self.h, self.hd).transpose(0, 1)
            k = self.k_proj(y).view(n, self.kv, self.hd).transpose(0, 1)
            v = self.v_proj(y).view(n, self.kv, self.hd).transpose(0, 1)

            def rot(t):
                t1, t2 = t[..., : self.hd // 2], t[..., self.hd // 2:]
                return t * cos + torch.cat((-t2, t1), -1) * sin

            q, k = rot(q), rot(k)
            g = self.h // self.kv
            k, v = k.repeat_interleave(g, 0), v.repeat_interleave(g, 0)
            att = ((q @ k.transpose(1, 2)) / math.sqrt(self.hd)).masked_fill(mask, float("-inf")).softmax(-1)
            x = x + self.o_proj((att @ v).transpose(0, 1).reshape(n, -1))
            y = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(y)) * self.up_proj(y))

    class Llama(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(s["vocab"], s["d"])
            self.layers = nn.ModuleList(LlamaBlock(s["d"], s["ff"], s["heads"], s["kv"]) for _ in range(s["layers"]))
            self.norm = RMSNorm(s["d"])
            hd = s["d"] // s["heads"]
            self.inv = 1.0 / (s["theta"] ** (torch.arange(0, hd, 2).float() / hd))

        def forward(self, ids):
            n = ids.shape[0]
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
            ang = torch.outer(torch.arange(n).float(), self.inv)
            ang = torch.cat((ang, ang), -1)
            cos, sin = ang.cos(), ang.sin()
            x = self.embed_tokens(ids)
            for b in self.layers:
                x = b(x, mask, cos, sin)
            return self.norm(x) @ self.embed_tokens.weight.t()  # tied head

    model = GPT2() if s["arch"] == "gpt2" else Llama()
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
    model.eval()
    params = [p for p in model.parameters()]  # a tied weight appears once
    n_params = sum(p.numel() for p in params)
    ids = torch.randint(0, s["vocab"], (a.tokens,), generator=torch.Generator().manual_seed(1))

    def loss():
        with torch.no_grad():
            return F.cross_entropy(model(ids)[:-1], ids[1:]).item()

    def perturb(seed, scale):  # MeZO's zo_perturb_parameters, in place
        torch.manual_seed(seed)
        for p in params:
            z = torch.normal(mean=0, std=1, size=p.data.size(), dtype=p.data.dtype)
            p.data.add_(z, alpha=scale * a.eps)

    def mezo_step(seed):  # zo_step + zo_update
        perturb(seed, 1)
        l1 = loss()
        perturb(seed, -2)
        l2 = loss()
        g = (l1 - l2) / (2 * a.eps)
        perturb(seed, 1)
        torch.manual_seed(seed)
        for p in params:
            z = torch.normal(mean=0, std=1, size=p.data.size(), dtype=p.data.dtype)
            p.data.add_(z, alpha=-a.lr * g)
        return g

    out = dict(model=a.model, params=n_params, tokens=a.tokens, threads=torch.get_num_threads(),
               torch=torch.__version__, openblas_coretype=os.environ.get("OPENBLAS_CORETYPE", ""),
               omp_wait_policy=os.environ["OMP_WAIT_POLICY"],
               weights_mib=4 * n_params / 2**20)
    reset_peak()
    out["rss_weights_only_mib"] = status("VmRSS:")
    t = time.perf_counter()
    loss()
    mezo_step(0)
    out["warmup_seconds"] = time.perf_counter() - t

    reset_peak()
    t = time.perf_counter()
    for _ in range(2 * a.reps):
        loss()
    out["forward_seconds"] = (time.perf_counter() - t) / (2 * a.reps)
    out["peak_rss_forward_mib"] = status("VmHWM:")

    reset_peak()
    t = time.perf_counter()
    for i in range(a.reps):
        mezo_step(i + 1)
    out["mezo_step_seconds"] = (time.perf_counter() - t) / a.reps
    out["peak_rss_mezo_step_mib"] = status("VmHWM:")
    out["mezo_step_over_forward"] = out["mezo_step_seconds"] / out["forward_seconds"]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
