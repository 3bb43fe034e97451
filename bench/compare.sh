#!/usr/bin/env bash
# Interleaved comparison of `zopeer bench` with the PyTorch baseline
# (bench/pytorch_mezo.py) on one shape: ROUNDS rounds, each running zopeer
# then PyTorch with the same thread count, printing the load average before
# each run and a summary (medians, ratios against the issue-15 goals).
#
#   bench/compare.sh gpt2-small 256 2 3 3      # MODEL TOKENS THREADS ROUNDS REPS
#
# Needs a built zopeer (ZOPEER=path, default ./zopeer) and Debian's torch
# (/usr/bin/python3 with python3-torch).
set -euo pipefail
model=${1:-gpt2-small} tokens=${2:-256} threads=${3:-2} rounds=${4:-3} reps=${5:-3}
zopeer=${ZOPEER:-./zopeer}
py=${PYTHON:-/usr/bin/python3}
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp)
for r in $(seq "$rounds"); do
  echo "# round $r zopeer  $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  echo "zopeer $(GOMAXPROCS=$threads "$zopeer" bench --model "$model" --tokens "$tokens" --reps "$reps" --json --log-level error)" | tee -a "$out" >&2
  echo "# round $r pytorch $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  echo "pytorch $("$py" "$here/pytorch_mezo.py" --model "$model" --tokens "$tokens" --threads "$threads" --reps "$reps")" | tee -a "$out" >&2
done
"$py" - "$out" <<'PY'
import json, statistics, sys
z, p = [], []
for line in open(sys.argv[1]):
    who, js = line.split(" ", 1)
    (z if who == "zopeer" else p).append(json.loads(js))
med = lambda rs, k: statistics.median(r[k] for r in rs)
zf, zs = med(z, "forward_seconds"), med(z, "zo_step_seconds")
pf, ps = med(p, "forward_seconds"), med(p, "mezo_step_seconds")
zr, pr = med(z, "peak_rss_zo_step_mib"), med(p, "peak_rss_forward_mib")
print(f"{z[0]['model']}, {z[0]['tokens']} tokens, {z[0]['threads']} threads, {len(z)} rounds (medians)")
print(f"  zopeer : forward {zf:.4f} s, ZO step {zs:.4f} s, RSS weights {med(z,'rss_weights_only_mib'):.0f} / forward {med(z,'peak_rss_forward_mib'):.0f} / ZO step {zr:.0f} MiB")
print(f"  pytorch: forward {pf:.4f} s, MeZO step {ps:.4f} s, RSS weights {med(p,'rss_weights_only_mib'):.0f} / forward {pr:.0f} / MeZO step {med(p,'peak_rss_mezo_step_mib'):.0f} MiB")
print(f"  ZO-step RSS / PyTorch inference RSS = {zr/pr:.2f}   (goal <= 1.3)")
print(f"  ZO step / forward (zopeer)         = {zs/zf:.2f}   (goal <= 2.05)")
if "zo_step_separate_seconds" in z[0]:
    zc = lambda k: med(z, k) / med(z, "forward_cpu_seconds")
    print(f"    apply apart, then step / forward  = {med(z,'zo_step_separate_seconds')/zf:.2f}; by CPU time: fused {zc('zo_step_cpu_seconds'):.3f}, apart {zc('zo_step_separate_cpu_seconds'):.3f}")
print(f"  ZO step / PyTorch MeZO step        = {zs/ps:.2f}   (goal <= 0.25)")
print(f"  forward / PyTorch forward          = {zf/pf:.2f}")
print("  per round, ZO step / MeZO step:", " ".join(f"{a['zo_step_seconds']/b['mezo_step_seconds']:.2f}" for a, b in zip(z, p)))
PY
rm -f "$out"
