#!/usr/bin/env bash
# From a fresh Debian machine to respguard in front of a local Redis, in one
# command:
#
#   deploy/quickstart.sh
#
# Builds respguard with Go, installs redis-server with apt-get if there is
# none, starts it (daemonized, no systemd needed) if nothing answers on the
# configured upstream (127.0.0.1:6379), and runs respguard in the foreground
# with deploy/respguard.example.yaml (clients on 127.0.0.1:6380, admin on
# 127.0.0.1:9180, or wherever the config and RESPGUARD_* variables put them).
# Both ports are checked before respguard starts, and the instructions it
# prints name the ports really used. Ctrl-C stops it; the Redis it started
# keeps running (stop it with `redis-cli shutdown`).
#
# RESPGUARD_QUICKSTART_CONFIG picks another config file;
# RESPGUARD_QUICKSTART_BIN runs that respguard binary instead of building
# ./respguard.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=${RESPGUARD_QUICKSTART_CONFIG:-$ROOT/deploy/respguard.example.yaml}
BIN=${RESPGUARD_QUICKSTART_BIN:-}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() {
	printf 'quickstart: %s\n' "$*" >&2
	exit 1
}

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

# in_use HOST:PORT succeeds when something accepts TCP connections there.
in_use() {
	local host=${1%:*} port=${1##*:}
	if [[ -z $host || $host == 0.0.0.0 || $host == "[::]" ]]; then
		host=127.0.0.1
	fi
	(exec 3<>"/dev/tcp/$host/$port") 2>/dev/null
}

# setting KEY prints one top-level (listen) or nested (admin.listen) value of
# respguard's effective configuration: the file, RESPGUARD_* variables and
# defaults, as respguard itself will see them.
setting() {
	local section="" field=$1
	if [[ $1 == *.* ]]; then
		section=${1%%.*} field=${1#*.}
	fi
	awk -v section="$section" -v field="$field" '
		/^[^ ]/ { top = $1; sub(/:$/, "", top) }
		section == "" && /^[^ ]/ && $1 == field ":" { print $2; exit }
		section != "" && top == section && /^    [^ ]/ && $1 == field ":" { print $2; exit }
	' <<<"$EFFECTIVE" | tr -d '"'
}

if [[ -z $BIN ]]; then
	BIN=$ROOT/respguard
	command -v go >/dev/null || die "Go is needed to build respguard (go.mod says which version): https://go.dev/doc/install"
	say "building respguard ($(go version | awk '{print $3}'))"
	(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath \
		-ldflags "-X main.version=$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo dev) -X main.commit=$(git -C "$ROOT" rev-parse --verify -q HEAD || echo unknown)" \
		-o "$BIN" ./cmd/respguard)
fi
[[ -x $BIN ]] || die "$BIN is not an executable respguard"
EFFECTIVE=$("$BIN" --config "$CONFIG" --print-config) || die "$CONFIG: invalid configuration (see above)"
LISTEN=$(setting listen)
ADMIN=$(setting admin.listen)
UPSTREAM=$(setting upstream.address)
LISTEN_PORT=${LISTEN##*:}
ADMIN_PORT=${ADMIN##*:}

redis_answers() { [[ $(redis-cli -h "${UPSTREAM%:*}" -p "${UPSTREAM##*:}" ping 2>/dev/null) == PONG ]]; }

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
	command -v apt-get >/dev/null || die "install redis-server and redis-cli, then run this again"
	say "installing redis-server (apt-get)"
	as_root apt-get update -qq
	# Debian's postinst may try to start Redis through an init system that a
	# container lacks; the check below starts it either way.
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null ||
		command -v redis-server >/dev/null || die "apt-get install redis-server failed"
fi

if redis_answers; then
	say "Redis already answers on $UPSTREAM; using it"
elif [[ $UPSTREAM != 127.0.0.1:* && $UPSTREAM != localhost:* ]]; then
	die "Redis does not answer on $UPSTREAM (upstream.address): start it, or point upstream.address at a local one"
else
	say "starting redis-server on $UPSTREAM (log: /tmp/respguard-quickstart-redis.log)"
	redis-server --bind 127.0.0.1 --port "${UPSTREAM##*:}" --daemonize yes --save '' --appendonly no \
		--dir /tmp --logfile /tmp/respguard-quickstart-redis.log
	for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
	redis_answers || die "redis-server did not start; see /tmp/respguard-quickstart-redis.log"
fi

if in_use "$LISTEN"; then
	die "something already listens on $LISTEN (listen; another respguard?): stop it or change listen"
fi
ADMIN_HELP="  (admin.listen is off: no /metrics, /readyz or /debug endpoints)"
GUARD_HELP=""
if [[ -n $ADMIN && $ADMIN != off ]]; then
	if in_use "$ADMIN"; then
		die "something already listens on $ADMIN (admin.listen): stop it, change admin.listen, or set it to off"
	fi
	ADMIN_HELP="  curl -s localhost:$ADMIN_PORT/readyz
  curl -s localhost:$ADMIN_PORT/metrics | grep '^respguard_'
  curl -s localhost:$ADMIN_PORT/debug/slowlog"
	GUARD_HELP="  curl -s localhost:$ADMIN_PORT/debug/bigkeys
  curl -s localhost:$ADMIN_PORT/metrics | grep -E 'respguard_(policy_denials|guard_actions)_total'"
fi

cat >&2 <<EOF

respguard is starting in front of Redis at $UPSTREAM with $CONFIG:
clients on $LISTEN, admin on ${ADMIN:-off}. In another terminal:

  redis-cli -p $LISTEN_PORT ping
  redis-cli -p $LISTEN_PORT set hello world
  redis-cli -p $LISTEN_PORT get hello
  redis-benchmark -p $LISTEN_PORT -t set,get -n 100000 -q       # through the proxy
$ADMIN_HELP

Guardrails ($CONFIG has policy.default_rules: production):
  redis-cli -p $LISTEN_PORT keys '*'            # -NOPERM: KEYS is blocked by the production preset
  redis-cli -p $LISTEN_PORT flushall            # -NOPERM
  redis-cli -p $LISTEN_PORT eval "for i=1,20000 do redis.call('rpush','biglist',i) end" 0
  redis-cli -p $LISTEN_PORT lrange biglist 0 -1 # refused: over guard.max_elements, use bounded ranges
  redis-cli -p $LISTEN_PORT del biglist         # sent to Redis as UNLINK
$GUARD_HELP
Traces on this terminal: RESPGUARD_TELEMETRY_TRACES_EXPORTER=stdout deploy/quickstart.sh
Full stack with Jaeger: docker compose -f deploy/compose.yaml up --build

Ctrl-C stops respguard.

EOF
exec "$BIN" --config "$CONFIG"
