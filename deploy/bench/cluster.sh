#!/usr/bin/env bash
# Cluster load comparison: redis-benchmark --cluster straight against a
# 3-primary Redis Cluster, and plain redis-benchmark through respguard
# (upstream.mode: cluster) in front of the same cluster, in the same run,
# interleaved.
#
# Usage: deploy/bench/cluster.sh [--quick]
#
# Prints a markdown report on stdout (progress goes to stderr) and keeps a
# copy in deploy/bench/results/ (git-ignored). Starts its own 3 cluster nodes
# (no replicas) and respguard on free loopback ports and stops them on exit.
# Keys are random (-r 100000). Through respguard they carry no hash tag and
# spread over all slots; redis-benchmark --cluster (7.0) tags every key it
# sends to a node with one fixed {tag} of that node, so it uses one slot per
# node. It also always runs one thread per node and times itself in 250 ms
# steps, hence the large -n.
#
# Pinning (2 cores): the 3 redis-servers on CPU $BENCH_REDIS_CPU (0),
# respguard and redis-benchmark on CPU $BENCH_CLIENT_CPU (1). Redis CPU is
# the total over the 3 nodes.
#
# Environment overrides:
#   BENCH_ROUNDS=1            interleaved rounds; medians are reported
#   BENCH_TESTS=set,get       redis-benchmark -t
#   BENCH_WORKLOADS=          only these workloads (e.g. "c50_p1 c50_p16")
#   BENCH_N=                  force one -n for every workload
#   BENCH_N_C50_P1=800000 BENCH_N_C50_P16=8000000 BENCH_N_C1_P1=150000
#   BENCH_KEYSPACE=100000     redis-benchmark -r
#   BENCH_REDIS_CPU=0 BENCH_CLIENT_CPU=1
#   BENCH_RESPGUARD_BIN=      use this respguard binary instead of building one
#   BENCH_OUT_DIR=deploy/bench/results
# --quick runs every cell with -n 2000: a smoke test of the script, not a
# measurement.
set -euo pipefail

usage() { sed -n '2,33p' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
ARGS_SEEN="$*"
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) QUICK=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/deploy/bench
ROUNDS=${BENCH_ROUNDS:-1}
TESTS=${BENCH_TESTS:-set,get}
KEYSPACE=${BENCH_KEYSPACE:-100000}
REDIS_CPU=${BENCH_REDIS_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
OUT_DIR=${BENCH_OUT_DIR:-$BENCH/results}
NODES=3

# name | redis-benchmark arguments | default -n. redis-benchmark --cluster
# always runs one thread per node, and in threaded mode it measures its
# elapsed time in 250 ms steps: -n is sized so that a direct test lasts
# about 8 s or more here (an error of 3% at most); through respguard the
# same -n takes about twice as long.
WORKLOADS=(
	"c50_p1|-c 50 -P 1|800000"
	"c50_p16|-c 50 -P 16|8000000"
	"c1_p1|-c 1 -P 1|150000"
)
if [[ -n ${BENCH_WORKLOADS:-} ]]; then
	kept=()
	for w in "${WORKLOADS[@]}"; do
		[[ " $BENCH_WORKLOADS " == *" ${w%%|*} "* ]] && kept+=("$w")
	done
	((${#kept[@]})) || { echo "BENCH_WORKLOADS=$BENCH_WORKLOADS names no workload" >&2; exit 2; }
	WORKLOADS=("${kept[@]}")
fi
((QUICK)) && BENCH_N=${BENCH_N:-2000}

# shellcheck source=lib.bash source-path=SCRIPTDIR
source "$BENCH/lib.bash"
bench_init respguard-cluster-bench

# --- tools -------------------------------------------------------------------

for tool in redis-server redis-cli redis-benchmark python3 taskset; do
	command -v "$tool" >/dev/null || die "$tool is needed"
done
if (($(nproc) < 2)); then
	note "only $(nproc) CPU: the Redis nodes and the load share CPU 0"
	REDIS_CPU=0 CLIENT_CPU=0
fi

RESPGUARD=${BENCH_RESPGUARD_BIN:-}
if [[ -z $RESPGUARD ]]; then
	log "building respguard"
	RESPGUARD=$TMP/respguard
	(cd "$ROOT" && CGO_ENABLED=0 go build -o "$RESPGUARD" ./cmd/respguard) >"$TMP/build.log" 2>&1 ||
		{ cat "$TMP/build.log" >&2; die "go build ./cmd/respguard failed"; }
fi

# --- processes ---------------------------------------------------------------




# all_alive: true while every node and respguard run; a death ends the run.
all_alive() {
	local pid
	for pid in "${NODE_PIDS[@]}" "$RG_PID"; do
		kill -0 "$pid" 2>/dev/null || {
			tail -5 "$TMP"/node*/redis.log "$TMP/respguard.log" >&2 2>/dev/null || true
			die "process $pid died during the run"
		}
	done
}

read -r -a PORTS <<<"$(free_ports $((2 * NODES + 1)))"
NODE_PORTS=() NODE_PIDS=() NODE_ADDRS=()
for ((i = 0; i < NODES; i++)); do
	port=${PORTS[$i]} bus=${PORTS[$((NODES + i))]} dir=$TMP/node$i
	mkdir -p "$dir"
	taskset -c "$REDIS_CPU" redis-server --bind 127.0.0.1 --port "$port" --cluster-port "$bus" \
		--cluster-enabled yes --cluster-config-file nodes.conf --cluster-announce-ip 127.0.0.1 \
		--save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
	NODE_PIDS+=($!)
	PIDS+=($!)
	NODE_PORTS+=("$port")
	NODE_ADDRS+=("127.0.0.1:$port")
	wait_ping "$port" "node$i" "$!" "$dir/redis.log"
done

log "forming the cluster: ${NODE_ADDRS[*]}"
redis-cli --cluster create "${NODE_ADDRS[@]}" --cluster-yes >"$TMP/cluster-create.log" 2>&1 ||
	{ cat "$TMP/cluster-create.log" >&2; die "redis-cli --cluster create failed"; }

# Every node must say cluster_state:ok and know all the nodes and slots.
cluster_ok() {
	local port info
	for port in "${NODE_PORTS[@]}"; do
		info=$(redis-cli -p "$port" cluster info 2>/dev/null | tr -d '\r')
		grep -qx 'cluster_state:ok' <<<"$info" || return 1
		grep -qx 'cluster_slots_ok:16384' <<<"$info" || return 1
		grep -qx "cluster_known_nodes:$NODES" <<<"$info" || return 1
	done
}
for i in $(seq 300); do
	cluster_ok && break
	((i < 300)) || {
		for port in "${NODE_PORTS[@]}"; do redis-cli -p "$port" cluster info >&2 || true; done
		die "the cluster did not reach cluster_state:ok in 30 s"
	}
	sleep 0.1
done
log "cluster is up ($(((i - 1) / 10)).$(((i - 1) % 10)) s after create)"

RG_PORT=${PORTS[$((2 * NODES))]}
cat >"$TMP/respguard.yml" <<-EOF
	listen: 127.0.0.1:$RG_PORT
	admin:
	  listen: "off"
	upstream:
	  mode: cluster
	  addresses: ["${NODE_ADDRS[0]}"]
EOF
taskset -c "$CLIENT_CPU" "$RESPGUARD" --config "$TMP/respguard.yml" >"$TMP/respguard.log" 2>&1 &
RG_PID=$!
PIDS+=("$RG_PID")
wait_ping "$RG_PORT" respguard "$RG_PID" "$TMP/respguard.log"

# --- measurements ------------------------------------------------------------

CELLS=$TMP/cells.tsv # round workload target test rps p50 p99 max
CPU=$TMP/cpu.tsv     # round workload target proxy_ticks redis_ticks requests
ERRS=$TMP/benchmark.err
for f in "$CELLS" "$CPU" "$ERRS"; do : >"$f"; done
NTESTS=$(tr ',' '\n' <<<"$TESTS" | grep -c .)
declare -A ERRCOUNT=([direct]=0 [respguard]=0)


# bench_cmd TARGET: the redis-benchmark invocation, minus the workload's
# arguments and -n.
bench_cmd() {
	case $1 in
	direct) echo "redis-benchmark --cluster -h 127.0.0.1 -p ${NODE_PORTS[0]}" ;;
	respguard) echo "redis-benchmark -h 127.0.0.1 -p $RG_PORT" ;;
	esac
}

run_cell() { # round workload args n target
	local round=$1 name=$2 args=$3 n=$4 target=$5
	local p0 r0 p1 r1 errs
	all_alive
	p0=$(cpu_ticks "$RG_PID")
	r0=$(cpu_ticks "${NODE_PIDS[@]}")
	# shellcheck disable=SC2046,SC2086 # word lists on purpose
	taskset -c "$CLIENT_CPU" $(bench_cmd "$target") -t "$TESTS" -r "$KEYSPACE" -n "$n" $args --csv \
		>"$TMP/cell.out" 2>"$TMP/cell.err" || note "redis-benchmark exited $? (round $round, $name, $target): $(tail -1 "$TMP/cell.err")"
	p1=$(cpu_ticks "$RG_PID")
	r1=$(cpu_ticks "${NODE_PIDS[@]}")
	all_alive
	# CSV rows start with a quote; anything else on stdout (e.g. "Error from
	# server: ...", printed at most once a second) and stderr is kept aside.
	grep '^"' "$TMP/cell.out" >"$TMP/cell.csv" || true
	{ grep -v '^"' "$TMP/cell.out" || true; cat "$TMP/cell.err"; } | sed "s/^/round $round $name $target: /" >"$TMP/cell.other"
	errs=$(grep -ci 'error' "$TMP/cell.other" || true)
	ERRCOUNT[$target]=$((ERRCOUNT[$target] + errs))
	cat "$TMP/cell.other" >>"$ERRS"
	awk -F, -v r="$round" -v w="$name" -v t="$target" \
		'NR > 1 { gsub(/"/, ""); print r "\t" w "\t" t "\t" $1 "\t" $2 "\t" $5 "\t" $7 "\t" $8 }' \
		"$TMP/cell.csv" >>"$CELLS"
	if [[ $target == direct ]]; then
		printf '%s\t%s\t%s\t\t%s\t%s\n' "$round" "$name" "$target" $((r1 - r0)) $((n * NTESTS)) >>"$CPU"
	else
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$target" $((p1 - p0)) $((r1 - r0)) $((n * NTESTS)) >>"$CPU"
	fi
	log "round $round $name $target: $(awk -F, 'NR > 1 { gsub(/"/, ""); printf "%s %s/s  ", $1, $2 }' "$TMP/cell.csv")$( ((errs == 0)) || echo "($errs error lines)")"
}

TARGET_LIST=(direct respguard)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$SECONDS
for ((round = 1; round <= ROUNDS; round++)); do
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r name args n <<<"$w"
		n=$(workload_n "$name" "$n")
		# Alternate the order by round and workload: no target always runs first.
		for ((i = 0; i < ${#TARGET_LIST[@]}; i++)); do
			run_cell "$round" "$name" "$args" "$n" "${TARGET_LIST[$(((i + round + ${#name}) % 2))]}"
		done
	done
done
ELAPSED=$((SECONDS - START))

# Where the keys went: redis-benchmark --cluster writes key:{tag}:NNN, the
# runs through respguard write untagged key:NNN, which respguard routed.
spread_direct=() spread_rg=() slots_used=()
for port in "${NODE_PORTS[@]}"; do
	spread_rg+=("$(redis-cli -p "$port" --scan --pattern 'key:[0-9]*' | wc -l)")
	spread_direct+=("$(redis-cli -p "$port" --scan --pattern 'key:{*' | wc -l)")
	slots_used+=("$(seq 0 16383 | sed 's/^/CLUSTER COUNTKEYSINSLOT /' | redis-cli -p "$port" | grep -cv '^0$' || true)")
done
join() { local IFS=/; echo "$*"; }
note "keys per node after the run (nodes $(join "${NODE_PORTS[@]}")): written through respguard $(join "${spread_rg[@]}"), by redis-benchmark --cluster $(join "${spread_direct[@]}"); slots holding keys $(join "${slots_used[@]}") (redis-benchmark --cluster fills one slot per node)"
for t in "${TARGET_LIST[@]}"; do
	((ERRCOUNT[$t] == 0)) || note "redis-benchmark reported ${ERRCOUNT[$t]} error lines against $t (see benchmark.err)"
done
rg_warn=$(grep -c -E 'level=(WARN|ERROR)' "$TMP/respguard.log" || true)
((rg_warn == 0)) || note "respguard logged $rg_warn WARN/ERROR lines (see respguard.log): $(grep -m1 -E 'level=(WARN|ERROR)' "$TMP/respguard.log")"

# --- report ------------------------------------------------------------------

{
	echo "command	BENCH_ROUNDS=$ROUNDS deploy/bench/cluster.sh $ARGS_SEEN"
	echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ), measurements took ${ELAPSED} s"
	echo "machine	$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), Linux $(uname -r)"
	echo "load	load average $LOAD_BEFORE before the run, $(cut -d' ' -f1-3 /proc/loadavg) after (other work on the machine skews the numbers)"
	echo "pinning	the $NODES Redis Cluster nodes on CPU $REDIS_CPU; respguard and redis-benchmark on CPU $CLIENT_CPU"
	echo "redis	$(redis-server --version | awk '{print $3}' | sed 's/v=//'), Redis Cluster of $NODES primaries, no replicas"
	echo "respguard	$("$RESPGUARD" --version 2>&1 | head -1), upstream.mode cluster, seed ${NODE_ADDRS[0]}"
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r name args n <<<"$w"
		echo "workload	$name	$args -r $KEYSPACE	$(workload_n "$name" "$n")"
	done
	echo "tests	$TESTS"
	echo "quick	$QUICK"
	echo "note	direct cluster = \`$(bench_cmd direct) -t $TESTS <workload>\` (one thread per node, forced in cluster mode; all its keys for a node in one slot of that node; clients spread round-robin over the primaries, so \`-c 1\` only reaches the first; elapsed time counted in 250 ms steps); respguard = \`$(bench_cmd respguard | sed "s/-p [0-9]*/-p <respguard>/") -t $TESTS <workload>\`. Redis CPU is summed over the $NODES nodes."
	for n in "${NOTES[@]}"; do echo "note	$n"; done
} >"$TMP/meta.tsv"

mkdir -p "$OUT_DIR"
STEM=$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)-cluster
((QUICK)) && STEM+=-quick
# Keep the raw measurements next to the report: report.py can be re-run on them.
mkdir -p "$STEM.raw"
: >"$TMP/idle.tsv"
cp "$TMP/meta.tsv" "$CELLS" "$CPU" "$TMP/idle.tsv" "$ERRS" "$TMP/respguard.log" "$TMP/respguard.yml" \
	"$TMP/cluster-create.log" "$STEM.raw/"
for ((i = 0; i < NODES; i++)); do cp "$TMP/node$i/redis.log" "$STEM.raw/node$i.log"; done
python3 "$BENCH/report.py" "$STEM.raw/meta.tsv" "$STEM.raw/cells.tsv" "$STEM.raw/cpu.tsv" \
	"$STEM.raw/idle.tsv" "$(getconf CLK_TCK)" |
	sed -e 's/^# respguard load comparison$/# respguard load comparison: Redis Cluster/' \
		-e 's/^| \([a-z0-9_]*\) | direct |/| \1 | direct cluster |/' | tee "$STEM.md"
log "report saved to $STEM.md"
