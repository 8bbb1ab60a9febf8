#!/usr/bin/env bash
# Runs hoard-bench against a three-node cluster on this host (127.0.0.1, three data directories, one master
# key), first with every client on node 1, then with the clients spread over the three nodes.
#
#   cargo build --release -p hoard -p hoard-bench
#   bench/three-nodes.sh [hoard-bench arguments, e.g. --only large --rounds 3]
#
# The data directories go under ./hoard-bench-data/three-nodes-<time> and are removed at the end.
set -euo pipefail

bin=${HOARD_BIN:-target/release/hoard}
bench=${HOARD_BENCH_BIN:-target/release/hoard-bench}
[ -x "$bin" ] && [ -x "$bench" ] || { echo "build first: cargo build --release -p hoard -p hoard-bench" >&2; exit 1; }

root=hoard-bench-data/three-nodes-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$root"
head -c 32 /dev/urandom > "$root/master.key"
chmod 600 "$root/master.key"
export HOARD_ROOT_ACCESS_KEY=hoardbenchroot HOARD_ROOT_SECRET_KEY=hoardbenchsecret1
peer() { echo "127.0.0.1:$((17000 + $1))"; }
s3() { echo "127.0.0.1:$((19000 + $1))"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT

serve() {
  "$bin" serve --data-dir "$root/node$1" --listen "$(s3 "$1")" --master-key-file "$root/master.key" \
    --trust-proxy-tls >"$root/node$1.log" 2>&1 &
  pids+=($!)
}
ready() {
  for _ in $(seq 1 300); do
    curl -fsS "http://$(s3 "$1")/health/ready" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node $1 did not become ready; its log:" >&2
  cat "$root/node$1.log" >&2
  exit 1
}
token_of() { grep -o 'hoard1\.[^ ]*' | head -n1; }

token=$("$bin" cluster init --data-dir "$root/node1" --node-addr "$(peer 1)" | token_of)
serve 1
ready 1
"$bin" cluster join --data-dir "$root/node2" --node-addr "$(peer 2)" --peer "$(peer 1)" --token "$token" >/dev/null
token=$("$bin" cluster token --data-dir "$root/node1" --ttl 10m | token_of)
# The running node records a token made beside it within a second.
for _ in $(seq 1 50); do
  "$bin" cluster join --data-dir "$root/node3" --node-addr "$(peer 3)" --peer "$(peer 1)" --token "$token" \
    >/dev/null 2>&1 && break
  sleep 0.2
done
serve 2
serve 3
ready 2
ready 3

creds=(--access-key "$HOARD_ROOT_ACCESS_KEY" --secret-key "$HOARD_ROOT_SECRET_KEY")
echo "== three nodes, every client through node 1"
"$bench" --endpoint "http://$(s3 1)" "${creds[@]}" "$@"
echo "== three nodes, clients spread over the three"
"$bench" --endpoint "http://$(s3 1)" --endpoint "http://$(s3 2)" --endpoint "http://$(s3 3)" "${creds[@]}" "$@"
