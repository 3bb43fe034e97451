#!/usr/bin/env python3
"""Generate tiny Hugging Face model directories and their expected outputs.

An implementation independent of the Go code: numpy in float64, written from
the Hugging Face modelling code (GPT2LMHeadModel, LlamaForCausalLM,
Qwen2ForCausalLM). Writes safetensors files itself. Run from model/testdata:

    /usr/bin/python3 gen_reference.py        # needs python3-numpy (apt)

Outputs (committed, so tests need no Python):
    gpt2/         fp32, tied head
    gpt2-f16/     the same model stored as float16
    llama/        GQA (4 query, 2 kv heads), untied head, attention biases
    qwen2/        qwen2 config: q/k/v biases only, tied head
    llama3-rope/  Llama 3 rope scaling, tied head, one kv head
    llama-bf16-sharded/  llama rounded to bfloat16, two shards + index
each with expected.json: logits of two sequences and the mean loss of a
masked batch.
"""
import json
import os
import struct

import numpy as np

rng = np.random.default_rng(20261122)


# ---------------------------------------------------------------- safetensors
def to_bf16_bits(a):
    b = np.asarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    b = (b + 0x7FFF + ((b >> 16) & 1)) >> 16
    return b.astype(np.uint16)


def from_bf16_bits(u):
    return (u.astype(np.uint32) << 16).view(np.float32)


def write_safetensors(path, tensors, dtype="F32"):
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name, arr in tensors.items():
        if dtype == "F32":
            raw = np.asarray(arr, dtype="<f4").tobytes()
        elif dtype == "F16":
            raw = np.asarray(arr, dtype="<f2").tobytes()
        elif dtype == "BF16":
            raw = to_bf16_bits(arr).astype("<u2").tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def stored(arr, dtype):
    """The float64 value a tensor has after storage in dtype."""
    arr = np.asarray(arr, dtype=np.float32)
    if dtype == "F16":
        return arr.astype(np.float16).astype(np.float64)
    if dtype == "BF16":
        return from_bf16_bits(to_bf16_bits(arr)).astype(np.float64)
    return arr.astype(np.float64)


# ---------------------------------------------------------------- models
def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def softmax(x):
    x = x - x.max(-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(-1, keepdims=True)


def causal_attention(q, k, v):
    """q: [H, T, dh]; k, v: [H, T, dh] (already repeated for GQA)."""
    T, dh = q.shape[1], q.shape[2]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(dh)
    s = np.where(np.tril(np.ones((T, T), bool)), s, -np.inf)
    return softmax(s) @ v


def gelu_new(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def gpt2_logits(c, w, tokens):
    T, d, H = len(tokens), c["n_embd"], c["n_head"]
    dh = d // H
    h = w["transformer.wte.weight"][tokens] + w["transformer.wpe.weight"][np.arange(T)]
    for l in range(c["n_layer"]):
        p = f"transformer.h.{l}."
        a = layer_norm(h, w[p + "ln_1.weight"], w[p + "ln_1.bias"], c["layer_norm_epsilon"])
        qkv = a @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (qkv[:, i * d:(i + 1) * d].reshape(T, H, dh).transpose(1, 0, 2) for i in range(3))
        y = causal_attention(q, k, v).transpose(1, 0, 2).reshape(T, d)
        h = h + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        m = layer_norm(h, w[p + "ln_2.weight"], w[p + "ln_2.bias"], c["layer_norm_epsilon"])
        m = gelu_new(m @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        h = h + m @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    h = layer_norm(h, w["transformer.ln_f.weight"], w["transformer.ln_f.bias"], c["layer_norm_epsilon"])
    return h @ w["transformer.wte.weight"].T


def llama3_inv_freq(inv, rs):
    """_compute_llama3_parameters in transformers' modeling_rope_utils.py."""
    factor, lo, hi, old = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"], rs["original_max_position_embeddings"]
    wavelen = 2 * np.pi / inv
    out = np.where(wavelen > old / lo, inv / factor, inv)
    smooth = (old / wavelen - lo) / (hi - lo)
    smoothed = (1 - smooth) * out / factor + smooth * out
    medium = ~(wavelen < old / hi) & ~(wavelen > old / lo)
    return np.where(medium, smoothed, out).astype(np.float32)


def rope(x, theta, scaling=None):
    """x: [H, T, dh]; Hugging Face's rotate-half layout, float32 angles."""
    dh, T = x.shape[2], x.shape[1]
    inv = (1.0 / (theta ** (np.arange(0, dh, 2, dtype=np.float32) / np.float32(dh)))).astype(np.float32)
    if scaling:
        inv = llama3_inv_freq(inv.astype(np.float64), scaling)
    ang = (np.arange(T, dtype=np.float32)[:, None] * inv[None, :]).astype(np.float32).astype(np.float64)
    ang = np.concatenate([ang, ang], -1)
    x1, x2 = x[..., : dh // 2], x[..., dh // 2:]
    rot = np.concatenate([-x2, x1], -1)
    return x * np.cos(ang) + rot * np.sin(ang)


def llama_logits(c, w, tokens):
    T, d, H, KV = len(tokens), c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"]
    dh = c.get("head_dim", d // H)
    qwen = c["model_type"] == "qwen2"
    qkv_bias = qwen or c.get("attention_bias", False)
    o_bias = (not qwen) and c.get("attention_bias", False)
    eps, theta = c["rms_norm_eps"], c["rope_theta"]

    def lin(x, name, bias):
        y = x @ w[name + ".weight"].T
        return y + w[name + ".bias"] if bias else y

    h = w["model.embed_tokens.weight"][tokens]
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = lin(x, p + "self_attn.q_proj", qkv_bias).reshape(T, H, dh).transpose(1, 0, 2)
        k = lin(x, p + "self_attn.k_proj", qkv_bias).reshape(T, KV, dh).transpose(1, 0, 2)
        v = lin(x, p + "self_attn.v_proj", qkv_bias).reshape(T, KV, dh).transpose(1, 0, 2)
        q, k = rope(q, theta, c.get("rope_scaling")), rope(k, theta, c.get("rope_scaling"))
        k, v = np.repeat(k, H // KV, axis=0), np.repeat(v, H // KV, axis=0)
        y = causal_attention(q, k, v).transpose(1, 0, 2).reshape(T, H * dh)
        h = h + lin(y, p + "self_attn.o_proj", o_bias)
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        g = lin(x, p + "mlp.gate_proj", False)
        m = (g / (1.0 + np.exp(-g))) * lin(x, p + "mlp.up_proj", False)
        h = h + lin(m, p + "mlp.down_proj", False)
    h = rms_norm(h, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if c.get("tie_word_embeddings") else w["lm_head.weight"]
    return h @ head.T


# ---------------------------------------------------------------- weights
def randn(*shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def gpt2_weights(c):
    d, V, P, ff = c["n_embd"], c["vocab_size"], c["n_positions"], 4 * c["n_embd"]
    w = {"transformer.wte.weight": randn(V, d), "transformer.wpe.weight": randn(P, d, scale=0.1)}
    for l in range(c["n_layer"]):
        p = f"transformer.h.{l}."
        w[p + "ln_1.weight"] = 1 + randn(d, scale=0.1)
        w[p + "ln_1.bias"] = randn(d, scale=0.1)
        w[p + "attn.c_attn.weight"] = randn(d, 3 * d, scale=0.2)
        w[p + "attn.c_attn.bias"] = randn(3 * d, scale=0.1)
        w[p + "attn.c_proj.weight"] = randn(d, d, scale=0.2)
        w[p + "attn.c_proj.bias"] = randn(d, scale=0.1)
        w[p + "ln_2.weight"] = 1 + randn(d, scale=0.1)
        w[p + "ln_2.bias"] = randn(d, scale=0.1)
        w[p + "mlp.c_fc.weight"] = randn(d, ff, scale=0.2)
        w[p + "mlp.c_fc.bias"] = randn(ff, scale=0.1)
        w[p + "mlp.c_proj.weight"] = randn(ff, d, scale=0.1)
        w[p + "mlp.c_proj.bias"] = randn(d, scale=0.1)
    w["transformer.ln_f.weight"] = 1 + randn(d, scale=0.1)
    w["transformer.ln_f.bias"] = randn(d, scale=0.1)
    return w


def llama_weights(c):
    d, V, H, KV, ff = c["hidden_size"], c["vocab_size"], c["num_attention_heads"], c["num_key_value_heads"], c["intermediate_size"]
    dh = c.get("head_dim", d // H)
    qwen = c["model_type"] == "qwen2"
    qkv_bias = qwen or c.get("attention_bias", False)
    o_bias = (not qwen) and c.get("attention_bias", False)
    w = {"model.embed_tokens.weight": randn(V, d)}
    for l in range(c["num_hidden_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1 + randn(d, scale=0.1)
        for name, out, inp, bias in [("q_proj", H * dh, d, qkv_bias), ("k_proj", KV * dh, d, qkv_bias),
                                     ("v_proj", KV * dh, d, qkv_bias), ("o_proj", d, H * dh, o_bias)]:
            w[p + "self_attn." + name + ".weight"] = randn(out, inp, scale=0.25)
            if bias:
                w[p + "self_attn." + name + ".bias"] = randn(out, scale=0.2)
        w[p + "post_attention_layernorm.weight"] = 1 + randn(d, scale=0.1)
        w[p + "mlp.gate_proj.weight"] = randn(ff, d, scale=0.2)
        w[p + "mlp.up_proj.weight"] = randn(ff, d, scale=0.2)
        w[p + "mlp.down_proj.weight"] = randn(d, ff, scale=0.15)
    w["model.norm.weight"] = 1 + randn(d, scale=0.1)
    if not c.get("tie_word_embeddings"):
        w["lm_head.weight"] = randn(V, d)
    return w


# ---------------------------------------------------------------- expected
def expected(fn, c, w, V):
    cases = [rng.integers(0, V, 7).tolist(), rng.integers(0, V, 13).tolist()]
    out = {"cases": [{"tokens": t, "logits": fn(c, w, np.array(t)).reshape(-1).tolist()} for t in cases]}
    batch = [
        {"tokens": rng.integers(0, V, 5).tolist()},
        {"tokens": rng.integers(0, V, 9).tolist(), "loss_from": 4},
        {"tokens": rng.integers(0, V, 12).tolist(), "mask": [bool(x) for x in rng.integers(0, 2, 12)]},
    ]
    total, n = 0.0, 0
    for s in batch:
        toks = np.array(s["tokens"])
        lg = fn(c, w, toks)
        lsm = lg - lg.max(-1, keepdims=True)
        lsm = lsm - np.log(np.exp(lsm).sum(-1, keepdims=True))
        for i in range(max(1, s.get("loss_from", 0)), len(toks)):
            if "mask" in s and not s["mask"][i]:
                continue
            total -= lsm[i - 1, toks[i]]
            n += 1
    out["batch"], out["loss"], out["n_tokens"] = batch, total / n, n
    return out


def save(dirname, config, weights, fn, dtype="F32", shards=1):
    os.makedirs(dirname, exist_ok=True)
    for f in os.listdir(dirname):
        os.remove(os.path.join(dirname, f))
    config = dict(config, torch_dtype={"F32": "float32", "F16": "float16", "BF16": "bfloat16"}[dtype])
    with open(os.path.join(dirname, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    names = list(weights)
    if shards == 1:
        write_safetensors(os.path.join(dirname, "model.safetensors"), weights, dtype)
    else:
        wm, per = {}, -(-len(names) // shards)
        for s in range(shards):
            fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
            part = {n: weights[n] for n in names[s * per:(s + 1) * per]}
            write_safetensors(os.path.join(dirname, fname), part, dtype)
            wm.update({n: fname for n in part})
        with open(os.path.join(dirname, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f, indent=2)
    w64 = {n: stored(a, dtype) for n, a in weights.items()}
    vocab = config["vocab_size"]
    with open(os.path.join(dirname, "expected.json"), "w") as f:
        json.dump(expected(fn, config, w64, vocab), f)


def main():
    gpt2 = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": 61, "n_embd": 32,
            "n_layer": 2, "n_head": 4, "n_positions": 24, "layer_norm_epsilon": 1e-5,
            "activation_function": "gelu_new", "tie_word_embeddings": True}
    gw = gpt2_weights(gpt2)
    save("gpt2", gpt2, gw, gpt2_logits)
    save("gpt2-f16", gpt2, gw, gpt2_logits, dtype="F16")

    llama = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 53, "hidden_size": 32,
             "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "hidden_act": "silu",
             "attention_bias": True, "mlp_bias": False, "tie_word_embeddings": False}
    lw = llama_weights(llama)
    save("llama", llama, lw, llama_logits)
    save("llama-bf16-sharded", llama, lw, llama_logits, dtype="BF16", shards=2)

    qwen = {"model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "vocab_size": 47, "hidden_size": 24,
            "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2,
            "max_position_embeddings": 32, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "hidden_act": "silu",
            "tie_word_embeddings": True, "use_sliding_window": False}
    save("qwen2", qwen, llama_weights(qwen), llama_logits)

    # Llama 3 rope scaling; head_dim 8 puts one frequency in each of its three bands.
    llama3 = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": 31, "hidden_size": 16,
              "intermediate_size": 24, "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1,
              "head_dim": 8, "max_position_embeddings": 32, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
              "hidden_act": "silu", "tie_word_embeddings": True,
              "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 64}}
    save("llama3-rope", llama3, llama_weights(llama3), llama_logits)


if __name__ == "__main__":
    main()
