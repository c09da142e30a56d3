#!/usr/bin/env bash
# Build the respguard container image from deploy/Dockerfile.
#
# Usage: deploy/build-image.sh [tag]          (tag defaults to respguard:dev)
#
# Uses docker when an engine answers, else buildah with --storage-driver vfs
# (Debian: apt-get install buildah). Users and CI run this same script.
#
# By default the binary is built here with the host's Go (CGO_ENABLED=0,
# version and commit stamped) and packaged FROM scratch with the host's CA
# certificates: no registry is contacted, so it works offline.
#
# Environment:
#   RESPGUARD_IMAGE_MODE=prebuilt   or "build": compile inside a golang stage
#                                   (needs registry access for GO_IMAGE)
#   RESPGUARD_BASE_IMAGE=           final base; default scratch for prebuilt,
#                                   the Dockerfile's distroless static for build
#   RESPGUARD_GO_IMAGE=             golang image for mode "build"
#   RESPGUARD_BINARY=               package this static binary instead of building
#   RESPGUARD_IMAGE_ENGINE=         force docker or buildah
#   RESPGUARD_BUILDAH_ROOT=         private buildah storage directory (CI uses one)
#   RESPGUARD_BUILD_FLAGS=          extra flags for docker/buildah build (word-split)
#   VERSION= COMMIT=                default: git describe / git rev-parse HEAD
set -euo pipefail

TAG=${1:-respguard:dev}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MODE=${RESPGUARD_IMAGE_MODE:-prebuilt}
CA_BUNDLE=${RESPGUARD_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

log() { printf '[build-image] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

git_or() { git -C "$ROOT" "$@" 2>/dev/null; }
VERSION=${VERSION:-$(git_or describe --tags --always --dirty || echo dev)}
COMMIT=${COMMIT:-$(git_or rev-parse --verify -q HEAD || echo unknown)}
CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)

pick_engine() {
	if [[ -n ${RESPGUARD_IMAGE_ENGINE:-} ]]; then
		echo "$RESPGUARD_IMAGE_ENGINE"
	elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		echo docker
	elif command -v buildah >/dev/null; then
		echo buildah
	else
		die "no docker engine answers and buildah is not installed (Debian: apt-get install buildah)"
	fi
}

# buildah_cmd prints the buildah invocation with its global storage flags;
# .ci/image uses the same flags to run the image it built.
buildah_cmd() {
	local cmd=(buildah --storage-driver vfs)
	if [[ -n ${RESPGUARD_BUILDAH_ROOT:-} ]]; then
		cmd+=(--root "$RESPGUARD_BUILDAH_ROOT/storage" --runroot "$RESPGUARD_BUILDAH_ROOT/run")
	fi
	echo "${cmd[@]}"
}

# prepare_prebuilt_context DIR: the static binary, CA certificates and the
# container's default config, as the Dockerfile's "prebuilt" stage expects.
prepare_prebuilt_context() {
	local ctx=$1
	if [[ -n ${RESPGUARD_BINARY:-} ]]; then
		cp "$RESPGUARD_BINARY" "$ctx/respguard"
	else
		log "building respguard $VERSION ($COMMIT) with $(go version | awk '{print $3}')"
		(cd "$ROOT" && CGO_ENABLED=0 go build -trimpath \
			-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
			-o "$ctx/respguard" ./cmd/respguard)
	fi
	[[ -r $CA_BUNDLE ]] || die "no CA bundle at $CA_BUNDLE (Debian: apt-get install ca-certificates)"
	cp "$CA_BUNDLE" "$ctx/ca-certificates.crt"
	cp "$ROOT/deploy/container/respguard.yaml" "$ctx/respguard.yaml"
}

CTX_DIR=
cleanup() { [[ -z $CTX_DIR ]] || rm -rf "$CTX_DIR"; }
trap cleanup EXIT

main() {
	local engine ctx args=()
	engine=$(pick_engine)
	# shellcheck disable=SC2206 # word-split on purpose
	args+=(${RESPGUARD_BUILD_FLAGS:-})
	args+=(--build-arg "VERSION=$VERSION" --build-arg "COMMIT=$COMMIT" --build-arg "CREATED=$CREATED")
	case $MODE in
	prebuilt)
		CTX_DIR=$(mktemp -d /tmp/respguard-image.XXXXXX)
		ctx=$CTX_DIR
		prepare_prebuilt_context "$ctx"
		args+=(--build-arg BINARY_SOURCE=prebuilt --build-arg "BASE_IMAGE=${RESPGUARD_BASE_IMAGE:-scratch}")
		;;
	build)
		ctx=$ROOT
		# Explicit even though it is the default: buildah picks the stages to
		# skip before applying ARG defaults, and would skip "build".
		args+=(--build-arg BINARY_SOURCE=build)
		[[ -n ${RESPGUARD_BASE_IMAGE:-} ]] && args+=(--build-arg "BASE_IMAGE=$RESPGUARD_BASE_IMAGE")
		[[ -n ${RESPGUARD_GO_IMAGE:-} ]] && args+=(--build-arg "GO_IMAGE=$RESPGUARD_GO_IMAGE")
		;;
	*) die "RESPGUARD_IMAGE_MODE must be prebuilt or build, got $MODE" ;;
	esac

	log "building $TAG with $engine (mode $MODE)"
	case $engine in
	docker) docker build -f "$ROOT/deploy/Dockerfile" "${args[@]}" -t "$TAG" "$ctx" ;;
	buildah)
		# shellcheck disable=SC2046 # buildah_cmd is a word list on purpose
		$(buildah_cmd) build --isolation chroot --layers=false \
			-f "$ROOT/deploy/Dockerfile" "${args[@]}" -t "$TAG" "$ctx" >&2
		;;
	*) die "RESPGUARD_IMAGE_ENGINE must be docker or buildah, got $engine" ;;
	esac
	log "built $TAG; run it with, for example:"
	log "  $([[ $engine == docker ]] && echo "docker run --rm -p 6380:6380 -e RESPGUARD_UPSTREAM_ADDRESS=redis:6379 $TAG" ||
		echo "$(buildah_cmd) from --name respguard $TAG && $(buildah_cmd) run --isolation chroot --network host respguard -- /usr/local/bin/respguard --config /etc/respguard/respguard.yaml")"
}

main "$@"
