#!/usr/bin/env python3
"""Independent reference for zopeer's perturbation stream (docs/PROTOCOL.md).

Written from the protocol document, not from the Go code. Regenerate the test
vectors with:  python3 zo/testdata/reference.py > zo/testdata/vectors.json
"""
import hashlib
import json
import struct

M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
MASK = 0xFFFFFFFF


def philox4x32_10(ctr, key):
    c = list(ctr)
    k0, k1 = key
    for r in range(10):
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        c = [((p1 >> 32) ^ c[1] ^ k0) & MASK, p1 & MASK,
             ((p0 >> 32) ^ c[3] ^ k1) & MASK, p0 & MASK]
        k0 = (k0 + W0) & MASK
        k1 = (k1 + W1) & MASK
    return c


def derive_seed(run, machine, sample):
    run_b = run.encode()
    msg = b"zopeer/seed/v1\x00" + struct.pack(">I", len(run_b)) + run_b + struct.pack(">QQ", machine, sample)
    d = hashlib.sha256(msg).digest()
    key = struct.unpack("<2I", d[0:8])
    stream = struct.unpack("<2I", d[8:16])
    return key, stream


def block(seed, b):
    key, stream = seed
    return philox4x32_10((b & MASK, b >> 32, stream[0], stream[1]), key)


def z_rademacher(seed, i):
    w = block(seed, i // 128)[(i // 32) % 4]
    return 1 - 2 * ((w >> (i % 32)) & 1)


def z_gauss4(seed, i):
    w = block(seed, i // 4)[i % 4]
    return sum((w >> s) & 0xFF for s in (0, 8, 16, 24)) - 510


def code_uniform(seed):
    r = block(seed, 1 << 63)
    return ((r[0] << 32 | r[1]) >> 11) / 2.0**53


def update_hash(machine, sample, exp, code):
    msg = b"zopeer/update/v1\x00" + struct.pack(">QQBb", machine, sample, exp, code)
    return hashlib.sha256(msg).hexdigest()


def main():
    out = {"seeds": [], "updates": []}
    cases = [("", 0, 0), ("run-1", 1, 0), ("run-1", 1, 1), ("run-1", 2, 0),
             ("sst2/gpt2", 0xDEADBEEFCAFEF00D, 123456789), ("ünïcode", 2**64 - 1, 2**64 - 1)]
    offsets = [0, 1, 127, 128, 4095, 10**6 + 3, 2**33 + 5]
    for run, m, s in cases:
        seed = derive_seed(run, m, s)
        out["seeds"].append({
            "run": run, "machine": str(m), "sample": str(s),
            "key": list(seed[0]), "stream": list(seed[1]),
            "block0": block(seed, 0), "block_2_40": block(seed, 2**40),
            "code_uniform": code_uniform(seed),
            "rademacher_first64": [z_rademacher(seed, i) for i in range(64)],
            "gauss4_first16": [z_gauss4(seed, i) for i in range(16)],
            "rademacher_at": {str(o): z_rademacher(seed, o) for o in offsets},
            "gauss4_at": {str(o): z_gauss4(seed, o) for o in offsets},
        })
    for m, s, e, c in [(0, 0, 0, 0), (1, 2, 128, -127), (2**64 - 1, 7, 255, 127)]:
        out["updates"].append({"machine": str(m), "sample": str(s), "exp": e, "code": c,
                               "hash": update_hash(m, s, e, c)})
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
