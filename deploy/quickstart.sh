#!/usr/bin/env bash
# From a fresh Debian machine to respguard in front of a local Redis, in one
# command:
#
#   deploy/quickstart.sh
#
# Installs redis-server with apt-get if there is none, starts it (daemonized,
# no systemd needed) if nothing answers on 127.0.0.1:6379, builds respguard
# with Go, and runs it in the foreground with deploy/respguard.example.yaml
# (listening on 127.0.0.1:6380, admin on 127.0.0.1:9180). Ctrl-C stops it;
# the Redis it started keeps running (stop it with `redis-cli shutdown`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CONFIG=${RESPGUARD_QUICKSTART_CONFIG:-$ROOT/deploy/respguard.example.yaml}
BIN=$ROOT/respguard

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

as_root() {
	if [[ $(id -u) -eq 0 ]]; then
		"$@"
	elif command -v sudo >/dev/null; then
		sudo "$@"
	else
		die "need root for: $*"
	fi
}

redis_answers() { [[ $(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null) == PONG ]]; }

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
	say "Redis already answers on 127.0.0.1:6379; using it"
else
	say "starting redis-server on 127.0.0.1:6379 (log: /tmp/respguard-quickstart-redis.log)"
	redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
		--dir /tmp --logfile /tmp/respguard-quickstart-redis.log
	for _ in $(seq 50); do redis_answers && break; sleep 0.1; done
	redis_answers || die "redis-server did not start; see /tmp/respguard-quickstart-redis.log"
fi

command -v go >/dev/null || die "Go is needed to build respguard (go.mod says which version): https://go.dev/doc/install"
say "building respguard ($(go version | awk '{print $3}'))"
(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath \
	-ldflags "-X main.version=$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo dev) -X main.commit=$(git -C "$ROOT" rev-parse --verify -q HEAD || echo unknown)" \
	-o "$BIN" ./cmd/respguard)

if redis-cli -p 6380 ping >/dev/null 2>&1; then
	die "something already answers on 127.0.0.1:6380 (another respguard?)"
fi

cat >&2 <<EOF

respguard is starting in front of Redis with $CONFIG.
In another terminal:

  redis-cli -p 6380 ping
  redis-cli -p 6380 set hello world
  redis-cli -p 6380 get hello
  redis-benchmark -p 6380 -t set,get -n 100000 -q       # through the proxy
  curl -s localhost:9180/readyz
  curl -s localhost:9180/metrics | grep '^respguard_'
  curl -s localhost:9180/debug/slowlog

Guardrails ($CONFIG has policy.default_rules: production):
  redis-cli -p 6380 keys '*'            # -NOPERM: KEYS is blocked by the production preset
  redis-cli -p 6380 flushall            # -NOPERM
  redis-cli -p 6380 eval "for i=1,20000 do redis.call('rpush','biglist',i) end" 0
  redis-cli -p 6380 lrange biglist 0 -1 # refused: over guard.max_elements, use bounded ranges
  redis-cli -p 6380 del biglist         # sent to Redis as UNLINK
  curl -s localhost:9180/debug/bigkeys
  curl -s localhost:9180/metrics | grep -E 'respguard_(policy_denials|guard_actions)_total'
Traces on this terminal: RESPGUARD_TELEMETRY_TRACES_EXPORTER=stdout deploy/quickstart.sh
Full stack with Jaeger: docker compose -f deploy/compose.yaml up --build

Ctrl-C stops respguard.

EOF
exec "$BIN" --config "$CONFIG"
