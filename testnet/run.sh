#!/usr/bin/env bash
# Runs a testnet scenario from the repo root: builds p2pshare once, starts
# real peers, prints a results table. Usage: testnet/run.sh [flags] SCENARIO
# (scenarios: demo, scale, slowseed, flashcrowd, churn, dht, whole, memory, bench, nat).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p testnet/out
go build -o testnet/out/testnet ./testnet
exec testnet/out/testnet "$@"
