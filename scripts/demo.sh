#!/usr/bin/env bash
# make demo: the whole product on this machine, with no network. It starts the
# fake OpenRouter and the fake broker, logs in through the broker flow (this
# script plays the browser), streams a chat answer through orproxy with curl,
# revokes the key behind orproxy's back and shows the next request succeed
# after one rotation. Everything it starts is stopped at the end; nothing of
# your own orproxy config or credentials is touched.
set -euo pipefail

BIN=${BIN:-bin}
work=$(mktemp -d "${TMPDIR:-/tmp}/orproxy-demo.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

# Bold headings on a terminal; plain text in a log or a pipe.
if [ -t 1 ]; then
  say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
  say() { printf '\n== %s\n' "$*"; }
fi

# first_line FILE PATTERN: wait (up to 20 s) for a line matching PATTERN.
first_line() {
  for _ in $(seq 200); do
    if line=$(grep -m1 -E "$2" "$1" 2>/dev/null); then printf '%s\n' "$line"; return 0; fi
    sleep 0.1
  done
  echo "demo: timed out waiting for $2 in $1:" >&2; cat "$1" >&2; return 1
}

say "Starting the fake OpenRouter and the fake broker on free loopback ports"
"$BIN/orproxy-fake" openrouter --listen 127.0.0.1:0 --chunk-delay 150ms >"$work/openrouter.log" 2>&1 &
pids+=($!)
upstream=$(first_line "$work/openrouter.log" '^http://')
"$BIN/orproxy-fake" broker --listen 127.0.0.1:0 --openrouter-admin "$upstream" >"$work/broker.log" 2>&1 &
pids+=($!)
broker=$(first_line "$work/broker.log" '^http://')
echo "fake OpenRouter: $upstream"
echo "fake broker:     $broker"

export ORPROXY_CONFIG="$work/config.yaml"
cat >"$ORPROXY_CONFIG" <<YAML
listen: 127.0.0.1:0
upstream: $upstream
broker: {url: $broker}
credentials: {file: $work/credentials.json}
usage: {file: $work/usage.db}
login: {open_browser: false}
log: {format: json}
YAML

say "orproxy login (this script opens the printed URL, as your browser would)"
"$BIN/orproxy" login >"$work/login.out" 2>"$work/login.err" &
login_pid=$!
login_url=$(first_line "$work/login.out" '^https?://')
echo "login URL: $login_url"
curl -sSfL --max-time 10 -o /dev/null "$login_url"
wait "$login_pid"
cat "$work/login.out" | grep -v '^http'
"$BIN/orproxy" status | sed -n '1,8p'

say "orproxy serve"
"$BIN/orproxy" serve >"$work/serve.log" 2>&1 &
pids+=($!)
listen=$(first_line "$work/serve.log" '"msg":"orproxy serving"' | sed -E 's/.*"listen":"([^"]*)".*/\1/')
echo "serving on $listen"

chat() {
  curl -sS -N --max-time 30 "$listen/chat/completions" -H 'Content-Type: application/json' \
    -H 'Authorization: Bearer anything' \
    -d '{"model":"openai/gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}'
}

say "A streamed chat answer through orproxy (events arrive one by one)"
chat | tee "$work/chat1.txt" | grep -E '^(data|:)' | cut -c1-110

say "The broker revokes the key behind orproxy's back"
revoked=$(curl -sS --max-time 10 -X POST "$broker/_fake/revoke-current-key" |
  sed -E 's/.*"key":"(sk-or-v1-)[^"]*([^"]{4})".*/\1…\2/')
echo "revoked $revoked"

say "The next request still succeeds: orproxy rotated the key once and retried"
chat | tee "$work/chat2.txt" | grep -c '^data: {' | xargs echo "data events received:"
grep -q 'data: \[DONE\]' "$work/chat2.txt" || { echo "demo: the second chat did not finish" >&2; exit 1; }

say "/status"
curl -sS --max-time 10 "${listen%/api/v1}/status" | grep -E '"(key|rotation_count|last_rotation_at|patched|total)"'

say "Done; stopping everything the demo started"
