#!/usr/bin/env python3
"""Independent checker of docs/conformance/vectors.json.

Written from docs/PROTOCOL.md and docs/PROTOCOL-WIRE.md alone (Python 3
standard library only, Ed25519 verification from RFC 8032): it recomputes
every value in the file and exits non-zero on any mismatch.

    python3 docs/conformance/check.py [path/to/vectors.json]
"""
import hashlib
import json
import math
import os
import re
import struct
import sys

FAILS = []
CHECKS = [0]


def check(name, got, want):
    CHECKS[0] += 1
    if got != want:
        FAILS.append("%s: got %r, want %r" % (name, got, want))


def f64(h):
    return struct.unpack(">d", bytes.fromhex(h))[0]


def f64hex(x):
    return struct.pack(">d", x).hex()


def f32(h):
    return struct.unpack(">f", bytes.fromhex(h))[0]


# ---- PROTOCOL.md §1 Philox4x32-10 ----
M32 = 0xFFFFFFFF


def philox(ctr, key):
    c0, c1, c2, c3 = ctr
    k0, k1 = key
    for r in range(10):
        if r:
            k0, k1 = (k0 + 0x9E3779B9) & M32, (k1 + 0xBB67AE85) & M32
        p0, p1 = 0xD2511F53 * c0, 0xCD9E8D57 * c2
        c0, c1, c2, c3 = ((p1 >> 32) ^ c1 ^ k0) & M32, p1 & M32, ((p0 >> 32) ^ c3 ^ k1) & M32, p0 & M32
    return [c0, c1, c2, c3]


# ---- §2 seeds ----
def derive_seed(run, machine, sample):
    rb = run.encode()
    d = hashlib.sha256(b"zopeer/seed/v1\x00" + struct.pack(">I", len(rb)) + rb + struct.pack(">QQ", machine, sample)).digest()
    return list(struct.unpack("<2I", d[0:8])), list(struct.unpack("<2I", d[8:16]))


def block(seed, b):
    key, stream = seed
    return philox((b & M32, b >> 32, stream[0], stream[1]), key)


def uniform(seed, b):
    r = block(seed, b)
    return ((r[0] << 32 | r[1]) >> 11) * 2.0 ** -53


def code_uniform(seed):
    return uniform(seed, 1 << 63)


def coeff_uniform(seed, t):
    return uniform(seed, (1 << 63) + (1 << 62) + t)


# ---- §3.1 estimators ----
def part_of(seed, parts):
    """The group an update perturbs: floor(x * parts / 2^64), x = words 0, 1 of block 2^63 + 2^61."""
    r = block(seed, (1 << 63) + (1 << 61))
    return ((r[0] << 32 | r[1]) * parts) >> 64


def groups(ts, parts):
    """Each tensor's group: trainable tensor j (layout order) of T is in group floor(j * parts / T)."""
    T = sum(1 for t in ts if t["trainable"])
    out, j = [], 0
    for t in ts:
        if t["trainable"]:
            out.append(j * parts // T if parts > 1 else 0)
            j += 1
        else:
            out.append(-1)
    return out


def scale_of(cfg, t):
    return cfg.get("scale", {}).get(t["name"], 0)


def active(cfg, ts, ti, seed):
    if not ts[ti]["trainable"]:
        return False
    parts = cfg.get("parts", 0)
    return parts <= 1 or groups(ts, parts)[ti] == part_of(seed, parts)


# ---- §3 perturbations (bit j of a word is (w >> j) & 1: least significant first) ----
def z_int(dist, seed, i):
    if dist == "rademacher":
        w = block(seed, i // 128)[(i // 32) % 4]
        return 1 - 2 * ((w >> (i % 32)) & 1)
    w = block(seed, i // 4)[i % 4]
    return (w & 255) + ((w >> 8) & 255) + ((w >> 16) & 255) + (w >> 24) - 510


def sigma(dist):
    return 1.0 if dist == "rademacher" else math.sqrt(21845)


# ---- §4 the one-byte code ----
def dequantize(e, q):
    return math.ldexp(float(q), e - 128)


def code_limit(e, bound):
    if not (bound > 0) or math.isinf(bound):
        return 127
    try:
        x = math.ldexp(bound, 128 - e)
    except OverflowError:
        return 127
    return 127 if x >= 127 else int(math.floor(x))


def quantize(g, u, bound):
    bounded = bound > 0 and not math.isinf(bound)
    clip = (lambda v: max(-bound, min(bound, v))) if bounded else (lambda v: v)
    if any(math.isnan(v) or math.isinf(v) for v in g):
        return None
    m = max(abs(clip(v)) for v in g)
    if m == 0:
        return 0, [0] * len(g)
    f, x = math.frexp(m)
    e = x - 7 + 128
    if 128 * f > 127:
        e += 1
    if e > 255:
        return None
    e = max(e, 0)
    lim = code_limit(e, bound)
    codes = []
    for v, uj in zip(g, u):
        y = math.ldexp(clip(v), 128 - e)
        fl = math.floor(y)
        q = fl + (1 if uj < y - fl else 0)
        codes.append(int(max(-lim, min(lim, q))))
    return e, codes


# ---- §5 weights ----
def round_half_even(x):
    return int(round(x))  # Python's round is half-to-even on binary64


def layout(tensors):
    out, off = [], 0
    for t in tensors:
        data = [f32(h) for h in t["base_f32"]]
        m = max(abs(v) for v in data)
        k = math.frexp(m)[1]  # m < 2^k; frexp(0) = (0, 0)
        k = max(k, -2)
        exp = 28 - k
        q = [round_half_even(math.ldexp(v, exp)) for v in data]
        out.append({"name": t["name"], "shape": t["shape"], "trainable": t["trainable"], "offset": off, "exp": exp, "q": q})
        off += -(-len(data) // 128) * 128
    return out


def wrap32(v):
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def tensor_hash(t):
    h = hashlib.sha256()
    nb = t["name"].encode()
    h.update(struct.pack(">I", len(nb)) + nb + struct.pack(">I", len(t["shape"])))
    for d in t["shape"]:
        h.update(struct.pack(">Q", d))
    h.update(struct.pack(">i", t["exp"]))
    h.update(struct.pack("<%di" % len(t["q"]), *[wrap32(v) for v in t["q"]]))
    return h.digest()


def weights_hash(ts):
    h = hashlib.sha256(b"zopeer/weights/v1\x00")
    for t in ts:
        h.update(tensor_hash(t))
    return h.hexdigest()


# ---- §6 updates ----
def lr_at(lr, warmup, decay, s):
    if warmup > 0:
        lr = lr * min(1.0, float(s + 1) / float(warmup))
    if decay > 0:
        lr = lr * max(0.0, 1.0 - float(s) / float(decay))
    return lr


def coeff(cfg, ts, ti, u, seed):
    t = ts[ti]
    if not active(cfg, ts, ti, seed):
        return 0
    x = -lr_at(cfg["lr"], cfg["warmup"], cfg["decay"], u["sample"]) * dequantize(u["exp"], u["code"])
    x = math.ldexp(x, t["exp"] + scale_of(cfg, t)) / sigma(cfg["dist"])
    fl = math.floor(x)
    c = fl + (1 if coeff_uniform(seed, ti) < x - fl else 0)
    return int(max(-(1 << 26), min(1 << 26, c)))


def apply(cfg, ts, u, sign):
    seed = derive_seed(cfg["run"], u["machine"], u["sample"])
    zseed = perturb_seed(cfg, u["machine"], u["sample"], u.get("slot", 0))
    for ti, t in enumerate(ts):
        c = coeff(cfg, ts, ti, u, seed) * sign
        if c:
            t["q"] = [wrap32(q + c * z_int(cfg["dist"], zseed, t["offset"] + j)) for j, q in enumerate(t["q"])]


# ---- §12 seed pools ----
def pool_seed(run, k):
    rb = run.encode()
    d = hashlib.sha256(b"zopeer/pool-seed/v1\x00" + struct.pack(">I", len(rb)) + rb + struct.pack(">I", k)).digest()
    return list(struct.unpack("<2I", d[0:8])), list(struct.unpack("<2I", d[8:16]))


def pool_index(run, machine, sample, pool):
    rb = run.encode()
    d = hashlib.sha256(b"zopeer/seed/v1\x00" + struct.pack(">I", len(rb)) + rb + struct.pack(">QQ", machine, sample)).digest()
    return struct.unpack("<Q", d[16:24])[0] % pool


def pool_slot_index(cfg, machine, sample, slot):
    """§12.1: slot j of an update is pool seed (k_0 + j) mod K; §12's k_0 without choices."""
    k0 = pool_index(cfg["run"], machine, sample, cfg["pool"])
    if not cfg.get("pool_choices", 0):
        return k0
    return (k0 + slot) % cfg["pool"]


def perturb_seed(cfg, machine, sample, slot=0):
    if cfg.get("pool", 0) == 0:
        return derive_seed(cfg["run"], machine, sample)
    return pool_seed(cfg["run"], pool_slot_index(cfg, machine, sample, slot))


# ---- §7 digests ----
def update_hash(m, s, e, q, slot=None):
    if slot is not None:  # §12.1: a slotted update's v2 term
        return hashlib.sha256(b"zopeer/update/v2\x00" + struct.pack(">QQBbB", m, s, e, q, slot)).digest()
    return hashlib.sha256(b"zopeer/update/v1\x00" + struct.pack(">QQBb", m, s, e, q)).digest()


def exclusion_hash(m):
    return hashlib.sha256(b"zopeer/exclusion/v1\x00" + struct.pack(">Q", m)).digest()


def digest_add(d, h, sign=1):
    return (d + sign * int.from_bytes(h, "little")) % (1 << 256)


def digest_hex(d):
    return d.to_bytes(32, "little").hex()


# ---- PROTOCOL-WIRE.md §1 identity, §1.1 Ed25519 (RFC 8032, strict keys, cofactorless) ----
P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def padd(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    A = (y1 - x1) * (y2 - x2) % P
    B = (y1 + x1) * (y2 + x2) % P
    C = 2 * t1 * t2 * D % P
    Dd = 2 * z1 * z2 % P
    E, F, G, H = B - A, Dd - C, Dd + C, B + A
    return (E * F % P, G * H % P, F * G % P, E * H % P)


def pmul(s, p):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = padd(q, p)
        p = padd(p, p)
        s >>= 1
    return q


def pencode(p):
    x, y, z, _ = p
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def pdecode(b):
    """RFC 8032 §5.1.3 decoding: refuses non-canonical encodings."""
    if len(b) != 32:
        return None
    y = int.from_bytes(b, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        if sign:
            return None
        return (0, y, 1, 0)
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y, 1, x * y % P)


def is_identity(p):
    x, y, z, _ = p
    return x % P == 0 and (y - z) % P == 0


GY = 4 * pow(5, P - 2, P) % P
B = pdecode(GY.to_bytes(32, "little"))


def strict_key(pub):
    a = pdecode(pub)
    return a is not None and not is_identity(pmul(8, a))


def verify(pub, msg, sig):
    if len(sig) != 64 or not strict_key(pub):
        return False
    a = pdecode(pub)
    s = int.from_bytes(sig[32:], "little")
    if s >= L:
        return False
    k = int.from_bytes(hashlib.sha512(sig[:32] + pub + msg).digest(), "little") % L
    ax, ay, az, at = a
    r = padd(pmul(s, B), pmul(k, ((P - ax) % P, ay, az, (P - at) % P)))
    return pencode(r) == sig[:32]


def machine_of(pub):
    return struct.unpack(">Q", hashlib.sha256(bytes([0x08, 0x01, 0x12, 0x20]) + pub).digest()[:8])[0]


def run_tag(run):
    return hashlib.sha256(run.encode()).digest()[:8]


def pow_bits(run, pub):
    rb = run.encode()
    d = hashlib.sha256(b"zopeer/pow/v1\x00" + struct.pack(">I", len(rb)) + rb + pub).digest()
    n = int.from_bytes(d, "big")
    return 256 - n.bit_length()


# ---- PROTOCOL.md §9 the manifest ----
KEYS = ["admission", "admit", "base_digest", "data", "dist", "eps", "estimator", "format_version", "grad_bound", "lr",
        "lr_decay", "lr_warmup", "max_samples", "model", "params", "pool", "pool_choices", "pow_bits", "quant", "run"]
MODEL_KEYS = ["embedded", "name", "path", "revision", "safetensors_sha256"]


class Bad(Exception):
    pass


def no_dups(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise Bad("repeated member " + k)
        d[k] = v
    return d


def parse_manifest(text):
    try:
        m = json.loads(text, object_pairs_hook=no_dups)
    except (ValueError, Bad):
        return None
    if not isinstance(m, dict) or any(k not in KEYS for k in m):
        return None
    fv = m.get("format_version", 0)
    if fv not in (0, 1) or isinstance(fv, bool):
        return None
    bd = m.get("base_digest", "0" * 64)
    if isinstance(bd, str):
        if not re.fullmatch(r"[0-9a-f]{64}", bd):
            return None
    elif isinstance(bd, list) and len(bd) == 32 and all(isinstance(x, int) and 0 <= x < 256 for x in bd):
        bd = bytes(bd).hex()
    else:
        return None
    out = {
        "admission": m.get("admission", ""), "admit": m.get("admit") or [], "base_digest": bd,
        "dist": m.get("dist", ""), "eps": float(m.get("eps", 0)), "grad_bound": float(m.get("grad_bound", 0)),
        "lr": float(m.get("lr", 0)), "lr_decay": m.get("lr_decay", 0), "lr_warmup": m.get("lr_warmup", 0),
        "max_samples": m.get("max_samples", 0), "params": m.get("params") or {}, "pool": m.get("pool", 0), "pool_choices": m.get("pool_choices", 0),
        "pow_bits": m.get("pow_bits", 0), "quant": m.get("quant", ""), "run": m.get("run", ""), "model": m.get("model") or {},
    }
    if not isinstance(out["model"], dict) or any(k not in MODEL_KEYS for k in out["model"]):
        return None
    if "data" in m:
        d = m["data"]
        if not isinstance(d, dict) or sorted(d) != ["batch_size", "digest", "tolerance"]:
            return None
        if not re.fullmatch(r"[0-9a-f]{64}", d["digest"]) or not isinstance(d["batch_size"], int) or d["batch_size"] < 1:
            return None
        out["data"] = {"batch_size": d["batch_size"], "digest": d["digest"], "tolerance": float(d["tolerance"])}
    est = m.get("estimator") or {}
    if not isinstance(est, dict) or any(k not in ("onesided", "parts", "scale") for k in est):
        return None
    parts, scale, onesided = est.get("parts", 0), est.get("scale") or {}, est.get("onesided", 0)
    if not isinstance(parts, int) or isinstance(parts, bool) or parts < 0 or not isinstance(scale, dict):
        return None
    if not isinstance(onesided, int) or isinstance(onesided, bool) or onesided < 0:
        return None
    if any(not isinstance(v, int) or isinstance(v, bool) for v in scale.values()):
        return None
    out["estimator"] = {"parts": parts, "scale": {k: v for k, v in scale.items() if v}, "onesided": onesided}
    return out


def es_number(v):
    """ECMAScript Number::toString (RFC 8785 §3.2.2.3)."""
    if v == 0:
        return "0"
    if v < 0:
        return "-" + es_number(-v)
    r = repr(v)  # shortest round-trip digits
    mant, _, ex = r.partition("e")
    ex = int(ex) if ex else 0
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    n = len(ip) + ex - lead  # v = 0.digits × 10^n
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    s = digits[0] + ("." + digits[1:] if k > 1 else "")
    return s + "e" + ("+" if e >= 0 else "-") + str(abs(e))


def es_string(s):
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\b\f\n\r\t":
            out.append({"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif o < 0x20:
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def canonical_manifest(m):
    parts = []
    if m["admission"]:
        parts.append('"admission":' + es_string(m["admission"]))
    if m["admit"]:
        parts.append('"admit":[' + ",".join(es_string(a) for a in m["admit"]) + "]")
    parts.append('"base_digest":"' + m["base_digest"] + '"')
    if m.get("data"):
        d = m["data"]
        parts.append('"data":{"batch_size":%d,"digest":"%s","tolerance":%s}' % (d["batch_size"], d["digest"], es_number(d["tolerance"])))
    parts.append('"dist":' + es_string(m["dist"]))
    parts.append('"eps":' + es_number(m["eps"]))
    est = m["estimator"]
    if est["parts"] or est["scale"] or est["onesided"]:
        e = []
        if est["onesided"]:
            e.append('"onesided":%d' % est["onesided"])
        if est["parts"]:
            e.append('"parts":%d' % est["parts"])
        if est["scale"]:
            ks = sorted(est["scale"], key=lambda k: k.encode("utf-16-be"))
            e.append('"scale":{' + ",".join(es_string(k) + ":%d" % est["scale"][k] for k in ks) + "}")
        parts.append('"estimator":{' + ",".join(e) + "}")
    parts.append('"format_version":1')
    if m["grad_bound"]:
        parts.append('"grad_bound":' + es_number(m["grad_bound"]))
    parts.append('"lr":' + es_number(m["lr"]))
    for k in ("lr_decay", "lr_warmup", "max_samples"):
        if m[k]:
            parts.append('"%s":%d' % (k, m[k]))
    model = [(k, v) for k, v in sorted(m["model"].items()) if v]
    if model:
        parts.append('"model":{' + ",".join(es_string(k) + ":" + ("true" if v is True else es_string(v)) for k, v in model) + "}")
    if m["params"]:
        ks = sorted(m["params"], key=lambda k: k.encode("utf-16-be"))
        parts.append('"params":{' + ",".join(es_string(k) + ":" + es_string(m["params"][k]) for k in ks) + "}")
    if m["pool"]:
        parts.append('"pool":%d' % m["pool"])
    if m["pool_choices"]:
        parts.append('"pool_choices":%d' % m["pool_choices"])
    if m["pow_bits"]:
        parts.append('"pow_bits":%d' % m["pow_bits"])
    parts.append('"quant":' + es_string(m["quant"]))
    parts.append('"run":' + es_string(m["run"]))
    return "{" + ",".join(parts) + "}"


# ---- PROTOCOL-WIRE.md §3 batches ----
def uvarint(b, i):
    v, shift, start = 0, 0, i
    while True:
        if i >= len(b) or shift > 63:
            raise Bad("malformed")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            break
        shift += 7
    if v >= 1 << 64:
        raise Bad("malformed")
    if i - start != len(enc_uvarint(v)):
        raise Bad("malformed")  # not minimal
    return v, i


def enc_uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append(v & 0x7F | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


MAX_V1 = 4214
MAX_EXT = 16384


def decode_basis(v):
    """Extension type 1 (PROTOCOL-WIRE.md §3.3): [(machine, [(lo, hi), ...]), ...]."""
    n, i = uvarint(v, 0)
    out = []
    for _ in range(n):
        if len(v) - i < 8:
            raise Bad("malformed")
        m = int.from_bytes(v[i:i + 8], "big")
        if out and m <= out[-1][0]:
            raise Bad("malformed")
        nr, i = uvarint(v, i + 8)
        if nr == 0:
            raise Bad("malformed")
        rs, prev = [], 0
        for j in range(nr):
            gap, i = uvarint(v, i)
            span, i = uvarint(v, i)
            if j > 0 and gap < 2:
                raise Bad("malformed")
            lo = gap if j == 0 else prev + gap
            if lo + span >= 1 << 64:
                raise Bad("malformed")
            rs.append((lo, lo + span))
            prev = lo + span
        out.append((m, rs))
    if i != len(v):
        raise Bad("malformed")
    return out


def decode_pool_slots(v):
    """Extension type 2 (PROTOCOL-WIRE.md §3.3): one slot byte per update; its length is checked against count."""
    if len(v) == 0:
        raise Bad("malformed")
    return list(v)


EXT_TYPES = {1: decode_basis, 2: decode_pool_slots}


def decode_ext_block(b, i):
    """The extension block at b[i:]; returns ([(type, value)], index after it)."""
    n, i = uvarint(b, i)
    if n == 0 or n > MAX_EXT or n > len(b) - i:
        raise Bad("malformed")
    end, exts = i + n, []
    while i < end:
        if len(exts) == 16:
            raise Bad("malformed")
        t, i = uvarint(b[:end], i)
        ln, i = uvarint(b[:end], i)
        if ln > end - i or (exts and t <= exts[-1][0]) or t not in EXT_TYPES:
            raise Bad("malformed")
        EXT_TYPES[t](b[i:i + ln])
        exts.append((t, b[i:i + ln]))
        i += ln
    return exts, end


def decode_batch(b, run):
    """Every Reject row of §3.2 that needs only the bytes; raises Bad(reason)."""
    if len(b) > MAX_V1 + 3 + MAX_EXT or len(b) < 108:
        raise Bad("malformed")
    if b[0] not in (1, 2):
        raise Bad("version")
    if b[1:9] != run_tag(run):
        raise Bad("wrong_run")
    if b[0] == 1 and len(b) > MAX_V1:
        raise Bad("malformed")
    pub = b[9:41]
    first, i = uvarint(b, 41)
    count, i = uvarint(b, i)
    if count == 0 or count > 4096 or first + count - 1 >= 1 << 64:
        raise Bad("malformed")
    if len(b) - i < 1 + count + 64 or (b[0] == 1 and len(b) - i != 1 + count + 64):
        raise Bad("malformed")
    exp = b[i]
    raw = b[i + 1:i + 1 + count]
    if 0x80 in raw:
        raise Bad("malformed")
    exts = []
    if b[0] == 2:
        exts, j = decode_ext_block(b[:-64], i + 1 + count)
        if j != len(b) - 64:
            raise Bad("malformed")
        if any(t == 2 and len(v) != count for t, v in exts):
            raise Bad("malformed")
    codes = [c - 256 if c > 127 else c for c in raw]
    if not verify(pub, b"zopeer/batch/1" + b[:-64], b[-64:]):
        raise Bad("signature")
    slots = next((list(v) for t, v in exts if t == 2), None)
    return {"pub": pub, "machine": machine_of(pub), "first": first, "exp": exp, "codes": codes, "slots": slots,
            "exts": [{"type": t, "hex": v.hex()} for t, v in exts]}


def admit_batch(b, m):
    x = decode_batch(b, m["run"])
    if m["admission"] == "closed" and "%016x" % x["machine"] not in m["admit"]:
        raise Bad("not_admitted")
    if m["max_samples"] and x["first"] + len(x["codes"]) - 1 >= m["max_samples"]:
        raise Bad("sample_cap")
    lim = code_limit(x["exp"], m["grad_bound"])
    if any(abs(c) > lim for c in x["codes"]):
        raise Bad("bound")
    basis = [e for e in x["exts"] if e["type"] == 1]
    if m.get("data") and not basis:
        raise Bad("basis")
    for e in basis:
        for mach, rs in decode_basis(bytes.fromhex(e["hex"])):
            if mach == x["machine"] and rs[-1][1] >= x["first"]:
                raise Bad("basis")
    if (x["slots"] is None) != (m["pool_choices"] == 0) or any(j >= m["pool_choices"] for j in x["slots"] or []):
        raise Bad("pool")
    if m["admission"] != "closed" and m["pow_bits"] and pow_bits(m["run"], x["pub"]) < m["pow_bits"]:
        raise Bad("pow")
    return x


# ---- §6 evidence ----
def decode_evidence(b, run):
    if len(b) < 10 or len(b) > 1 + 8 + 1 + 2 * (10 + MAX_V1 + 3 + MAX_EXT):
        raise Bad("malformed")
    if b[0] != 1:
        raise Bad("version")
    if b[1:9] != run_tag(run):
        raise Bad("wrong_run")
    if b[9] == 2:
        return decode_accusation(b, run)
    if b[9] != 1:
        raise Bad("malformed")
    i, parts = 10, []
    for _ in range(2):
        n, i = uvarint(b, i)
        if n > len(b) - i:
            raise Bad("malformed")
        parts.append((b[i:i + n], decode_batch(b[i:i + n], run)))
        i += n
    if i != len(b):
        raise Bad("malformed")
    (ra, a), (rb, bb) = parts
    if not ra < rb or a["pub"] != bb["pub"]:
        raise Bad("invalid")
    lo = max(a["first"], bb["first"])
    hi = min(a["first"] + len(a["codes"]), bb["first"] + len(bb["codes"])) - 1
    def value(x, s):  # (exp, code, slot or None): a slot is part of the value (PROTOCOL.md §12.1)
        return x["exp"], x["codes"][s - x["first"]], None if x["slots"] is None else x["slots"][s - x["first"]]
    for s in range(lo, hi + 1):
        if value(a, s) != value(bb, s):
            return a["machine"], s
    raise Bad("invalid")


def decode_accusation(b, run):
    """PROTOCOL-WIRE.md §6.1: (accused machine, sample, accuser machine)."""
    if len(b) < 10 + 32 + 2 + 64:
        raise Bad("malformed")
    pub = b[10:42]
    sample, i = uvarint(b, 42)
    n, i = uvarint(b, i)
    if n + 64 != len(b) - i:
        raise Bad("malformed")
    x = decode_batch(b[i:i + n], run)
    if not verify(pub, b"zopeer/accusation/1" + b[:-64], b[-64:]):
        raise Bad("signature")
    if not x["first"] <= sample < x["first"] + len(x["codes"]):
        raise Bad("invalid")
    if machine_of(pub) == x["machine"] or not any(t == 1 for t in (e["type"] for e in x["exts"])):
        raise Bad("invalid")
    return x["machine"], sample, machine_of(pub)


def excess(exp, code, g, bound):
    """PROTOCOL.md §11.3."""
    if bound > 0:
        g = max(-bound, min(bound, g))
    step = math.ldexp(1.0, exp - 128)
    return max(0.0, abs(code * step - g) - step)


# ---- §4 state announcements ----
def decode_state(b, run):
    if len(b) > 1 + 8 + 32 + 20 + 64 + 64 or len(b) < 1 + 8 + 32 + 2 + 64 + 64:
        raise Bad("malformed")
    if b[0] != 1:
        raise Bad("version")
    if b[1:9] != run_tag(run):
        raise Bad("wrong_run")
    pub = b[9:41]
    t, i = uvarint(b, 41)
    n, i = uvarint(b, i)
    if len(b) - i != 128:
        raise Bad("malformed")
    if not verify(pub, b"zopeer/state/1" + b[:-64], b[-64:]):
        raise Bad("signature")
    return {"machine": machine_of(pub), "time": t, "count": n, "set_digest": b[i:i + 32].hex(), "weights_hash": b[i + 32:i + 64].hex()}


# ---- §5 sync ----
def decode_request(b, run):
    if len(b) < 10 or b[0] != 1 or b[1:9] != run_tag(run):
        raise Bad("malformed")
    kind, i, q = b[9], 10, {"kind": b[9], "machine": 0, "lo": 0, "hi": 0}
    if kind in (2, 4):
        if len(b) < 18:
            raise Bad("malformed")
        q["machine"] = struct.unpack(">Q", b[10:18])[0]
        i = 18
        if kind == 2:
            q["lo"], i = uvarint(b, i)
            q["hi"], i = uvarint(b, i)
            if q["lo"] > q["hi"]:
                raise Bad("malformed")
    elif kind == 6:  # snapshot data: weights hash, offset
        if len(b) < 42:
            raise Bad("malformed")
        q["hash"] = b[10:42].hex()
        q["offset"], i = uvarint(b, 42)
    elif kind not in (1, 3, 5):
        raise Bad("malformed")
    if i != len(b):
        raise Bad("malformed")
    return q


def decode_snap_info(b):
    """PROTOCOL-WIRE.md §5.7: count, set digest, weights hash, size, then a digest body."""
    if len(b) < 80:
        raise Bad("malformed")
    count, size = struct.unpack(">Q", b[0:8])[0], struct.unpack(">Q", b[72:80])[0]
    hs, ex = decode_digest(b[80:])
    n = 0
    for h in hs:
        if h["machine_digest"] != "0":
            raise Bad("malformed")
        n += sum(int(hi) - int(lo) + 1 for lo, hi in h["ranges"])
    if n != count or size % 4:
        raise Bad("malformed")
    return {"count": str(count), "set_digest": b[8:40].hex(), "weights_hash": b[40:72].hex(), "size": str(size)}


def decode_digest(b):
    n, i = uvarint(b, 0)
    hs, prev_m = [], None
    for _ in range(n):
        if len(b) - i < 16:
            raise Bad("malformed")
        m, dg = struct.unpack(">QQ", b[i:i + 16])
        if prev_m is not None and m <= prev_m:
            raise Bad("malformed")
        prev_m = m
        nr, i = uvarint(b, i + 16)
        if nr == 0:
            raise Bad("malformed")
        rs, prev = [], 0
        for j in range(nr):
            gap, i = uvarint(b, i)
            span, i = uvarint(b, i)
            if j > 0 and gap < 2:
                raise Bad("malformed")
            lo = gap if j == 0 else prev + gap
            if lo >= 1 << 64 or lo + span >= 1 << 64:
                raise Bad("malformed")
            rs.append([str(lo), str(lo + span)])
            prev = lo + span
        hs.append({"machine": str(m), "machine_digest": str(dg), "ranges": rs})
    ne, i = uvarint(b, i)
    if ne > 4096 or len(b) - i != 8 * ne:
        raise Bad("malformed")
    ex = [struct.unpack(">Q", b[i + 8 * k:i + 8 * k + 8])[0] for k in range(ne)]
    if any(ex[k] <= ex[k - 1] for k in range(1, ne)):
        raise Bad("malformed")
    return hs, [str(e) for e in ex]


def frame(body):
    return enc_uvarint(len(body)) + body


# ---- layouts (PROTOCOL.md §5.1) ----
def layout_names(cfg):
    t = []
    add = lambda n, *s: t.append({"name": n, "shape": list(s)})
    mt = cfg["model_type"]
    if mt == "gpt2":
        d, ff = cfg["n_embd"], cfg.get("n_inner") or 4 * cfg["n_embd"]
        add("transformer.wte.weight", cfg["vocab_size"], d)
        add("transformer.wpe.weight", cfg["n_positions"], d)
        for l in range(cfg["n_layer"]):
            p = "transformer.h.%d." % l
            add(p + "ln_1.weight", d), add(p + "ln_1.bias", d)
            add(p + "attn.c_attn.weight", d, 3 * d), add(p + "attn.c_attn.bias", 3 * d)
            add(p + "attn.c_proj.weight", d, d), add(p + "attn.c_proj.bias", d)
            add(p + "ln_2.weight", d), add(p + "ln_2.bias", d)
            add(p + "mlp.c_fc.weight", d, ff), add(p + "mlp.c_fc.bias", ff)
            add(p + "mlp.c_proj.weight", ff, d), add(p + "mlp.c_proj.bias", d)
        add("transformer.ln_f.weight", d), add("transformer.ln_f.bias", d)
        return t
    d, ff = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or d // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, (cfg.get("num_key_value_heads") or cfg["num_attention_heads"]) * hd
    if mt == "qwen2":
        qkvb, ob, mb = True, False, False
    else:
        qkvb = ob = bool(cfg.get("attention_bias", False))
        mb = bool(cfg.get("mlp_bias", False))
    add("model.embed_tokens.weight", cfg["vocab_size"], d)
    for l in range(cfg["num_hidden_layers"]):
        p = "model.layers.%d." % l
        add(p + "input_layernorm.weight", d)
        for n, o, i, bias in (("q_proj", q, d, qkvb), ("k_proj", kv, d, qkvb), ("v_proj", kv, d, qkvb), ("o_proj", d, q, ob)):
            add(p + "self_attn." + n + ".weight", o, i)
            if bias:
                add(p + "self_attn." + n + ".bias", o)
        add(p + "post_attention_layernorm.weight", d)
        for n, o, i in (("gate_proj", ff, d), ("up_proj", ff, d), ("down_proj", d, ff)):
            add(p + "mlp." + n + ".weight", o, i)
            if mb:
                add(p + "mlp." + n + ".bias", o)
    add("model.norm.weight", d)
    if not cfg.get("tie_word_embeddings", False):
        add("lm_head.weight", cfg["vocab_size"], d)
    return t


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "vectors.json")
    with open(path, encoding="utf-8") as f:
        v = json.load(f)

    for c in v["philox"]:
        check("philox", philox(c["counter"], c["key"]), c["out"])

    for c in v["seeds"]:
        n = "seed %s/%s/%s" % (c["run"], c["machine"], c["sample"])
        s = derive_seed(c["run"], int(c["machine"]), int(c["sample"]))
        check(n + " key", s[0], c["key"])
        check(n + " stream", s[1], c["stream"])
        for b, want in c["blocks"].items():
            check(n + " block " + b, block(s, int(b)), want)
        check(n + " code uniform block", block(s, 1 << 63), c["code_uniform_block"])
        check(n + " code uniform", f64hex(code_uniform(s)), c["code_uniform"])
        check(n + " coeff uniform block", block(s, (1 << 63) + (1 << 62)), c["coeff_uniform_block_0"])
        check(n + " coeff uniforms", [f64hex(coeff_uniform(s, t)) for t in range(3)], c["coeff_uniforms"])
        check(n + " rademacher", [z_int("rademacher", s, i) for i in range(260)], c["rademacher_0_260"])
        check(n + " gauss4", [z_int("gauss4", s, i) for i in range(12)], c["gauss4_0_12"])
        check(n + " rademacher far", z_int("rademacher", s, 1099511627853), c["rademacher_at_1099511627853"])
        check(n + " gauss4 far", z_int("gauss4", s, 1099511627853), c["gauss4_at_1099511627853"])

    code = v["code"]
    for c in code["code_limit"]:
        check("code_limit %d %s" % (c["exp"], c["bound"]), code_limit(c["exp"], f64(c["bound"])), c["limit"])
    for c in code["dequantize"]:
        check("dequantize", f64hex(dequantize(c["exp"], c["code"])), c["value"])
    for c in code["quantize"]:
        g = [f64(x) for x in c["g"]]
        u = [code_uniform(derive_seed(c["run"], int(c["machine"]), j)) for j in range(len(g))]
        check("quantize uniforms", [f64hex(x) for x in u], c["uniforms"])
        r = quantize(g, u, f64(c["bound"]))
        check("quantize %s" % c["g"], r, None if c.get("error") else (c["exp"], c["codes"]))

    for c in v["engine"]:
        cfg = {"run": c["run"], "dist": c["dist"], "lr": f64(c["lr"]), "eps": f64(c["eps"]),
               "warmup": int(c["lr_warmup"]), "decay": int(c["lr_decay"])}
        if "estimator" in c:
            cfg["parts"] = c["estimator"]["parts"]
            cfg["scale"] = c["estimator"]["scale"] or {}
        ts = layout(c["tensors"])
        n = "engine " + c["dist"] + (" estimator" if "estimator" in c else "")

        def cmp_layout(tag, want):
            for t, w in zip(ts, want):
                check(n + tag + " offset " + t["name"], str(t["offset"]), w["offset"])
                check(n + tag + " exp " + t["name"], t["exp"], w["exp"])
                check(n + tag + " q " + t["name"], [wrap32(x) for x in t["q"]], w["q"])
        cmp_layout(" base", c["base"]["layout"])
        for t, w in zip(ts, c["base"]["layout"]):
            e = round_half_even(math.ldexp(cfg["eps"], t["exp"] + scale_of(cfg, t)) / sigma(cfg["dist"])) if t["trainable"] else 0
            check(n + " eps grid " + t["name"], e, w["eps_grid"])
        check(n + " base hash", weights_hash(ts), c["base"]["weights_hash"])
        us = []
        for w in c["updates"]:
            u = {"machine": int(w["machine"]), "sample": int(w["sample"]), "exp": w["exp"], "code": w["code"]}
            us.append(u)
            seed = derive_seed(cfg["run"], u["machine"], u["sample"])
            check(n + " lr(s)", f64hex(lr_at(cfg["lr"], cfg["warmup"], cfg["decay"], u["sample"])), w["lr_at_sample"])
            check(n + " grad", f64hex(dequantize(u["exp"], u["code"])), w["grad"])
            check(n + " coeffs", [coeff(cfg, ts, ti, u, seed) for ti in range(len(ts))], w["coeffs"])
            check(n + " update hash", update_hash(u["machine"], u["sample"], u["exp"], u["code"]).hex(), w["update_hash"])
        if "update_parts" in c:
            check(n + " update parts", [part_of(derive_seed(cfg["run"], u["machine"], u["sample"]), cfg["parts"]) for u in us], c["update_parts"])
        d = 0
        for st in c["steps"]:
            u = us[st["update"]]
            h = update_hash(u["machine"], u["sample"], u["exp"], u["code"])
            if st["do"] == "apply":
                apply(cfg, ts, u, 1)
                d = digest_add(d, h)
            elif st["do"] == "remove":
                apply(cfg, ts, u, -1)
                d = digest_add(d, h, -1)
            else:  # exclude the machine: remove its update, add its exclusion hash
                apply(cfg, ts, u, -1)
                d = digest_add(digest_add(d, h, -1), exclusion_hash(u["machine"]))
            cmp_layout(" " + st["do"], st["layout"])
            check(n + " " + st["do"] + " weights hash", weights_hash(ts), st["weights_hash"])
            check(n + " " + st["do"] + " set digest", digest_hex(d), st["set_digest"])

    pools = v["pools"]
    for c in pools["seeds"]:
        s = pool_seed(c["run"], c["k"])
        check("pool seed %s/%d" % (c["run"], c["k"]), [s[0], s[1], block(s, 0)], [c["key"], c["stream"], c["block_0"]])
    for c in pools["indices"]:
        check("pool index", pool_index(c["run"], int(c["machine"]), int(c["sample"]), c["pool"]), c["index"])
    for c in pools["candidates"]:
        cfg = {"run": c["run"], "pool": c["pool"], "pool_choices": 256}
        check("pool candidate", pool_slot_index(cfg, int(c["machine"]), int(c["sample"]), c["slot"]), c["index"])
    base_tensors = v["engine"][0]["tensors"]
    for c in pools["engine"]:
        cfg = {"run": c["run"], "dist": c["dist"], "lr": f64(c["lr"]), "eps": f64(c["eps"]),
               "warmup": int(c["lr_warmup"]), "decay": int(c["lr_decay"]), "pool": c["pool"],
               "pool_choices": c.get("pool_choices", 0)}
        n = "pool engine %s K=%d m=%d" % (c["dist"], cfg["pool"], cfg["pool_choices"])
        ts = layout(base_tensors)
        us, sums, d = [], {}, 0
        for w in c["updates"]:
            u = {"machine": int(w["machine"]), "sample": int(w["sample"]), "exp": w["exp"], "code": w["code"]}
            if cfg["pool_choices"]:
                u["slot"] = w["slot"]
                if not 0 <= u["slot"] < cfg["pool_choices"]:
                    check(n + " slot below m", u["slot"], "< %d" % cfg["pool_choices"])
                h = update_hash(u["machine"], u["sample"], u["exp"], u["code"], u["slot"])
                check(n + " update hash v2", h.hex(), w["update_hash"])
                d = digest_add(d, h)
            us.append(u)
            k = pool_slot_index(cfg, u["machine"], u["sample"], u.get("slot", 0))
            check(n + " pool index", k, w["pool_index"])
            cs = [coeff(cfg, ts, ti, u, derive_seed(cfg["run"], u["machine"], u["sample"])) for ti, t in enumerate(ts)]
            check(n + " coeffs", cs, w["coeffs"])
            sums[k] = [a + b for a, b in zip(sums.get(k, [0] * len(ts)), cs)]
        check(n + " sums", [{"pool_index": k, "sums": [str(x) for x in sums[k]]} for k in sorted(sums)], c["sums"])
        if cfg["pool_choices"]:
            check(n + " set digest", digest_hex(d), c["set_digest"])
        # The definition: one update at a time, own coefficient, pool seed's z.
        for u in us:
            apply(cfg, ts, u, 1)
        check(n + " q after all", [[wrap32(x) for x in t["q"]] for t in ts], [t["q"] for t in c["after_all"]["layout"]])
        check(n + " hash after all", weights_hash(ts), c["after_all"]["weights_hash"])
        for u in us[:3]:
            apply(cfg, ts, u, -1)
        check(n + " hash after removals", weights_hash(ts), c["after_removing_first_3"]["weights_hash"])

    for c in v["layouts"]:
        cfg = json.loads(c["config"])
        names = layout_names(cfg)
        off, got = 0, []
        for t in names:
            got.append({"name": t["name"], "shape": t["shape"], "offset": str(off)})
            off += -(-math.prod(t["shape"]) // 128) * 128
        check("layout " + cfg["model_type"], got, c["tensors"])

    for c in v["trainable"]:
        got = [c["pattern"] == "" or re.search(c["pattern"], nm) is not None for nm in c["names"]]
        check("trainable " + c["pattern"], got, c["trainable"])

    dg = v["digests"]
    for c in dg["update_hashes"]:
        check("update hash", update_hash(int(c["machine"]), int(c["sample"]), c["exp"], c["code"]).hex(), c["hash"])
    for c in dg["exclusion_hashes"]:
        check("exclusion hash", exclusion_hash(int(c["machine"])).hex(), c["hash"])
    for key in ("set_digest", "wrap"):
        d = 0
        for t in dg[key]["terms"]:
            d = digest_add(d, bytes.fromhex(t))
        check("set digest " + key, digest_hex(d), dg[key]["digest"])

    for c in v["identities"]:
        pub = bytes.fromhex(c["public_key"])
        check("machine id", str(machine_of(pub)), c["machine"])
        check("machine hex", "%016x" % machine_of(pub), c["machine_hex"])
        check("run tag", run_tag(c["run"]).hex(), c["run_tag"])
        check("pow bits", pow_bits(c["run"], pub), c["pow_bits"])

    for c in v["ed25519"]["keys"]:
        check("strict key " + c["public_key"], strict_key(bytes.fromhex(c["public_key"])), c["strict"])
    for c in v["ed25519"]["signatures"]:
        check("signature " + c["name"], verify(bytes.fromhex(c["public_key"]), bytes.fromhex(c["message"]), bytes.fromhex(c["signature"])), c["valid"])

    for c in v["manifests"]:
        m = parse_manifest(c["input"])
        check("manifest valid " + c["input"][:40], m is not None, c["valid"])
        if m is not None and c["valid"]:
            can = canonical_manifest(m)
            check("manifest canonical", can, c["canonical"])
            check("manifest sha256", hashlib.sha256(can.encode()).hexdigest(), c["sha256"])

    ctx = {}
    for c in v["batches"]["contexts"]:
        m = parse_manifest(c["manifest"])
        check("context canonical", canonical_manifest(m), c["manifest"])
        ctx[c["name"]] = m
    for c in v["batches"]["cases"]:
        try:
            x = admit_batch(bytes.fromhex(c["hex"]), ctx[c["context"]])
            got = {"verdict": "accept", "machine": str(x["machine"]), "first": str(x["first"]), "exp": x["exp"], "codes": x["codes"]}
            if x["exts"]:
                got["exts"] = x["exts"]
        except Bad as e:
            got = {"verdict": "reject", "reason": str(e)}
        want = {k: c[k] for k in ("verdict", "reason", "machine", "first", "exp", "codes", "exts") if k in c}
        check("batch " + c["name"], got, want)

    for c in v["evidence"]:
        try:
            r = decode_evidence(bytes.fromhex(c["hex"]), c["run"])
            got = {"valid": True, "machine": str(r[0]), "sample": str(r[1])}
            if len(r) == 3:
                got["accuser"] = str(r[2])
        except Bad:
            got = {"valid": False}
        check("evidence " + c["name"], got, {k: c[k] for k in ("valid", "machine", "sample", "accuser") if k in c})

    for c in v["excess"]:
        f = lambda h: struct.unpack(">d", bytes.fromhex(h))[0]
        got = struct.pack(">d", excess(c["exp"], c["code"], f(c["g"]), f(c["bound"]))).hex()
        check("excess %d %d" % (c["exp"], c["code"]), got, c["excess"])

    for c in v["states"]:
        try:
            s = decode_state(bytes.fromhex(c["hex"]), c["run"])
            got = {"valid": True, "machine": str(s["machine"]), "time": str(s["time"]), "count": str(s["count"]),
                   "set_digest": s["set_digest"], "weights_hash": s["weights_hash"]}
        except Bad as e:
            got = {"valid": False, "reason": str(e)}
        check("state " + c["name"], got, {k: c[k] for k in ("valid", "reason", "machine", "time", "count", "set_digest", "weights_hash") if k in c})

    sy = v["sync"]
    run = v["identities"][0]["run"]
    for c in sy["requests"]:
        b = bytes.fromhex(c["body"])
        try:
            q = decode_request(b, run)
            got = {"valid": True, "kind": q["kind"]}
            if q["kind"] in (5, 6):
                got.update({"hash": q.get("hash", "00" * 32), "offset": str(q.get("offset", 0))})
            else:
                got.update({"machine": str(q["machine"]), "lo": str(q["lo"]), "hi": str(q["hi"])})
            check("request frame", frame(b).hex(), c["frame"])
        except Bad:
            got = {"valid": False}
        check("request " + c["body"], got, {k: c[k] for k in ("valid", "kind", "machine", "lo", "hi", "hash", "offset") if k in c})
    for c in sy["snapshot_infos"]:
        try:
            got = dict(decode_snap_info(bytes.fromhex(c["body"])), valid=True)
        except Bad:
            got = {"valid": False}
        check("snapshot info " + c["body"][:40], got, {k: c[k] for k in ("valid", "count", "set_digest", "weights_hash", "size") if k in c})
    for c in sy["digest_responses"]:
        try:
            hs, ex = decode_digest(bytes.fromhex(c["body"]))
            got = {"valid": True, "holdings": hs or None, "excluded": ex or None}
        except Bad:
            got = {"valid": False}
        check("digest " + c["body"][:40], got, {k: c.get(k) for k in (("valid", "holdings", "excluded") if c["valid"] else ("valid",))})
    fr = sy["fetch_response"]
    body = b"".join(frame(bytes.fromhex(x)) for x in fr["batches"]) + frame(b"")
    check("fetch response", body.hex(), fr["response"])
    q = decode_request(bytes.fromhex(fr["request"])[1:], run)
    for x in fr["batches"]:
        bt = decode_batch(bytes.fromhex(x), run)
        check("fetched batch in range", bt["machine"] == q["machine"] and bt["first"] <= q["hi"] and bt["first"] + len(bt["codes"]) - 1 >= q["lo"], True)

    for f in FAILS:
        print("MISMATCH", f)
    print("%d checks, %d mismatches" % (CHECKS[0], len(FAILS)))
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
