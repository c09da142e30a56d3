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

# start_twemproxy PORT REDIS_PORT CPU LOG: nutcracker (twemproxy) on
# 127.0.0.1:PORT in front of the Redis on REDIS_PORT with one server
# connection, pinned to CPU, logging to LOG, in the background: $! is its
# pid once this returns.
start_twemproxy() {
	cat >"$TMP/nutcracker.yml" <<-EOF
		bench:
		  listen: 127.0.0.1:$1
		  redis: true
		  hash: fnv1a_64
		  distribution: ketama
		  auto_eject_hosts: false
		  preconnect: true
		  server_connections: 1
		  servers:
		    - 127.0.0.1:$2:1
	EOF
	taskset -c "$3" nutcracker -c "$TMP/nutcracker.yml" -s "$(free_ports 1)" -a 127.0.0.1 \
		-o "$4" -p "$TMP/nutcracker.pid" &
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
