#!/bin/bash
# The runs of docs/LEARNING.md: zopeer (MeZO and its estimators) and the
# PyTorch reference (MeZO, backprop) on the English model and Jargon task,
# same mini-batches (run name learn-SEED), eps and lr, several seeds.
#
#   bench/learning.sh OUT STEPS SEED...        e.g. bench/learning.sh /tmp/learn 100 1 2 3
#
# Writes OUT/<impl>-<method>-<seed>.jsonl (one JSON object per evaluation,
# with "forwards" and "eval_loss") and draws OUT/learning.svg.
set -euo pipefail
out=$1 steps=$2
shift 2
model=model/defaults/english
common=(--model $model --data $model/train.jsonl --eval-data $model/eval.jsonl --window --window-overlap 16
	--eps 1e-3 --samples 16 --batch-size 16 --eval-every 20)
mkdir -p "$out"
go build -o "$out/zopeer" ./cmd/zopeer
# One thread each (several seeds run side by side; the figures compare
# forward passes, not speed).
export OPENBLAS_NUM_THREADS=1 GOMAXPROCS=1
# name, η, --estimator[, forward passes per step]: η per method from the 50-step single-seed
# sweep of docs/LEARNING.md. A run with fewer forward passes per step than 32 (2 per update)
# takes more steps, so that every run has the same budget of forward passes: onesided=Q spends
# 16 + 16/Q per step of 16 updates.
zo_runs=("mezo 1e-4 mezo" "parts4 1e-4 parts=4" "gradscale 6e-4 scale=grad" "gradscale-3e-4 3e-4 scale=grad"
	"vectors 1e-2 scale=vectors" "vectors-2e-2 2e-2 scale=vectors" "vgrad 2e-2 scale=vectors-grad"
	"onesided4 1e-4 onesided=4 20" "onesided8 1e-4 onesided=8 18" "vectors-onesided4 1e-2 scale=vectors,onesided=4 20"
	"vectors-onesided8 1e-2 scale=vectors,onesided=8 18")
for seed in "$@"; do
	for r in "${zo_runs[@]}"; do
		[ -n "$r" ] || continue
		read -r name lr est fps <<<"$r"
		home="$out/home-$name-$seed"
		rm -rf "$home"
		n=$(((steps * 32 + ${fps:-32} - 1) / ${fps:-32}))
		"$out/zopeer" train --home "$home" "${common[@]}" --steps "$n" --run "learn-$seed" --lr "$lr" --estimator "$est" 2>"$out/zopeer-$name-$seed.log" >/dev/null
		python3 -c 'import json,sys
for l in open(sys.argv[1]):
    p = json.loads(l); p.update(method=sys.argv[2], seed=int(sys.argv[3]), impl="zopeer"); p.setdefault("forwards", 0)
    print(json.dumps(p))' "$home/history.jsonl" "$name" "$seed" >"$out/zopeer-$name-$seed.jsonl"
	done
	# Backprop reaches MeZO's final loss early: 40 steps (640 Adam steps) of it are enough.
	for r in "mezo 1e-4 $steps 20" "vectors 1e-2 $steps 20" "adam 1e-3 40 5" "mezo 1e-4 $((steps * 8 / 5)) 20 4"; do
		read -r method lr n every q <<<"$r"
		/usr/bin/python3 bench/learning.py --model $model --method "$method" --lr "$lr" --eps 1e-3 --samples 16 \
			--batch-size 16 --steps "$n" --eval-every "$every" --window-overlap 16 --run "learn-$seed" --seed "$seed" \
			--onesided "${q:-0}" --out "$out/pytorch-$method${q:+-onesided$q}-$seed.jsonl" >/dev/null
	done
done
go run ./bench/learningchart -out "$out/learning.svg" "$out"/zopeer-*-*.jsonl "$out"/pytorch-*-*.jsonl
