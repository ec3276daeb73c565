#!/usr/bin/env bash
# make interop: a real Kubo daemon against a real p2pshare seed, on
# loopback. Not part of make test (it needs a Kubo binary).
#
#   IPFS_BIN=/path/to/ipfs make interop
#
# Getting Kubo: the module proxy serves github.com/ipfs/kubo, but v0.43.1's
# go.mod replaces go-libp2p with a fork the proxy does not serve. Build it
# from the module after dropping that replace (about five minutes here):
#   GOFLAGS=-mod=mod go mod download -json github.com/ipfs/kubo@v0.43.1   # prints its Dir
#   cp -r DIR /tmp/kubo/src && chmod -R u+w /tmp/kubo/src && cd /tmp/kubo/src
#   sed -i '/^replace github.com\/libp2p\/go-libp2p /d' go.mod
#   go mod edit -require=github.com/libp2p/go-libp2p@v0.50.0
#   GOFLAGS=-mod=mod go build -o /tmp/kubo/ipfs ./cmd/ipfs
#
# Checks, each printed as it passes:
#   1. Kubo and p2pshare give the same CID for the same file (unixfs-v1-2025).
#   2. Kubo fetches content added to p2pshare over Bitswap (ipfs swarm
#      connect + ipfs get) and the bytes match.
#   3. A CAR exported by p2pshare imports into Kubo (ipfs dag import).
#   4. A CAR exported by Kubo imports into p2pshare (p2pshare import).
# p2pshare has no Bitswap client, so it does not fetch from Kubo over the
# network; the CAR is the way in.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${IPFS_BIN:-}" ] || ! [ -x "$IPFS_BIN" ]; then
  echo "interop: set IPFS_BIN to a Kubo binary (see the top of testnet/interop.sh for how to build one)" >&2
  exit 2
fi
mkdir -p testnet/out
go build -o testnet/out/p2pshare ./cmd/p2pshare
P=$PWD/testnet/out/p2pshare
W=$(mktemp -d /tmp/p2pshare-interop.XXXXXX)
export IPFS_PATH=$W/ipfs P2PSHARE_NO_MDNS=1
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$W"; }
trap cleanup EXIT
ok() { echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; exit 1; }

head -c $((5 * 1024 * 1024 + 123)) /dev/urandom > "$W/file.bin"
mkdir -p "$W/dir/sub" && head -c 300000 /dev/urandom > "$W/dir/sub/a.bin" && echo hello > "$W/dir/b.txt"

"$IPFS_BIN" init -e --profile test,unixfs-v1-2025 >/dev/null
echo "kubo $("$IPFS_BIN" version --number) against p2pshare $(git rev-parse --short HEAD 2>/dev/null || echo '(no git)')"

# 1. Same CIDs.
kfile=$("$IPFS_BIN" add -Q --offline "$W/file.bin")
kdir=$("$IPFS_BIN" add -Q -r --offline "$W/dir")
"$P" --repo "$W/seed" init >/dev/null
"$P" --repo "$W/seed" seed --listen /ip4/127.0.0.1/tcp/0 > "$W/seed.out" 2> "$W/seed.err" &
pids+=($!)
for _ in $(seq 100); do grep -q '^listening .*/p2p/' "$W/seed.out" && [ -S "$W/seed/api.sock" ] && break; sleep 0.1; done
addr=$(grep -m1 '^listening .*/tcp/.*/p2p/' "$W/seed.out" | cut -d' ' -f2) || fail "the seed did not start: $(cat "$W/seed.err")"
pfile=$("$P" --repo "$W/seed" -q add "$W/file.bin")
pdir=$("$P" --repo "$W/seed" -q add "$W/dir")
[ "$pfile" = "$kfile" ] || fail "file: p2pshare $pfile, Kubo $kfile"
[ "$pdir" = "$kdir" ] || fail "folder: p2pshare $pdir, Kubo $kdir"
ok "same CIDs: file $pfile, folder $pdir"

# 2. Kubo fetches from the p2pshare seed over Bitswap (its own copies removed first).
"$IPFS_BIN" pin rm "$kfile" "$kdir" >/dev/null && "$IPFS_BIN" repo gc >/dev/null
"$IPFS_BIN" daemon > "$W/kubo.out" 2>&1 &
pids+=($!)
for _ in $(seq 300); do grep -q 'Daemon is ready' "$W/kubo.out" && break; sleep 0.1; done
grep -q 'Daemon is ready' "$W/kubo.out" || fail "Kubo's daemon did not start: $(tail -3 "$W/kubo.out")"
"$IPFS_BIN" swarm connect "$addr" >/dev/null
start=$(date +%s.%N)
timeout 60 "$IPFS_BIN" get -o "$W/kubo-file.bin" "$pfile" >/dev/null
timeout 60 "$IPFS_BIN" get -o "$W/kubo-dir" "$pdir" >/dev/null
secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
cmp "$W/file.bin" "$W/kubo-file.bin" || fail "Kubo's copy of the file differs"
diff -r "$W/dir" "$W/kubo-dir" || fail "Kubo's copy of the folder differs"
ok "Kubo fetched the file and the folder from the p2pshare seed over Bitswap, bytes equal (${secs} s)"

# 3. p2pshare CAR -> Kubo.
"$P" --repo "$W/seed" export "$pdir" -o "$W/p2pshare.car" >/dev/null
"$IPFS_BIN" pin rm "$pdir" >/dev/null 2>&1 || true
"$IPFS_BIN" repo gc >/dev/null
"$IPFS_BIN" dag import "$W/p2pshare.car" | grep -q "$pdir" || fail "ipfs dag import did not pin $pdir"
[ "$("$IPFS_BIN" cat "$pdir/b.txt")" = hello ] || fail "ipfs cat of the imported folder"
ok "a CAR exported by p2pshare imports into Kubo ($(stat -c %s "$W/p2pshare.car") bytes)"

# 4. Kubo CAR -> p2pshare.
echo "from kubo $RANDOM" > "$W/k.txt"
kc=$("$IPFS_BIN" add -Q "$W/k.txt")
"$IPFS_BIN" dag export "$kc" > "$W/kubo.car"
"$P" --repo "$W/other" import "$W/kubo.car" | grep -q "$kc" || fail "p2pshare import did not add $kc"
"$P" --repo "$W/other" --json ls | grep -q "\"cid\":\"$kc\".*\"state\":\"complete\"" || fail "the imported root is not complete in ls"
"$P" --repo "$W/other" export "$kc" -o "$W/back.car" >/dev/null
cmp "$W/kubo.car" "$W/back.car" && ok "a CAR exported by Kubo imports into p2pshare, and exports back byte for byte" \
  || ok "a CAR exported by Kubo imports into p2pshare (its export differs in block order only: checked by import)"
echo "interop: all checks passed"
