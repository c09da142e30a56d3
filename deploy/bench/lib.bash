# shellcheck shell=bash
# Helpers shared by the load scripts (run.sh, cluster.sh); sourced, not run.
# bench_init NAME makes $TMP (removed on exit, with every pid in PIDS killed).

log() { printf '[bench] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

NOTES=()
note() { NOTES+=("$*"); log "$*"; }

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$TMP"
}

# bench_init NAME: a temporary directory /tmp/NAME.XXXXXX as $TMP, and the
# traps that clean up on exit or interruption.
bench_init() {
	TMP=$(mktemp -d "/tmp/$1.XXXXXX")
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# free_ports N: N distinct free loopback ports (all held open while choosing).
free_ports() {
	python3 - "${1:-1}" <<-'PY'
		import socket, sys
		socks = [socket.socket() for _ in range(int(sys.argv[1]))]
		for s in socks:
		    s.bind(("127.0.0.1", 0))
		print(" ".join(str(s.getsockname()[1]) for s in socks))
	PY
}

# cpu_ticks PID...: summed utime+stime in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the ")" that ends the command name, which may
# hold spaces).
cpu_ticks() {
	local pid sum=0 t
	for pid in "$@"; do
		t=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')
		sum=$((sum + ${t:-0}))
	done
	echo "$sum"
}

# wait_ping PORT NAME PID LOGFILE: wait (10 s at most) until the server on
# PORT answers PING; if it dies or never answers, show its log and stop.
wait_ping() {
	for _ in $(seq 100); do
		[[ $(redis-cli -p "$1" ping 2>/dev/null) == PONG ]] && return 0
		kill -0 "$3" 2>/dev/null || break
		sleep 0.1
	done
	log "$2 did not answer PING on port $1; its log:"
	cat "$4" >&2 || true
	die "$2 failed to start"
}

# workload_n NAME DEFAULT: -n for a workload: BENCH_N, else BENCH_N_<NAME>,
# else DEFAULT.
workload_n() {
	local var
	var=BENCH_N_${1^^}
	echo "${BENCH_N:-${!var:-$2}}"
}

# start_twemproxy NAME PORT REDIS_PORT CPU [WRAPPER...]: nutcracker
# (twemproxy) on 127.0.0.1:PORT in front of the Redis on REDIS_PORT with one
# server connection, pinned to CPU, in the background: $! is its pid once this
# returns. Its config, pid file and log are $TMP/NAME.yml, .pid and .log, so
# instances with different names can run side by side. WRAPPER, if given, is
# a command that execs the rest of its arguments (e.g. chrt -b 0), so $! stays
# nutcracker's pid.
start_twemproxy() {
	local name=$1 port=$2 redis_port=$3 cpu=$4
	shift 4
	cat >"$TMP/$name.yml" <<-EOF
		bench:
		  listen: 127.0.0.1:$port
		  redis: true
		  hash: fnv1a_64
		  distribution: ketama
		  auto_eject_hosts: false
		  preconnect: true
		  server_connections: 1
		  servers:
		    - 127.0.0.1:$redis_port:1
	EOF
	"$@" taskset -c "$cpu" nutcracker -c "$TMP/$name.yml" -s "$(free_ports 1)" -a 127.0.0.1 \
		-o "$TMP/$name.log" -p "$TMP/$name.pid" &
}

# sched_policies PID: the scheduling policies of PID's threads, counted, e.g.
# "SCHED_BATCH x 7" or "SCHED_OTHER x 2, SCHED_BATCH x 5" (field 41 of
# /proc/PID/task/TID/stat).
sched_policies() {
	local stat
	for stat in /proc/"$1"/task/*/stat; do
		sed 's/.*) //' "$stat" 2>/dev/null | awk '{print $39}'
	done | awk '
		BEGIN { split("SCHED_OTHER SCHED_FIFO SCHED_RR SCHED_BATCH SCHED_ISO SCHED_IDLE SCHED_DEADLINE", name, " ") }
		{ p = ($1 + 1 in name) ? name[$1 + 1] : "policy " $1; if (!(p in n)) order[++k] = p; n[p]++ }
		END { for (i = 1; i <= k; i++) printf "%s%s x %d", (i > 1 ? ", " : ""), order[i], n[order[i]] }'
}

# tcp_counters_reset / tcp_counters: the kernel's TCP counters that tell a
# slow phase of a loopback benchmark from TCP loss (accept-queue overflows,
# retransmits), since the last reset; "n/a" without nstat (iproute2).
tcp_counters_reset() {
	if command -v nstat >/dev/null; then nstat -n >/dev/null 2>&1 || true; fi
}
tcp_counters() {
	if ! command -v nstat >/dev/null; then
		echo n/a
		return
	fi
	nstat -z TcpExtListenOverflows TcpExtListenDrops TcpRetransSegs TcpExtTCPTimeouts 2>/dev/null |
		awk 'NR > 1 && $1 !~ /^#/ { printf "%s%s=%s", sep, $1, $2; sep = " " }'
}
