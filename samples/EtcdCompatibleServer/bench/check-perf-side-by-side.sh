#!/usr/bin/env bash
# etcdctl check perf --load=$LOAD (default xl) against our 3-member cluster (this sample) and then
# against a real etcd 3.4 cluster of three processes, both on loopback, both with their data under
# the same temporary directory (same disk). Needs Debian's etcd-server and etcd-client, and the
# sample built: dotnet build -c Release samples/EtcdCompatibleServer
# Prints each run's output; docs/benchmarks.md quotes them.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."
load=${LOAD:-xl}
root=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  rm -rf "$root"
}
trap cleanup EXIT
export ETCDCTL_API=3

wait_for() { # file, text: until the file holds the text (at most 60 s)
  for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "timed out waiting for '$2' in $1" >&2; exit 1
}

echo "== ours: samples/EtcdCompatibleServer, 3 members, TCP transport, check perf --load=$load"
dotnet samples/EtcdCompatibleServer/bin/Release/net10.0/EmbeddedRaft.Samples.EtcdCompatibleServer.dll \
  --FirstClientPort=23790 --FirstPeerPort=23800 --DataDirectory="$root/ours" > "$root/ours.log" 2>&1 &
pids+=($!)
wait_for "$root/ours.log" "Ctrl+C stops."
etcdctl --endpoints=127.0.0.1:23790,127.0.0.1:23791,127.0.0.1:23792 check perf --load="$load" 2>&1 | tr '\r' '\n' | grep -v '^ *[0-9]* / [0-9]*' | grep -v '^{'
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null; pids=()

echo "== etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members, check perf --load=$load"
cluster="m1=http://127.0.0.1:23900,m2=http://127.0.0.1:23901,m3=http://127.0.0.1:23902"
for i in 0 1 2; do
  etcd --name "m$((i + 1))" --data-dir "$root/etcd/m$((i + 1))" \
    --listen-client-urls "http://127.0.0.1:$((23890 + i))" --advertise-client-urls "http://127.0.0.1:$((23890 + i))" \
    --listen-peer-urls "http://127.0.0.1:$((23900 + i))" --initial-advertise-peer-urls "http://127.0.0.1:$((23900 + i))" \
    --initial-cluster "$cluster" --initial-cluster-token bench --initial-cluster-state new > "$root/etcd$i.log" 2>&1 &
  pids+=($!)
done
for i in 0 1 2; do wait_for "$root/etcd$i.log" "ready to serve client requests"; done
etcdctl --endpoints=127.0.0.1:23890,127.0.0.1:23891,127.0.0.1:23892 check perf --load="$load" 2>&1 | tr '\r' '\n' | grep -v '^ *[0-9]* / [0-9]*' | grep -v '^{'
