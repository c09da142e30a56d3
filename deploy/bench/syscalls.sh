#!/usr/bin/env bash
# Syscalls, thread hand-offs and Redis reads per request: what each proxy
# does around a request, counted (not timed), so two builds compare on a
# noisy machine.
#
# Usage: deploy/bench/syscalls.sh [--targets "respguard twemproxy [base]"]
#
# For each workload (redis-benchmark -t get, -c 1 and -c 50, -P 1) and
# target, counts with `perf stat` on the proxy process (all its threads)
# while one redis-benchmark run lasts, and reads Redis's INFO stats before
# and after. Prints a markdown table, per request:
#   syscalls   every syscall the proxy made
#   read/write read+recvfrom / write+sendto+writev calls
#   futex      futex calls (a thread parking or waking another one)
#   epoll      epoll_wait/epoll_pwait calls
#   sleep      nanosleep + sched_yield (a Go runtime spinning or backing off)
#   cs         context switches of the proxy's threads
#   CPU us     the proxy's CPU time (perf's task-clock), microseconds; under
#              other load on the machine this one is noisy, the counts are not
#   cmd/read   commands Redis ran per read of its sockets (the batching a
#              proxy gives Redis: higher is better)
# perf's counters are kernel tracepoints: they cost little, so the timing
# (and the batching that depends on it) stays close to an uncounted run.
#
# Pinning as in run.sh: redis-server on CPU $BENCH_REDIS_CPU (0), the proxy
# and redis-benchmark on CPU $BENCH_CLIENT_CPU (1).
#
# Environment overrides:
#   BENCH_N_C1=20000 BENCH_N_C50=200000  requests per run
#   BENCH_ROUNDS=1                       interleaved rounds (one row each)
#   BENCH_RESPGUARD_BIN=                 use this respguard binary instead of building one
#   BENCH_BASE_BIN=                      the respguard binary of target "base" (an A/B
#                                        against another build, e.g. main's)
#   BENCH_REDIS_CPU=0 BENCH_CLIENT_CPU=1
set -euo pipefail

usage() { sed -n '2,29p' "$0" | sed 's/^# \{0,1\}//'; }

TARGETS=${BENCH_TARGETS:-respguard twemproxy}
while [[ $# -gt 0 ]]; do
	case $1 in
	--targets) TARGETS=$2; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH=$ROOT/deploy/bench
ROUNDS=${BENCH_ROUNDS:-1}
REDIS_CPU=${BENCH_REDIS_CPU:-0}
CLIENT_CPU=${BENCH_CLIENT_CPU:-1}
WORKLOADS=(
	"c1|-c 1 -P 1|${BENCH_N_C1:-20000}"
	"c50|-c 50 -P 1|${BENCH_N_C50:-200000}"
)

# shellcheck source=lib.bash source-path=SCRIPTDIR
source "$BENCH/lib.bash"
bench_init respguard-syscalls

for tool in perf redis-server redis-benchmark redis-cli taskset; do
	command -v "$tool" >/dev/null || die "$tool is needed"
done
if [[ ! -d /sys/kernel/tracing/events/syscalls ]]; then
	mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null ||
		die "perf needs the syscall tracepoints: mount tracefs on /sys/kernel/tracing (as root)"
fi

RESPGUARD=${BENCH_RESPGUARD_BIN:-}
if [[ " $TARGETS " == *" respguard "* && -z $RESPGUARD ]]; then
	log "building respguard"
	RESPGUARD=$TMP/respguard
	(cd "$ROOT" && CGO_ENABLED=0 go build -o "$RESPGUARD" ./cmd/respguard) || die "go build failed"
fi

declare -A PORT PID
REDIS_PORT=$(free_ports 1)
taskset -c "$REDIS_CPU" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
	--appendonly no --dir "$TMP" --logfile "$TMP/redis.log" &
REDIS_PID=$!
PIDS+=("$REDIS_PID")
wait_ping "$REDIS_PORT" redis "$REDIS_PID" "$TMP/redis.log"

for t in $TARGETS; do
	PORT[$t]=$(free_ports 1)
	case $t in
	twemproxy)
		start_twemproxy "$t" "${PORT[$t]}" "$REDIS_PORT" "$CLIENT_CPU"
		;;
	respguard | base)
		bin=$RESPGUARD
		if [[ $t == base ]]; then
			bin=${BENCH_BASE_BIN:?target base needs BENCH_BASE_BIN}
		fi
		# As in run.sh: defaults, metrics on, 1% of commands traced.
		RESPGUARD_ADMIN_LISTEN=127.0.0.1:$(free_ports 1) \
			RESPGUARD_TELEMETRY_TRACES_EXPORTER=stdout RESPGUARD_TELEMETRY_TRACES_SAMPLE_RATIO=0.01 \
			taskset -c "$CLIENT_CPU" "$bin" --listen "127.0.0.1:${PORT[$t]}" \
			--upstream "127.0.0.1:$REDIS_PORT" >/dev/null 2>"$TMP/$t.log" &
		;;
	*) die "unknown target $t" ;;
	esac
	PID[$t]=$!
	PIDS+=("${PID[$t]}")
	wait_ping "${PORT[$t]}" "$t" "${PID[$t]}" "$TMP/$t.log"
done

redis_stat() { # field: from Redis's INFO stats
	redis-cli -p "$REDIS_PORT" info stats | tr -d '\r' | awk -F: -v f="$1" '$1 == f { print $2 }'
}

EVENTS=raw_syscalls:sys_enter,context-switches,task-clock
for sc in read recvfrom write sendto writev futex epoll_wait epoll_pwait nanosleep sched_yield; do
	EVENTS+=,syscalls:sys_enter_$sc
done

# count TARGET NAME ARGS N: one counted run; prints a table row.
count() {
	local target=$1 name=$2 args=$3 n=$4 perf_pid reads0 cmds0 reads1 cmds1
	reads0=$(redis_stat total_reads_processed)
	cmds0=$(redis_stat total_commands_processed)
	perf stat -x, -e "$EVENTS" -p "${PID[$target]}" -o "$TMP/perf.csv" &
	perf_pid=$!
	sleep 0.5 # perf attaches
	# shellcheck disable=SC2086 # args is a word list on purpose
	taskset -c "$CLIENT_CPU" redis-benchmark -h 127.0.0.1 -p "${PORT[$target]}" -t get -n "$n" $args \
		-q >"$TMP/bench.out" 2>&1 || log "redis-benchmark exited $? ($target $name)"
	kill -INT "$perf_pid"
	wait "$perf_pid" 2>/dev/null || true
	reads1=$(redis_stat total_reads_processed)
	cmds1=$(redis_stat total_commands_processed)
	log "$target $name: $(tr '\r' '\n' <"$TMP/bench.out" | grep -a 'requests per second' | tail -1)"
	awk -F, -v t="$target" -v w="$name" -v n="$n" \
		-v rr=$((reads1 - reads0)) -v rc=$((cmds1 - cmds0)) '
		/^#/ || NF < 3 { next }
		{ ev = $3; sub(/^syscalls:sys_enter_/, "", ev); c[ev] += $1 }
		END {
			printf "| %s | %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.1f | %.2f |\n", w, t,
				c["raw_syscalls:sys_enter"] / n, (c["read"] + c["recvfrom"]) / n,
				(c["write"] + c["sendto"] + c["writev"]) / n, c["futex"] / n,
				(c["epoll_wait"] + c["epoll_pwait"]) / n, (c["nanosleep"] + c["sched_yield"]) / n,
				c["context-switches"] / n, c["task-clock"] * 1000 / n, (rr > 0 ? rc / rr : 0)
		}' "$TMP/perf.csv"
}

echo "| workload | target | syscalls | read | write | futex | epoll | sleep | cs | CPU us | Redis cmd/read |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for ((round = 1; round <= ROUNDS; round++)); do
	for w in "${WORKLOADS[@]}"; do
		IFS='|' read -r name args n <<<"$w"
		for t in $TARGETS; do
			count "$t" "$name" "$args" "$n"
		done
	done
done
