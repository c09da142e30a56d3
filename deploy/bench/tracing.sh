#!/usr/bin/env bash
# Tracing's cost: redis-benchmark through respguard with tracing off, at 1%
# and at 100% sampling (spans exported with the stdout exporter to /dev/null,
# so the SDK's full span pipeline runs), same run, interleaved.
#
# Usage: deploy/bench/tracing.sh   (env: TRACE_N=300000, TRACE_ROUNDS=2)
# Pinning as run.sh: redis-server on CPU 0, respguard and redis-benchmark on CPU 1.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
N=${TRACE_N:-300000}
ROUNDS=${TRACE_ROUNDS:-2}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.05; done; echo "port $1 not ready" >&2; exit 1; }

(cd "$ROOT" && go build -o "$work/respguard" ./cmd/respguard)
rport=$(free_port)
taskset -c 0 redis-server --port "$rport" --save "" --appendonly no >/dev/null &
pids+=($!)
wait_port "$rport"

declare -A port
declare -A label=([off]="off" [ratio1]="1%" [ratio100]="100%")
start() { # name exporter ratio
	local p; p=$(free_port)
	RESPGUARD_TELEMETRY_TRACES_EXPORTER=$2 RESPGUARD_TELEMETRY_TRACES_SAMPLE_RATIO=$3 \
		taskset -c 1 "$work/respguard" --listen "127.0.0.1:$p" --upstream "127.0.0.1:$rport" --admin-listen off >/dev/null 2>"$work/$1.log" &
	pids+=($!)
	port[$1]=$p
	wait_port "$p"
}
start off none 0.01
start ratio1 stdout 0.01
start ratio100 stdout 1

echo "| tracing | workload | GET req/s (median of $ROUNDS) |"
echo "|---|---|---|"
for wl in "-c 50 -P 1" "-c 50 -P 16"; do
	for name in off ratio1 ratio100; do
		vals=()
		for _ in $(seq "$ROUNDS"); do
			# shellcheck disable=SC2086
			v=$(taskset -c 1 redis-benchmark -p "${port[$name]}" $wl -n "$N" -t get --csv 2>/dev/null | awk -F'","' 'NR==2{print $2}')
			vals+=("${v%\"}")
		done
		med=$(printf '%s\n' "${vals[@]}" | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
		echo "| ${label[$name]} | \`$wl\` | $med |"
	done
done
