#!/usr/bin/env bash
# Load comparison: redis-benchmark against Redis direct, through respguard and
# through twemproxy (Debian's nutcracker), in the same run, interleaved.
#
# Usage: deploy/bench/run.sh [--quick] [--targets "direct respguard ..."]
#
# Targets (all by default, in one interleaved run; --targets or BENCH_TARGETS
# picks any of them):
#   direct            redis-server itself
#   respguard         respguard, default scheduling
#   respguard_batch   a second respguard, same binary and settings, with
#                     sched_policy batch (RESPGUARD_SCHED_POLICY=batch: all its
#                     threads under Linux SCHED_BATCH)
#   twemproxy         nutcracker, default scheduling
#   twemproxy_batch   a second nutcracker, same settings, started under
#                     chrt -b 0 (SCHED_BATCH)
# The report has one goals table per pair present: respguard against
# twemproxy, respguard_batch against twemproxy, respguard_batch against
# twemproxy_batch.
#
# Prints a markdown report on stdout (progress goes to stderr) and keeps a
# copy in deploy/bench/results/ (git-ignored). Starts its own redis-server,
# respguard and nutcracker on free loopback ports and stops them on exit.
#
# Pinning (2 cores): redis-server on CPU $BENCH_REDIS_CPU (0), the proxies and
# redis-benchmark on CPU $BENCH_CLIENT_CPU (1), so ratios are stable.
#
# Environment overrides:
#   BENCH_ROUNDS=1            interleaved rounds; medians are reported
#   BENCH_TESTS=set,get       redis-benchmark -t
#   BENCH_WORKLOADS=          only these workloads, by name (e.g. "c1_p1 c50_p1"); all if empty
#   BENCH_N=                  force one -n for every workload
#   BENCH_N_C50_P1=300000 BENCH_N_C50_P16=2000000 BENCH_N_C1_P1=50000
#   BENCH_N_D1024_C50_P16=1000000 BENCH_N_C1000_P1=300000
#   BENCH_IDLE_CLIENTS=10000  idle connections for the RSS measurement (0: skip);
#                             measured for direct, respguard and twemproxy only
#                             (the _batch targets differ in scheduling, not memory)
#   BENCH_PARK_AFTER=1s       respguard's client.park_after (default 5s; negative: off)
#   BENCH_IDLE_SETTLE=5       seconds between the PINGs and the RSS reading after
#                             them (respguard parks a client idle for 1-2 s and
#                             then returns the memory freed to the OS)
#   BENCH_REDIS_CPU=0 BENCH_CLIENT_CPU=1
#   BENCH_RESPGUARD_BIN=      use this respguard binary instead of building one
#   BENCH_OUT_DIR=deploy/bench/results
# --quick runs every cell with -n 2000 and 200 idle clients: a smoke test of
# the script, not a measurement.
set -euo pipefail

usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1' "$0" | sed 's/^# \{0,1\}//'; }

QUICK=0
TARGETS=${BENCH_TARGETS:-direct respguard respguard_batch twemproxy twemproxy_batch}
ARGS_SEEN="$*"
while [[ $# -gt 0 ]]; do
	case $1 in
	--quick) QUICK=1 ;;
	--targets) TARGETS=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/deploy/bench
ROUNDS=${BENCH_ROUNDS:-1}
TESTS=${BENCH_TESTS:-set,get}
IDLE=${BENCH_IDLE_CLIENTS:-10000}
IDLE_SETTLE=${BENCH_IDLE_SETTLE:-5}
REDIS_CPU=${BENCH_REDIS_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
OUT_DIR=${BENCH_OUT_DIR:-$BENCH/results}

# name | redis-benchmark arguments | default -n (a few seconds per cell here)
WORKLOADS=(
	"c50_p1|-c 50 -P 1|300000"
	"c50_p16|-c 50 -P 16|2000000"
	"c1_p1|-c 1 -P 1|50000"
	"d1024_c50_p16|-d 1024 -c 50 -P 16|1000000"
	"c1000_p1|-c 1000 -P 1|300000"
)
if [[ -n ${BENCH_WORKLOADS:-} ]]; then
	for i in "${!WORKLOADS[@]}"; do
		[[ " $BENCH_WORKLOADS " == *" ${WORKLOADS[$i]%%|*} "* ]] || unset 'WORKLOADS[i]'
	done
	WORKLOADS=("${WORKLOADS[@]}")
	((${#WORKLOADS[@]} > 0)) || { echo "BENCH_WORKLOADS names no workload" >&2; exit 2; }
fi
if ((QUICK)); then
	BENCH_N=${BENCH_N:-2000}
	IDLE=${BENCH_IDLE_CLIENTS:-200}
fi

# shellcheck source=lib.bash source-path=SCRIPTDIR
source "$BENCH/lib.bash"
bench_init respguard-bench

# --- tools -------------------------------------------------------------------

install_debian() {
	if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
		return 1
	fi
	log "installing $* with apt-get"
	apt-get install -y -qq "$@" >/dev/null 2>&1 ||
		{ apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq "$@" >/dev/null 2>&1; }
}

has_target() { [[ " $TARGETS " == *" $1 "* ]]; }
drop_target() { TARGETS=$(echo " $TARGETS " | sed "s/ $1 / /; s/^ *//; s/ *$//"); }

command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null ||
	install_debian redis-server redis-tools || die "redis-server and redis-benchmark are needed"
command -v python3 >/dev/null || die "python3 is needed (idle clients and the report)"
command -v taskset >/dev/null || install_debian util-linux || die "taskset is needed"
if { has_target twemproxy || has_target twemproxy_batch; } && ! command -v nutcracker >/dev/null; then
	install_debian nutcracker || {
		note "twemproxy and twemproxy_batch skipped: nutcracker is not installed"
		drop_target twemproxy
		drop_target twemproxy_batch
	}
fi
if has_target twemproxy_batch && ! chrt -b 0 true 2>/dev/null; then
	note "twemproxy_batch skipped: chrt -b 0 (util-linux) is missing or cannot set SCHED_BATCH"
	drop_target twemproxy_batch
fi

if (($(nproc) < 2)); then
	note "only $(nproc) CPU: redis-server and the load share CPU 0"
	REDIS_CPU=0 CLIENT_CPU=0
fi

# 10,000 idle clients plus the proxies' upstream sockets.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if ((IDLE > 0 && $(ulimit -n) < IDLE + 100)); then
	note "open-file limit $(ulimit -n) is below $IDLE idle clients; using $(($(ulimit -n) - 200))"
	IDLE=$(($(ulimit -n) - 200))
fi

# One build serves both respguard targets.
RESPGUARD=${BENCH_RESPGUARD_BIN:-}
if { has_target respguard || has_target respguard_batch; } && [[ -z $RESPGUARD ]]; then
	if [[ ! -d $ROOT/cmd/respguard ]]; then
		note "respguard and respguard_batch skipped: $ROOT/cmd/respguard does not exist yet"
		drop_target respguard
		drop_target respguard_batch
	else
		log "building respguard"
		RESPGUARD=$TMP/respguard
		if ! (cd "$ROOT" && CGO_ENABLED=0 go build -o "$RESPGUARD" ./cmd/respguard) >"$TMP/build.log" 2>&1; then
			cat "$TMP/build.log" >&2
			note "respguard and respguard_batch skipped: go build ./cmd/respguard failed"
			drop_target respguard
			drop_target respguard_batch
		fi
	fi
fi
[[ -n $TARGETS ]] || die "no target left to measure"

# --- processes ---------------------------------------------------------------


rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# alive TARGET: true while the target's process runs. A dead one is noted
# (with the end of its log) and left out of the remaining cells.
declare -A DEAD
alive() {
	kill -0 "${PID[$1]}" 2>/dev/null && return 0
	if [[ -z ${DEAD[$1]:-} ]]; then
		DEAD[$1]=1
		note "$1 (pid ${PID[$1]}) died; its remaining cells are missing. End of its log: $(tail -3 "$TMP/$1.log" 2>/dev/null | tr '\n' ' ')"
	fi
	return 1
}


declare -A PORT PID
REDIS_PORT=$(free_ports 1)
taskset -c "$REDIS_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
	--appendonly no --maxclients $((IDLE + 1000)) --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_ping "$REDIS_PORT" redis "$REDIS_PID" "$TMP/redis.log"
PORT[direct]=$REDIS_PORT
PID[direct]=$REDIS_PID

# started TARGET: records the pid of the process just started in the
# background ($!) and waits until it answers PING.
started() {
	PID[$1]=$!
	PIDS+=("${PID[$1]}")
	wait_ping "${PORT[$1]}" "$1" "${PID[$1]}" "$TMP/$1.log"
}

if has_target twemproxy; then
	PORT[twemproxy]=$(free_ports 1)
	start_twemproxy twemproxy "${PORT[twemproxy]}" "$REDIS_PORT" "$CLIENT_CPU"
	started twemproxy
fi
if has_target twemproxy_batch; then
	PORT[twemproxy_batch]=$(free_ports 1)
	start_twemproxy twemproxy_batch "${PORT[twemproxy_batch]}" "$REDIS_PORT" "$CLIENT_CPU" chrt -b 0
	started twemproxy_batch
fi

# start_respguard TARGET [VAR=value...]: respguard as TARGET, with VARs added
# to its environment. As in production: guardrails and metrics on (the
# defaults), and 1% of commands traced (spans exported by the stdout exporter,
# to /dev/null). Idle clients parked after 1-2 s (client.park_after, 5s by
# default), so that the memory readings need not wait 10 s.
start_respguard() {
	local target=$1
	shift
	PORT[$target]=$(free_ports 1)
	env "$@" RESPGUARD_ADMIN_LISTEN="127.0.0.1:$(free_ports 1)" RESPGUARD_CLIENT_MAX_CLIENTS=$((IDLE + 1000)) \
		RESPGUARD_CLIENT_PARK_AFTER="${BENCH_PARK_AFTER:-1s}" \
		RESPGUARD_TELEMETRY_TRACES_EXPORTER=stdout RESPGUARD_TELEMETRY_TRACES_SAMPLE_RATIO=0.01 \
		taskset -c "$CLIENT_CPU" "$RESPGUARD" --listen "127.0.0.1:${PORT[$target]}" \
		--upstream "127.0.0.1:$REDIS_PORT" >/dev/null 2>"$TMP/$target.log" &
	started "$target"
}

if has_target respguard; then
	start_respguard respguard
fi
if has_target respguard_batch; then
	start_respguard respguard_batch RESPGUARD_SCHED_POLICY=batch
fi

# --- measurements ------------------------------------------------------------

CELLS=$TMP/cells.tsv # round workload target test rps p50 p99 max
CPU=$TMP/cpu.tsv     # round workload target proxy_ticks redis_ticks requests
IDLE_TSV=$TMP/idle.tsv
for f in "$CELLS" "$CPU" "$IDLE_TSV"; do : >"$f"; done
NTESTS=$(tr ',' '\n' <<<"$TESTS" | grep -c .)
read -r -a TARGET_LIST <<<"$TARGETS"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)


run_cell() { # round workload args n target
	local round=$1 name=$2 args=$3 n=$4 target=$5 port=${PORT[$5]} pid=${PID[$5]}
	local p0 r0 p1 r1
	alive "$target" || return 0
	p0=$(cpu_ticks "$pid")
	r0=$(cpu_ticks "$REDIS_PID")
	# shellcheck disable=SC2086 # args is a word list on purpose
	taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "$port" -t "$TESTS" -n "$n" $args --csv \
		>"$TMP/cell.csv" 2>>"$TMP/benchmark.err" || log "redis-benchmark exited $? ($target $name)"
	p1=$(cpu_ticks "$pid")
	r1=$(cpu_ticks "$REDIS_PID")
	alive "$target" || return 0
	awk -F, -v r="$round" -v w="$name" -v t="$target" \
		'NR > 1 { gsub(/"/, ""); print r "\t" w "\t" t "\t" $1 "\t" $2 "\t" $5 "\t" $7 "\t" $8 }' \
		"$TMP/cell.csv" >>"$CELLS"
	if [[ $target == direct ]]; then
		printf '%s\t%s\t%s\t\t%s\t%s\n' "$round" "$name" "$target" $((r1 - r0)) $((n * NTESTS)) >>"$CPU"
	else
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$target" $((p1 - p0)) $((r1 - r0)) $((n * NTESTS)) >>"$CPU"
	fi
	log "round $round $name $target: $(awk -F, 'NR > 1 { gsub(/"/, ""); printf "%s %s/s  ", $1, $2 }' "$TMP/cell.csv")"
}


# wait_line FILE PREFIX PID: wait (up to 60 s) until FILE has a line starting
# with PREFIX; false if PID exits or time runs out first.
wait_line() {
	local i
	for i in $(seq 600); do
		grep -q "^$2" "$1" && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

measure_idle() { # target
	local target=$1 pid=${PID[$1]} before idle after idle_pid t0 ms
	alive "$target" || return 0
	before=$(rss_kib "$pid")
	python3 "$BENCH/idle_clients.py" --port "${PORT[$target]}" --count "$IDLE" >"$TMP/idle.out" 2>&1 &
	idle_pid=$!
	PIDS+=("$idle_pid")
	if ! wait_line "$TMP/idle.out" idle "$idle_pid"; then
		note "idle clients against $target failed: $(cat "$TMP/idle.out")"
		kill "$idle_pid" 2>/dev/null || true
		return
	fi
	sleep 1 # let lazily allocated per-client state settle
	idle=$(rss_kib "$pid")
	tcp_counters_reset
	t0=$(date +%s%N)
	kill -USR1 "$idle_pid" # each client now sends one PING
	if ! wait_line "$TMP/idle.out" ready "$idle_pid"; then
		note "idle clients' PINGs against $target failed: $(cat "$TMP/idle.out")"
		kill "$idle_pid" 2>/dev/null || true
		return
	fi
	# A PING phase far slower than the others is TCP retransmitting (a
	# connection the listener dropped at its accept queue's limit), not
	# the proxy: the counters say which.
	ms=$((($(date +%s%N) - t0) / 1000000))
	if ((ms > 5000)); then
		note "idle $target: $IDLE PINGs answered in $ms ms; TCP counters during them: $(tcp_counters)"
	else
		log "idle $target: $IDLE PINGs answered in $ms ms; TCP counters during them: $(tcp_counters)"
	fi
	sleep "$IDLE_SETTLE"
	after=$(rss_kib "$pid")
	kill "$idle_pid"
	wait "$idle_pid" 2>/dev/null || true
	printf '%s\t%s\t%s\t%s\t%s\n' "$target" "$before" "$after" "$IDLE" "$idle" >>"$IDLE_TSV"
	log "idle $target: RSS ${before} KiB -> ${idle} KiB with $IDLE idle clients -> ${after} KiB after one PING each"
	sleep 2 # let the server reap the closed connections
}

# Memory first, on fresh processes: after the load cells a proxy's heap has
# grown, and new clients' state would fill memory it already holds. Only
# direct, respguard and twemproxy: the _batch targets run the same code with
# another scheduling policy, which does not change memory.
if ((IDLE > 0)); then
	for t in "${TARGET_LIST[@]}"; do
		[[ $t == *_batch ]] || measure_idle "$t"
	done
fi

for ((round = 1; round <= ROUNDS; round++)); do
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r name args n <<<"$w"
		n=$(workload_n "$name" "$n")
		# Rotate the target order by round and workload: no target always runs first.
		for ((i = 0; i < ${#TARGET_LIST[@]}; i++)); do
			t=${TARGET_LIST[$(((i + round + ${#name}) % ${#TARGET_LIST[@]}))]}
			run_cell "$round" "$name" "$args" "$n" "$t"
		done
	done
done

# --- report ------------------------------------------------------------------

# The proxies' threads' scheduling policies, read at the end of the run (the
# Go runtime starts threads as the load needs them). A _batch target with a
# thread outside SCHED_BATCH is noted: its numbers are not what they claim.
SCHED=()
for t in "${TARGET_LIST[@]}"; do
	[[ $t == direct ]] && continue
	alive "$t" || continue
	policies=$(sched_policies "${PID[$t]}")
	SCHED+=("$t: $policies")
	if [[ $t == *_batch && ! $policies =~ ^SCHED_BATCH\ x\ [0-9]+$ ]]; then
		note "$t's threads are not all SCHED_BATCH ($policies)"
	fi
done

{
	echo "command	BENCH_ROUNDS=$ROUNDS deploy/bench/run.sh $ARGS_SEEN"
	echo "date	$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "machine	$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), Linux $(uname -r)"
	echo "load	load average $LOAD_BEFORE before the run, $(cut -d' ' -f1-3 /proc/loadavg) after (other work on the machine skews the numbers)"
	echo "pinning	redis-server on CPU $REDIS_CPU; proxies and redis-benchmark on CPU $CLIENT_CPU"
	echo "redis	$(redis-server --version | awk '{print $3}' | sed 's/v=//')"
	if has_target twemproxy || has_target twemproxy_batch; then
		echo "twemproxy	$(nutcracker -V 2>&1 | head -1 | sed 's/This is //')"
	fi
	if has_target respguard || has_target respguard_batch; then
		echo "respguard	$("$RESPGUARD" --version 2>&1 | head -1)"
	fi
	if ((${#SCHED[@]} > 0)); then
		echo "scheduling	respguard_batch runs with RESPGUARD_SCHED_POLICY=batch, twemproxy_batch under chrt -b 0; threads' policies at the end of the run: $(printf '%s; ' "${SCHED[@]}" | sed 's/; $//')"
	fi
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r name args n <<<"$w"
		echo "workload	$name	$args	$(workload_n "$name" "$n")"
	done
	echo "tests	$TESTS"
	echo "quick	$QUICK"
	for n in "${NOTES[@]}"; do echo "note	$n"; done
} >"$TMP/meta.tsv"

mkdir -p "$OUT_DIR"
STEM=$OUT_DIR/$(date -u +%Y%m%dT%H%M%SZ)
((QUICK)) && STEM+=-quick
# Keep the raw measurements next to the report: report.py can be re-run on them.
mkdir -p "$STEM.raw"
cp "$TMP/meta.tsv" "$CELLS" "$CPU" "$IDLE_TSV" "$STEM.raw/"
cp "$TMP"/*.log "$TMP/benchmark.err" "$STEM.raw/" 2>/dev/null || true
python3 "$BENCH/report.py" "$STEM.raw/meta.tsv" "$STEM.raw/cells.tsv" "$STEM.raw/cpu.tsv" \
	"$STEM.raw/idle.tsv" "$(getconf CLK_TCK)" | tee "$STEM.md"
log "report saved to $STEM.md"
