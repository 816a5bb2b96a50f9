#!/usr/bin/env bash
# Regenerates link/toolgate.order, the order in which the release link lays out functions.
#
# Why: an idle gateway's memory is mostly machine code, and the kernel maps code in 64 KiB
# windows (fault-around). Left in the compiler's order, the ~3 MB of functions that start-up
# runs are spread over nearly every window of the 13 MB `.text`, so idle RSS is ~15 MiB;
# packed together first, it is ~10 MiB (BENCHMARKS.md, session 8). The request path comes
# right after, so a loaded gateway's code is dense too.
#
# How: runs a release binary under valgrind's callgrind (which lists every function that
# ran) three times: the embedded default starting up and idling; a config with a stdio
# and an HTTP upstream starting up and idling; the same config serving a round of calls
# (read-only, side effect, replay, refusal, a session client, the admin endpoints). Start-up
# functions go first, then the ones only the calls ran, each group sorted by name.
#
# When: after a dependency, toolchain or large code change. A stale file is harmless (the
# linker skips names it does not find; build.rs passes --no-warn-symbol-ordering); only the
# idle RSS that `toolgate bench` reports creeps back up.
#
# The names carry the hashes rustc derives from the crate's metadata (version, dependencies,
# toolchain), so such a change makes most of them stale at once; `.ci/run` checks the list
# against a release build with `--check`, which fails when fewer than 80 % of it are found
# or when the link did not use it (the binary's first functions by address are not listed).
#
# Usage: cargo build --release && link/order.sh [target/release/toolgate]
#        link/order.sh --check [target/release/toolgate]
# Needs: valgrind, curl, nm (binutils); --check needs nm only. Takes about 30 s.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
check=
if [ "${1:-}" = --check ]; then
    check=1
    shift
fi
bin=$(realpath "${1:-$here/../target/release/toolgate}")
out="$here/toolgate.order"

if [ -n "$check" ]; then
    # Two questions: are the listed names still the binary's (the list is not stale), and
    # did the link use the list (the binary's lowest text addresses hold listed functions)?
    listed=$(grep -v '^#' "$out" | sort -u || true)
    total=$(grep -c . <<<"$listed" || true)
    [ "$total" -gt 0 ] || { echo "order.sh: $out lists no functions" >&2; exit 1; }
    by_address=$(nm -n --defined-only "$bin" 2>/dev/null | awk '$2 ~ /^[tTwW]$/ {print $3}' || true)
    [ -n "$by_address" ] || { echo "order.sh: $bin has no symbol table (stripped?)" >&2; exit 1; }
    found=$(sort -u <<<"$by_address" | comm -12 - <(echo "$listed") | wc -l)
    first=$(head -n "$found" <<<"$by_address" | sort -u | comm -12 - <(echo "$listed") | wc -l)
    echo "order.sh: $found of the $total functions in link/toolgate.order are in $bin;" \
        "$first of its first $found functions by address are listed ones"
    if [ $((found * 100)) -lt $((total * 80)) ]; then
        echo "order.sh: the list is stale (dependencies, version or toolchain changed), so idle" \
            "RSS is back to ~15 MiB; run link/order.sh on that binary, rebuild, commit the list" >&2
        exit 1
    fi
    if [ $((first * 100)) -lt $((found * 80)) ]; then
        echo "order.sh: the link did not lay functions out as listed: build.rs passes the list" \
            "only for release builds on x86_64-unknown-linux-gnu with LLD (see its conditions)" >&2
        exit 1
    fi
    exit 0
fi
for tool in valgrind curl nm; do
    command -v "$tool" >/dev/null || { echo "order.sh: $tool is needed" >&2; exit 69; }
done
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

export TOOLGATE_DEMO_TOKEN=order-demo-token TOOLGATE_ADMIN_TOKEN=order-admin-token
export ORDER_TENANT_TOKEN=order-tenant-token

# wait_for FILE TEXT COUNT: until FILE has COUNT lines containing TEXT (valgrind is slow).
wait_for() {
    for _ in $(seq 1 1200); do
        [ "$(grep -c -- "$2" "$1" 2>/dev/null || true)" -ge "$3" ] && return 0
        sleep 0.1
    done
    echo "order.sh: timed out waiting for '$2' in $1:" >&2
    cat "$1" >&2
    exit 70
}

# field FILE EVENT KEY: a string field of the first JSON log line with that message.
field() {
    grep -m1 -- "\"message\":\"$2\"" "$1" | grep -o "\"$3\":\"[^\"]*\"" | cut -d'"' -f4
}

# The HTTP upstream runs untraced: only the gateway's code is being ordered.
"$bin" --log-format json demo-upstream --http 127.0.0.1:0 2>"$work/upstream.log" &
pids+=($!)
wait_for "$work/upstream.log" "demo upstream listening" 1
upstream_url=$(field "$work/upstream.log" "demo upstream listening" url)

cat >"$work/gateway.yml" <<EOF
version: 1
listen: {mcp: 127.0.0.1:0, admin: 127.0.0.1:0}
data_dir: $work/data-config
admin_token_env: TOOLGATE_ADMIN_TOKEN
tenants:
  - id: acme
    token_env: ORDER_TENANT_TOKEN
    accounts: [{id: acme-1, platform: demo}]
upstreams:
  - name: demo
    command: [toolgate, demo-upstream]
  - name: web
    url: $upstream_url
    timeout: 10s
tools:
  demo__publish_post: {side_effect: true, action: publish, lane: api, platform: demo,
                       proof: {post_id: /id, url: /url, screenshot: /proof/screenshot_url}}
  demo__send_dm: {side_effect: true, action: dm, lane: api, platform: demo, target_arg: to}
  demo__get_post: {side_effect: false}
  web__get_post: {side_effect: false}
EOF

# traced NAME ARGS...: starts the gateway under callgrind; its log is $work/NAME.log.
traced() {
    local name=$1
    shift
    (cd "$work" && exec valgrind --tool=callgrind --demangle=no \
        --callgrind-out-file="$work/$name.cg" "$bin" --log-format json serve \
        --mcp-addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 "$@" 2>"$work/$name.log" >/dev/null) &
    gateway=$!
    pids+=("$gateway")
}

# stop: SIGTERM (the graceful path is part of every run), then wait for callgrind's dump.
stop() {
    kill -TERM "$gateway" 2>/dev/null || true
    for _ in $(seq 1 600); do
        kill -0 "$gateway" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$gateway" 2>/dev/null; then
        kill -KILL "$gateway" 2>/dev/null || true
        echo "order.sh: the gateway did not stop within 60 s of SIGTERM" >&2
        exit 70
    fi
    wait "$gateway" || true
}

echo "order.sh: 1/3 the embedded default, start-up and idle" >&2
traced default --data-dir "$work/data-default"
wait_for "$work/default.log" "upstream connected" 1
sleep 5
stop

echo "order.sh: 2/3 two upstreams, start-up and idle" >&2
traced idle --config "$work/gateway.yml"
wait_for "$work/idle.log" "upstream connected" 2
sleep 5
stop

echo "order.sh: 3/3 two upstreams, a round of calls" >&2
rm -rf "$work/data-config"
traced calls --config "$work/gateway.yml"
wait_for "$work/calls.log" "upstream connected" 2
mcp="http://$(field "$work/calls.log" listening mcp)/mcp"
admin="http://$(field "$work/calls.log" listening admin)"
hdr=(-H "Authorization: Bearer $ORDER_TENANT_TOKEN" -H 'Content-Type: application/json'
    -H 'Accept: application/json, text/event-stream')
stateless=(-H 'MCP-Protocol-Version: 2026-07-28')
smeta='"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientInfo":{"name":"order","version":"1"},"io.modelcontextprotocol/clientCapabilities":{}'
call() { # call TOOL ARGS META [ok]: one stateless tools/call; with ok, it must succeed
    local answer
    answer=$(curl -s "$mcp" "${hdr[@]}" "${stateless[@]}" -H 'Mcp-Method: tools/call' -H "Mcp-Name: $1" \
        -d "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$2,\"_meta\":{$smeta$3}}}")
    if [ "${4:-}" = ok ] && ! grep -q '"result"' <<<"$answer"; then
        echo "order.sh: $1 failed, so the list would miss the request path: $answer" >&2
        exit 70
    fi
}
for round in 1 2 3; do
    call web__get_post '{"post_id":"p1"}' '' ok
    call demo__get_post '{"post_id":"p1"}' '' ok
    call demo__publish_post '{"account_id":"acme-1","text":"hi"}' ",\"idempotency_key\":\"order-$round\"" ok
    call demo__publish_post '{"account_id":"acme-1","text":"hi"}' ",\"idempotency_key\":\"order-$round\"" ok
    call web__publish_post '{"account_id":"acme-1","text":"hi"}' ",\"idempotency_key\":\"order-web-$round\"" ok
    call demo__send_dm '{"account_id":"acme-1","to":"@someone","text":"hi"}' ",\"idempotency_key\":\"order-dm-$round\"" ok
    call demo__publish_post '{"account_id":"acme-1","text":"hi"}' ''
    call demo__nope '{}' ''
    curl -s "$mcp" "${hdr[@]}" "${stateless[@]}" -H 'Mcp-Method: tools/list' \
        -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\",\"params\":{\"_meta\":{$smeta}}}" >/dev/null
    # A session client: initialize, initialized, a call on the session, close.
    sid=$(curl -s -D - -o /dev/null "$mcp" "${hdr[@]}" -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"order","version":"1"}}}' |
        tr -d '\r' | grep -i '^mcp-session-id:' | cut -d' ' -f2)
    sess=(-H "Mcp-Session-Id: $sid" -H 'MCP-Protocol-Version: 2025-11-25')
    curl -s "$mcp" "${hdr[@]}" "${sess[@]}" -d '{"jsonrpc":"2.0","method":"notifications/initialized"}' >/dev/null
    curl -s "$mcp" "${hdr[@]}" "${sess[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"web__get_post","arguments":{"post_id":"p1"}}}' >/dev/null
    curl -s "$mcp" "${hdr[@]}" "${sess[@]}" -d "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"demo__publish_post\",\"arguments\":{\"account_id\":\"acme-1\",\"text\":\"s\"},\"_meta\":{\"idempotency_key\":\"order-s-$round\"}}}" >/dev/null
    curl -s -X DELETE "$mcp" "${hdr[@]}" "${sess[@]}" >/dev/null
    curl -s "$mcp" -d '{}' >/dev/null # no token: 401
    for path in healthz readyz status metrics; do
        curl -s "$admin/$path" -H "Authorization: Bearer $TOOLGATE_ADMIN_TOKEN" >/dev/null
    done
done
sleep 3
stop

# The names that ran, in the binary's own (mangled) spelling, kept to its text symbols.
ran() { sed -n 's/^c\{0,1\}fn=([0-9]*) //p' "$work/$1.cg" | sort -u; }
nm --defined-only "$bin" | awk '$2 ~ /^[tTwW]$/ {print $3}' | sort -u >"$work/text"
sort -u <(ran default) <(ran idle) | comm -12 - "$work/text" >"$work/startup"
ran calls | comm -12 - "$work/text" | comm -23 - "$work/startup" >"$work/hot"
{
    echo "# Function layout of the release link (lld --symbol-ordering-file), made by link/order.sh"
    echo "# from $(basename "$bin") $("$bin" --version | cut -d' ' -f2) on $(date -u +%F); see that script for why and when."
    echo "# $(wc -l <"$work/startup") start-up functions, then $(wc -l <"$work/hot") more that serving calls ran."
    cat "$work/startup" "$work/hot"
} >"$out"
echo "order.sh: wrote $out ($(wc -l <"$work/startup") start-up + $(wc -l <"$work/hot") request-path functions)" >&2
