#!/usr/bin/env python3
"""Independent implementation of the sampling order and held-out split of
docs/DATA.md, written from that page. Writes vectors.json, which
dataset_test.go checks the Go code against. Run: python3 reference.py
(bench/learning.py imports sample() from here for zopeer's batch order)."""
import hashlib
import json
import struct


def u64be(x):
    return struct.pack(">Q", x)


def sample_key(run, machine, epoch):
    r = run.encode()
    return hashlib.sha256(b"zopeer/dataset/sample/v1\x00" + u64be(len(r)) + r + u64be(machine) + u64be(epoch)).digest()


def feistel(key, h, x):
    if h == 0:
        return 0
    mask = (1 << h) - 1
    l, r = x >> h, x & mask
    for rnd in range(6):
        f = int.from_bytes(hashlib.sha256(key + bytes([rnd]) + u64be(r)).digest()[:8], "big") & mask
        l, r = r, l ^ f
    return (l << h) | r


def sample(run, machine, k, n):
    epoch, pos = divmod(k, n)
    key = sample_key(run, machine, epoch)
    h = ((n - 1).bit_length() + 1) // 2
    x = pos
    while True:
        x = feistel(key, h, x)
        if x < n:
            return x


def content_key(kind, *fields):
    data = b"zopeer/dataset/record/v1\x00" + kind.encode() + b"\x00"
    for f in fields:
        b = f.encode()
        data += u64be(len(b)) + b
    return hashlib.sha256(data).digest()


def held_out(key, fraction):
    return int.from_bytes(key[:8], "big") < int(fraction * 2**64)


def main():
    samples = []
    for run, machine, n in [("run-a", 0, 1), ("run-a", 0, 7), ("run-a", 1, 7), ("run-b", 0, 7), ("run-a", 3, 100), ("", 2**64 - 1, 1000)]:
        samples.append({"run": run, "machine": machine, "n": n, "indices": [sample(run, machine, k, n) for k in range(2 * n if n < 50 else 60)]})

    records = []
    for rec in [{"text": "hello world"}, {"text": ""}, {"prompt": "Q: 2+2?\nA:", "completion": " 4"}, {"prompt": "", "completion": "x"}, {"text": "café 日本"}]:
        key = content_key("text", rec["text"]) if "text" in rec else content_key("prompt/completion", rec["prompt"], rec["completion"])
        records.append({"record": rec, "key_prefix": key[:8].hex(), "held_out_0.5": held_out(key, 0.5)})

    with open("vectors.json", "w") as f:
        json.dump({"samples": samples, "records": records}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
