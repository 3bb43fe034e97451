#!/usr/bin/env bash
# Runs a local zopeer testnet: builds zopeer and the testnet command, starts
# the peers on loopback, shows their progress, checks the end state and prints
# the summary; exits non-zero if a check fails. Every flag goes to the testnet
# command: testnet/run.sh --help lists them with their defaults.
#
#   testnet/run.sh                                  # 4 peers, 40 steps each
#   testnet/run.sh --nodes 4 --late 2 --churn 10 --steps 80 --drop 0.1
#   testnet/run.sh --scaling 1,2,4,8 --steps 20     # same budget per peer, 1 to 8 peers
set -euo pipefail
cd "$(dirname "$0")/.."
bin=$(mktemp -d "${TMPDIR:-/tmp}/zopeer-testnet-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/zopeer" ./cmd/zopeer
go build -o "$bin/testnet" ./testnet/cmd/testnet
"$bin/testnet" --zopeer "$bin/zopeer" "$@"
