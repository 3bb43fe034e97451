#!/bin/bash
# Pool mode (FedKSeed, `--pool K`) against full mode on the English model and
# Jargon task of docs/LEARNING.md, at equal numbers of updates: MeZO with the
# flags of bench/learning.sh, one `zopeer train` per (mode, η, seed), run name
# learn-SEED (the same mini-batches in every mode).
#
#   bench/pool-learning.sh OUT STEPS LRS KS SEEDS    e.g. bench/pool-learning.sh /tmp/pool 400 1e-4 0,256,1024,4096 1,2,3
#
# K = 0 is full mode. Writes OUT/zopeer-<mode>-lr<η>-<seed>.jsonl (one JSON
# object per evaluation, every 25 steps) and draws OUT/pool-learning.svg.
# POOL_JOBS (default 1) runs that many trainings side by side, one thread each.
set -euo pipefail
out=$1 steps=$2 lrs=$3 ks=$4 seeds=$5
model=model/defaults/english
mkdir -p "$out"
go build -o "$out/zopeer" ./cmd/zopeer
export OPENBLAS_NUM_THREADS=1 GOMAXPROCS=1 out steps model
one() {
	local k=$1 lr=$2 seed=$3 name=full
	[ "$k" = 0 ] || name="K=$k"
	local tag="${name}-lr${lr}-${seed}" home="$out/home-$k-$lr-$seed"
	rm -rf "$home"
	"$out/zopeer" train --home "$home" --model $model --data $model/train.jsonl --eval-data $model/eval.jsonl \
		--window --window-overlap 16 --eps 1e-3 --samples 16 --batch-size 16 --steps "$steps" --eval-every 25 \
		--run "learn-$seed" --lr "$lr" --pool "$k" 2>"$out/zopeer-$tag.log" >/dev/null
	python3 -c 'import json,sys
for l in open(sys.argv[1]):
    p = json.loads(l); p.update(method=sys.argv[2], seed=int(sys.argv[3]), impl="zopeer"); p.setdefault("forwards", 0)
    print(json.dumps(p))' "$home/history.jsonl" "$name η $lr" "$seed" >"$out/zopeer-$tag.jsonl"
	rm -rf "$home"
}
export -f one
for seed in ${seeds//,/ }; do
	for lr in ${lrs//,/ }; do
		for k in ${ks//,/ }; do
			echo "$k $lr $seed"
		done
	done
done | xargs -P "${POOL_JOBS:-1}" -L 1 bash -c 'one $0 $1 $2'
go run ./bench/learningchart -x updates -linear -ref "zopeer full η ${lrs%%,*}" -title "English model, Jargon task: pool mode against full mode (MeZO), mean eval loss over seeds" \
	-out "$out/pool-learning.svg" "$out"/zopeer-*.jsonl
