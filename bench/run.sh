#!/usr/bin/env bash
# Comparative benchmark of orproxy (with and without its usage ledger) against
# a direct connection, nginx and, optionally, a naive Go ReverseProxy, all in
# front of the same fast upstream stub on loopback. The small-JSON rows are
# driven by wrk, the SSE and open-stream rows by bench/cmd/load. Prints the machine, then one markdown table (bench/README.md says
# how to read it). Run it as `make bench`.
#
# The targets run interleaved (round 1: A B C D, round 2: B C D A, …) so that
# drift of a shared machine hits them alike; the table shows the medians.
# Every knob is an environment variable:
set -euo pipefail

ROUNDS=${BENCH_ROUNDS:-3}                         # rounds over all targets
TARGETS=${BENCH_TARGETS:-"direct orproxy orproxy_noledger nginx orproxy_h2 nginx_tls"}
                                                  # orproxy_h2: upstream over HTTPS and HTTP/2, as OpenRouter is reached;
                                                  # nginx_tls: nginx to the same HTTPS upstream, HTTP/1.1 with keepalive;
                                                  # also: naive (a bare Go ReverseProxy),
                                                  # floor (the same with orproxy's transport settings on one thread: net/http's own cost),
                                                  # orproxy_info (log.level info), orproxy_p2 (GOMAXPROCS=2, Go's default here)
JSON_SECONDS=${BENCH_JSON_SECONDS:-3}             # per small-JSON run (c=1 and c=64)
SSE_SECONDS=${BENCH_SSE_SECONDS:-3}               # SSE latency run: start streams for this long
SSE_CONC=${BENCH_SSE_CONC:-16}                    # concurrent streams in the SSE latency run
SSE_EVENTS=${BENCH_SSE_EVENTS:-25}                # events per stream
SSE_INTERVAL=${BENCH_SSE_INTERVAL:-20ms}          # between events
STREAMS=${BENCH_STREAMS:-1000}                    # streams held open at once
HOLD_EVENTS=${BENCH_HOLD_EVENTS:-10}              # events per held stream
HOLD_INTERVAL=${BENCH_HOLD_INTERVAL:-1s}          # between them
PATCH=${BENCH_PATCH:-1}                           # 0 skips the body patch measurements
OUT_DIR=${BENCH_OUT_DIR:-}                        # if set, raw results and the table are kept there
PPROF_PORT=${BENCH_PPROF_PORT:-}                  # if set, orproxy is built with -tags benchpprof and serves pprof on 127.0.0.1:PORT

cd "$(dirname "$0")/.."
ROOT=$(pwd)
GO=${GO:-go}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/orproxy-bench.XXXXXX")
BIN=$WORK/bin
RESULTS=$WORK/results.jsonl
DUMMY_KEY=sk-or-v1-0000000000000000000000000000000000000000000000000000000000000000
PIDS=()

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME CMD… runs CMD in the background; its pid is in $STARTED.
start() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	STARTED=$!
	PIDS+=("$STARTED")
}

# fg CMD… runs CMD to its end. Bash runs a trap only once the foreground
# command is done, but it interrupts a wait at once: so Ctrl-C or a TERM
# stops the run now, and the cleanup ends CMD with the rest.
fg() {
	"$@" &
	local pid=$! rc=0
	PIDS+=("$pid")
	wait "$pid" || rc=$?
	forget "$pid"
	return "$rc"
}

# forget PID drops a finished process from the cleanup list.
forget() {
	local kept=() i
	for i in "${PIDS[@]}"; do
		[ "$i" = "$1" ] || kept+=("$i")
	done
	PIDS=("${kept[@]}")
}

# stop PID ends a process this script started and waits for it.
stop() {
	local pid=$1 i
	kill "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	forget "$pid"
}

# ensure_wrk installs Debian's wrk when it is missing; without it the JSON
# rows fall back to bench/cmd/load, which shares the cores it measures.
ensure_wrk() {
	command -v wrk >/dev/null && return 0
	local sudo=""
	[ "$(id -u)" != 0 ] && { command -v sudo >/dev/null || return 1; sudo="sudo"; }
	log "installing wrk from Debian"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q wrk >&2 ||
		{ $sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q wrk >&2; }
	command -v wrk >/dev/null
}

ensure_nginx() {
	NGINX=$(command -v nginx || true)
	[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
	[ -n "$NGINX" ] && return 0
	local sudo=""
	if [ "$(id -u)" != 0 ]; then
		if ! command -v sudo >/dev/null; then
			log "nginx is not installed and there is neither root nor sudo: skipping nginx"
			return 1
		fi
		sudo="sudo"
	fi
	log "installing nginx from Debian"
	# Debian starts a freshly installed service; a policy-rc.d that says no
	# keeps it from listening on port 80. Leave an existing one alone.
	local policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
	fi
	if ! DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nginx >&2; then
		$sudo apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q nginx >&2
	fi
	[ -n "$policy" ] && $sudo rm -f "$policy"
	NGINX=$(command -v nginx || echo /usr/sbin/nginx)
	[ -x "$NGINX" ]
}

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
mkdir -p "$BIN"

log "building"
# Without cgo, as the released binaries are built (.goreleaser.yaml): a cgo
# build links the C library in, which is 2–3 MiB more RSS at idle.
export CGO_ENABLED=0
"$GO" build -trimpath -ldflags '-s -w' -o "$BIN/" ./bench/cmd/stub ./bench/cmd/load ./bench/cmd/naive ./bench/cmd/report ./bench/cmd/patchbench
if [ -n "$PPROF_PORT" ]; then
	"$GO" build -trimpath -tags benchpprof -o "$BIN/orproxy" ./cmd/orproxy
else
	"$GO" build -trimpath -ldflags '-s -w' -o "$BIN/orproxy" ./cmd/orproxy
fi
LOAD=$BIN/load
JSON_MODE=wrk
if ! ensure_wrk; then
	log "wrk is not installed and cannot be: the JSON rows use bench/cmd/load, which hides part of the gap"
	JSON_MODE=json
fi

case " $TARGETS " in *" nginx "* | *" nginx_tls "*)
	if ! ensure_nginx; then TARGETS=$(echo " $TARGETS " | sed -e 's/ nginx / /' -e 's/ nginx_tls / /'); fi
esac

read -r STUB_PORT ORPROXY_PORT NGINX_PORT NAIVE_PORT TLS_STUB_PORT NGINX_TLS_PORT <<<"$("$LOAD" freeport -n 6)"
STUB=http://127.0.0.1:$STUB_PORT

# orproxy: a loopback listener, the stub upstream, a dummy manual key.
mkdir -m 700 "$WORK/orproxy"
printf '{"source":"manual","openrouter_api_key":"%s"}\n' "$DUMMY_KEY" >"$WORK/orproxy/credentials.json"
chmod 600 "$WORK/orproxy/credentials.json"
orproxy_config() {
	local upstream=$STUB/api/v1 level=$1 ledger=true
	[ "$1" = h2 ] && upstream=https://127.0.0.1:$TLS_STUB_PORT/api/v1 level=warn
	[ "$1" = noledger ] && level=warn ledger=false
	cat >"$WORK/orproxy/config-$1.yaml" <<EOF
listen: 127.0.0.1:$ORPROXY_PORT
upstream: $upstream
credentials:
  file: $WORK/orproxy/credentials.json
  validate_on_start: false
web_search:
  enabled: true
usage:
  enabled: $ledger
  file: $WORK/orproxy/usage-$1.db
log:
  level: $level
  format: json
EOF
}
orproxy_config warn
orproxy_config info
orproxy_config h2
orproxy_config noledger

# nginx: a static-key reverse proxy, as tuned as nginx is usually run for SSE.
mkdir -p "$WORK/nginx/tmp"
nginx_user=""
[ "$(id -u)" = 0 ] && nginx_user="user $(id -un);"
cat >"$WORK/nginx/nginx.conf" <<EOF
$nginx_user
worker_processes auto;
worker_rlimit_nofile 16384;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/tmp/body;
  proxy_temp_path $WORK/nginx/tmp/proxy;
  fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
  uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
  scgi_temp_path $WORK/nginx/tmp/scgi;
  keepalive_requests 1000000;
  upstream stub {
    server 127.0.0.1:$STUB_PORT;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT backlog=4096;
    location / {
      proxy_pass http://stub;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $DUMMY_KEY";
      proxy_buffering off;
      proxy_read_timeout 300s;
    }
  }
  # nginx_tls: the same to the HTTPS stub, as nginx would reach OpenRouter.
  upstream stub_tls {
    server 127.0.0.1:$TLS_STUB_PORT;
    keepalive 256;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$NGINX_TLS_PORT backlog=4096;
    location / {
      proxy_pass https://stub_tls;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "Bearer $DUMMY_KEY";
      proxy_buffering off;
      proxy_read_timeout 300s;
      proxy_ssl_session_reuse on;
      proxy_ssl_verify off;
    }
  }
}
EOF

start stub "$BIN/stub" -addr "127.0.0.1:$STUB_PORT"
STUB_PID=$STARTED
"$LOAD" wait -url "$STUB/" -timeout 10s
TLS_STUB_PID=""
case " $TARGETS " in *" orproxy_h2 "* | *" nginx_tls "*)
	start stub-tls "$BIN/stub" -addr "127.0.0.1:$TLS_STUB_PORT" -tls-cert "$WORK/stub-cert.pem"
	TLS_STUB_PID=$STARTED
	for i in $(seq 1 100); do [ -s "$WORK/stub-cert.pem" ] && break; sleep 0.05; done
esac

# start_target NAME: starts it (not for direct); sets TARGET_URL, TARGET_PID, PID_FLAGS.
start_target() {
	TARGET_PID=""
	PID_FLAGS=()
	case $1 in
	direct)
		TARGET_URL=$STUB
		return
		;;
	orproxy | orproxy_info | orproxy_p2 | orproxy_h2 | orproxy_noledger)
		local config=warn procs=${GOMAXPROCS:-} certs=${SSL_CERT_FILE:-}
		[ "$1" = orproxy_info ] && config=info
		[ "$1" = orproxy_noledger ] && config=noledger
		[ "$1" = orproxy_p2 ] && procs=2
		[ "$1" = orproxy_h2 ] && config=h2 certs=$WORK/stub-cert.pem
		start "$1" env ${procs:+GOMAXPROCS=$procs} ${certs:+SSL_CERT_FILE=$certs} ${PPROF_PORT:+ORPROXY_PPROF_ADDR=127.0.0.1:$PPROF_PORT} \
			"$BIN/orproxy" serve --config "$WORK/orproxy/config-$config.yaml"
		TARGET_URL=http://127.0.0.1:$ORPROXY_PORT
		"$LOAD" wait -url "$TARGET_URL/healthz" -timeout 10s
		;;
	nginx | nginx_tls)
		start "$1" "$NGINX" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
		TARGET_URL=http://127.0.0.1:$NGINX_PORT
		[ "$1" = nginx_tls ] && TARGET_URL=http://127.0.0.1:$NGINX_TLS_PORT
		PID_FLAGS=(-children)
		"$LOAD" wait -url "$TARGET_URL/" -timeout 10s
		;;
	naive | floor)
		local tuned=()
		[ "$1" = floor ] && tuned=(-tuned)
		start "$1" "$BIN/naive" -addr "127.0.0.1:$NAIVE_PORT" -upstream "$STUB" -key "$DUMMY_KEY" "${tuned[@]}"
		TARGET_URL=http://127.0.0.1:$NAIVE_PORT
		"$LOAD" wait -url "$TARGET_URL/" -timeout 10s
		;;
	*)
		echo "unknown target $1" >&2
		exit 2
		;;
	esac
	TARGET_PID=$STARTED
	PID_FLAGS+=(-pid "$TARGET_PID")
}

measure() {
	local t=$1 round=$2 u
	start_target "$t"
	u=$TARGET_URL/api/v1/chat/completions
	local common=(-url "$u" -target "$t" -round "$round" "${PID_FLAGS[@]}")
	log "round $round: $t (load $(cut -d' ' -f1-3 /proc/loadavg))"
	fg "$LOAD" hold "${common[@]}" -n "$STREAMS" -events "$HOLD_EVENTS" -interval "$HOLD_INTERVAL" >>"$RESULTS"
	fg "$LOAD" "$JSON_MODE" "${common[@]}" -c 1 -d "${JSON_SECONDS}s" >>"$RESULTS"
	fg "$LOAD" "$JSON_MODE" "${common[@]}" -c 64 -d "${JSON_SECONDS}s" >>"$RESULTS"
	fg "$LOAD" sse "${common[@]}" -c "$SSE_CONC" -d "${SSE_SECONDS}s" -events "$SSE_EVENTS" -interval "$SSE_INTERVAL" >>"$RESULTS"
	[ -n "$TARGET_PID" ] && stop "$TARGET_PID"
	return 0
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
read -r -a targets <<<"$TARGETS"
for round in $(seq 1 "$ROUNDS"); do
	n=${#targets[@]}
	for i in $(seq 0 $((n - 1))); do
		measure "${targets[$(((i + round - 1) % n))]}" "$round"
	done
done
stop "$STUB_PID"
[ -n "$TLS_STUB_PID" ] && stop "$TLS_STUB_PID"

GOBENCH=$WORK/websearch-bench.txt
if [ "$PATCH" != 0 ]; then
	# The package's own benchmark is compiled once; then every round times
	# websearch, encoding/json, Node and the package benchmark in turn.
	benches=$("$GO" test -list '^BenchmarkPatch$' ./websearch/ 2>/dev/null || true)
	if grep -qx BenchmarkPatch <<<"$benches"; then
		"$GO" test -c -o "$BIN/websearch.test" ./websearch/
	fi
	: >"$GOBENCH"
	for round in $(seq 1 "$ROUNDS"); do
		log "round $round: body patch"
		fg "$BIN/patchbench" -out "$WORK" >>"$RESULTS"
		for f in "$WORK"/body-*.json; do
			name=$(basename "$f" .json)
			fg node bench/node/patch.mjs "$f" "${name#body-}" >>"$RESULTS"
		done
		if [ -x "$BIN/websearch.test" ]; then
			fg "$BIN/websearch.test" -test.run '^$' -test.bench '^BenchmarkPatch$' -test.benchmem -test.benchtime 1s >>"$GOBENCH"
		fi
	done
fi
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

{
	echo "Machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), Linux $(uname -r), $("$GO" version | cut -d' ' -f3), nginx $( { [ -x "${NGINX:-}" ] && "$NGINX" -v 2>&1 | sed 's|.*nginx/||'; } || echo none), $( { wrk -v 2>&1 || true; } | head -1 | cut -d' ' -f1-2), Node $(node --version 2>/dev/null || echo none)"
	echo "Load average at start $LOAD_START, at end $LOAD_END. Commit $(git rev-parse --short=12 HEAD)$(git diff --quiet HEAD -- . 2>/dev/null || echo ' (dirty)')."
	echo "Settings: $ROUNDS rounds; JSON ${JSON_SECONDS}s per run; SSE $SSE_CONC streams × $SSE_EVENTS events every $SSE_INTERVAL for ${SSE_SECONDS}s; $STREAMS streams × $HOLD_EVENTS events every $HOLD_INTERVAL held open."
	echo
	"$BIN/report" -results "$RESULTS" -gobench "$GOBENCH"
} >"$WORK/table.md"
cat "$WORK/table.md"
if [ -n "$OUT_DIR" ]; then
	mkdir -p "$OUT_DIR"
	cp "$RESULTS" "$WORK/table.md" "$OUT_DIR/"
	[ -f "$GOBENCH" ] && cp "$GOBENCH" "$OUT_DIR/"
	log "results kept in $OUT_DIR"
fi
