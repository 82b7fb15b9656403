#!/usr/bin/env bash
# Load benchmark of the Switchyard gateway against the shared kit's yardsticks, in one run:
#   direct   wrk → nginx mock                       (the floor)
#   proxy    wrk → nginx proxy hop → nginx mock     (the bar: a minimal, well-tuned proxy; the
#                                                    kit runs it in the mock's own process)
#   proxy2   wrk → the same hop in its own nginx → nginx mock
#                                                   (a proxy that, like the gateway, is a
#                                                    process of its own)
#   gateway  wrk → switchyard → nginx mock          (every request authenticated, routed,
#                                                    slotted and recorded)
# first non-streamed, then streamed (SSE), at each concurrency of CONCURRENCY_LIST. Prints every
# WRKSUMMARY line, the gateway's /status mailbox figures and RSS after each mode, then one table
# with rps, p50/p99 and the gateway/direct, gateway/proxy and gateway/proxy2 ratios. See
# bench/README.md.
#
#   bench/run.sh
#
# Environment:
#   SECONDS_PER_RUN   length of each measured wrk run (default 10; each run has a 2 s warm-up)
#   CONCURRENCY_LIST  wrk connections, space-separated (default "1 64")
#   MODES             "plain stream" (default), or only one of them
#   GATEWAY_WORKERS   gateway HTTP workers (default 0 = one per core)
#   GATEWAY_STATE     the gateway's shared state: memory (default) or redis
#   GATEWAY_REDIS_URL Redis for GATEWAY_STATE=redis (default redis://127.0.0.1:6379)
#   BENCH_KIT         the shared kit (default: ../../shared/bench relative to this script)
#   SWITCHYARD_BIN    use this gateway binary instead of building target/release/switchyard
#   MOCK_PORT, PROXY_PORT, BENCH_RUN   passed to the kit's upstream.sh
#   PROXY2_PORT       port of the hop in its own process (default 18082)
#   KEEP_WORK=1       keep the temporary directory (gateway data, logs, /status JSON)
#
# Needs nginx, wrk and curl (Debian: apt-get install -y nginx wrk curl); jq is optional (for a
# readable /status summary). Installs nothing. Loopback only. Everything it starts is stopped on
# exit. Duration: about 16 × (SECONDS_PER_RUN + 2) s plus the release build.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

kit_dir=${BENCH_KIT:-$(dirname "$0")/../../shared/bench}
if ! kit=$(cd "$kit_dir" 2>/dev/null && pwd) || [ ! -x "$kit/load.sh" ] || [ ! -x "$kit/upstream.sh" ]; then
  echo "bench kit not found at $kit_dir (load.sh, upstream.sh); set BENCH_KIT" >&2
  exit 1
fi

SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
CONCURRENCY_LIST=${CONCURRENCY_LIST:-"1 64"}
MODES=${MODES:-"plain stream"}
GATEWAY_WORKERS=${GATEWAY_WORKERS:-0}
GATEWAY_STATE=${GATEWAY_STATE:-memory}
GATEWAY_REDIS_URL=${GATEWAY_REDIS_URL:-redis://127.0.0.1:6379}
case "$GATEWAY_STATE" in memory | redis) ;; *) echo "GATEWAY_STATE: '$GATEWAY_STATE' is neither memory nor redis" >&2; exit 2;; esac
case "$SECONDS_PER_RUN" in '' | *[!0-9]* | 0) echo "SECONDS_PER_RUN must be a positive integer" >&2; exit 2;; esac
for conc in $CONCURRENCY_LIST; do
  case "$conc" in '' | *[!0-9]* | 0) echo "CONCURRENCY_LIST: '$conc' is not a positive integer" >&2; exit 2;; esac
done
for mode in $MODES; do
  case "$mode" in plain | stream) ;; *) echo "MODES: '$mode' is neither plain nor stream" >&2; exit 2;; esac
done

# Tools. nginx lives in /usr/sbin, which is not on every user's PATH.
PATH=$PATH:/usr/sbin:/sbin
missing=()
for tool in nginx wrk curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} — install with: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
have_jq=0; command -v jq >/dev/null && have_jq=1

# The gateway must see only the settings below: no config file, database URL or log filter
# from the caller's shell.
for var in $(compgen -e); do
  case "$var" in SWITCHYARD_BIN) ;; SWITCHYARD_* | RUST_LOG) unset "$var";; esac
done

export MOCK_PORT=${MOCK_PORT:-18080}
export PROXY_PORT=${PROXY_PORT:-18081}
export BENCH_RUN=${BENCH_RUN:-${TMPDIR:-/tmp}/switchyard-bench}
mock=http://127.0.0.1:$MOCK_PORT
proxy=http://127.0.0.1:$PROXY_PORT
PROXY2_PORT=${PROXY2_PORT:-18082}
proxy2=http://127.0.0.1:$PROXY2_PORT
path=/v1/chat/completions

work=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench-run.XXXXXX")
admin_token=bench-admin-$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
kit_started=0
proxy2_conf=""
gateway_pid=""
gateway_url=""
gateway_key=""

say() { echo "== $*"; }
die() { echo "run.sh: $*" >&2; exit 1; }

stop_gateway() {
  [ -n "$gateway_pid" ] || return 0
  if kill -0 "$gateway_pid" 2>/dev/null; then
    kill -TERM "$gateway_pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$gateway_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$gateway_pid" 2>/dev/null || true
  fi
  wait "$gateway_pid" 2>/dev/null || true
  gateway_pid=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop_gateway
  [ -z "$proxy2_conf" ] || nginx -c "$proxy2_conf" -p "$work/proxy2/" -s stop >/dev/null 2>&1 || true
  if [ "$kit_started" = 1 ]; then "$kit/upstream.sh" stop >/dev/null 2>&1 || true; fi
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "run.sh: kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. The yardsticks. A kit someone else already runs is reused and left running.
if [ "$("$kit/upstream.sh" status)" = running ]; then
  say "nginx mock and proxy already running (BENCH_RUN=$BENCH_RUN): reusing them"
else
  "$kit/upstream.sh" start >/dev/null || die "upstream.sh start failed (ports $MOCK_PORT/$PROXY_PORT busy? see $BENCH_RUN/logs)"
  kit_started=1
  say "nginx mock $mock, proxy hop $proxy"
fi

# The kit's proxy hop shares the mock's one nginx worker: its requests cross no process
# boundary that direct ones do not. The same hop in an nginx of its own crosses the two that
# every request through the gateway crosses (client → proxy → mock and back).
mkdir -p "$work/proxy2/tmp"
cat >"$work/proxy2/nginx.conf" <<CONF
worker_processes 1;
pid $work/proxy2/nginx.pid;
error_log $work/proxy2/error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
  access_log off;
  client_body_temp_path $work/proxy2/tmp/body;
  proxy_temp_path $work/proxy2/tmp/proxy;
  fastcgi_temp_path $work/proxy2/tmp/fastcgi;
  uwsgi_temp_path $work/proxy2/tmp/uwsgi;
  scgi_temp_path $work/proxy2/tmp/scgi;
  client_max_body_size 8m;
  keepalive_requests 1000000;
  tcp_nodelay on;
  upstream mock { server 127.0.0.1:$MOCK_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$PROXY2_PORT backlog=4096 reuseport;
    location / {
      proxy_pass http://mock;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
CONF
nginx -c "$work/proxy2/nginx.conf" -p "$work/proxy2/" || die "nginx for the separate proxy hop did not start (port $PROXY2_PORT busy?)"
proxy2_conf=$work/proxy2/nginx.conf
say "proxy hop in its own nginx $proxy2"

# 2. The gateway binary.
if [ -n "${SWITCHYARD_BIN:-}" ]; then
  bin=$SWITCHYARD_BIN
else
  say "building the release gateway (cargo build --release -p switchyard)"
  (cd "$repo" && cargo build --release -p switchyard) >&2
  bin=${CARGO_TARGET_DIR:-$repo/target}/release/switchyard
fi
[ -x "$bin" ] || die "no gateway binary at $bin"

# 3. A gateway per mode, on its own data dir: providers pointing at the mock (plain JSON or
# its SSE paths), one gateway key, port chosen by the kernel and read from the start-up line.
start_gateway() {
  local mode=$1 base_url=$2 dir=$work/gateway-$1
  mkdir -p "$dir"
  export SWITCHYARD__DATA_DIR=$dir
  export SWITCHYARD__SERVER__LISTEN=127.0.0.1:0
  export SWITCHYARD__SERVER__WORKERS=$GATEWAY_WORKERS
  export SWITCHYARD__STATE__BACKEND=$GATEWAY_STATE
  export SWITCHYARD__STATE__REDIS_URL=$GATEWAY_REDIS_URL
  export SWITCHYARD__SERVER__SHUTDOWN_TIMEOUT_SECS=5
  export SWITCHYARD__ADMIN__TOKEN=$admin_token
  export SWITCHYARD__LOG__LEVEL=warn
  MOCK_URL=$base_url "$bin" import "$here/providers.toml" >"$dir/import.log" 2>&1 \
    || { cat "$dir/import.log" >&2; die "switchyard import failed ($mode)"; }
  gateway_key=$("$bin" keys create --user bench --create-user --name "bench-$mode" 2>"$dir/keys.log") \
    || { cat "$dir/keys.log" >&2; die "switchyard keys create failed ($mode)"; }
  [ -n "$gateway_key" ] || die "switchyard keys create printed no key ($mode)"
  "$bin" serve >"$dir/stdout" 2>"$dir/stderr" &
  gateway_pid=$!
  gateway_url=""
  for _ in $(seq 600); do
    gateway_url=$(sed -n 's#^switchyard listening on \(http://[^ ]*\).*#\1#p' "$dir/stdout" | head -n1)
    [ -n "$gateway_url" ] && break
    kill -0 "$gateway_pid" 2>/dev/null || { cat "$dir/stderr" >&2; die "the gateway exited at start ($mode)"; }
    sleep 0.1
  done
  [ -n "$gateway_url" ] || { cat "$dir/stderr" >&2; die "the gateway did not start within 60 s ($mode)"; }
  say "gateway ($mode, upstream $base_url) on $gateway_url, pid $gateway_pid"
}

# One request through the gateway before loading it: a 401/404/503 here would otherwise be
# measured as a very fast gateway.
probe_gateway() {
  local mode=$1 body code out=$work/gateway-$1/probe
  body='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]'
  [ "$mode" = stream ] && body+=',"stream":true'
  body+='}'
  code=$(curl -sS --max-time 10 -o "$out" -w '%{http_code}' -H "Authorization: Bearer $gateway_key" \
    -H 'Content-Type: application/json' -d "$body" "$gateway_url$path") || code=000
  [ "$code" = 200 ] || { cat "$out" >&2 2>/dev/null; echo >&2; die "gateway probe answered $code ($mode)"; }
  if [ "$mode" = stream ]; then
    grep -q '\[DONE\]' "$out" || die "streamed gateway probe ended without [DONE]"
  fi
}

# The gateway's own view after the load: request counters and every actor shard's mailbox
# (depth now, high-water mark, sent/handled, worst per-message queue-wait p99), and its memory.
report_gateway() {
  local mode=$1 json=$work/gateway-$1/status.json
  say "gateway /status after the $mode runs"
  if curl -fsS --max-time 10 -H "Authorization: Bearer $admin_token" "$gateway_url/status" >"$json"; then
    if [ "$have_jq" = 1 ]; then
      jq -r '"requests total=\(.requests.total) completed=\(.requests.completed) failed=\(.requests.failed) client_gone=\(.requests.client_gone) attempts=\(.requests.attempts) failovers=\(.requests.failovers) in_flight=\(.in_flight)",
             "slots granted=\(.slots.granted) denied=\(.slots.denied) waited=\(.slots.waited) wait_timeouts=\(.slots.wait_timeouts)"' "$json"
      printf '%-16s %5s %7s %10s %10s %10s  %s\n' actor shard depth high_water sent handled "worst queue-wait p99 (message)"
      jq -r '.actors[] | [.actor, .shard, .depth, .high_water, .sent, .handled,
               ((.messages | max_by(.queue_wait.p99_us)) as $m
                | if $m == null then "-" else "\($m.queue_wait.p99_us) us (\($m.message))" end)] | @tsv' "$json" \
        | awk -F'\t' '{ printf "%-16s %5s %7s %10s %10s %10s  %s\n", $1, $2, $3, $4, $5, $6, $7 }'
    else
      cat "$json"; echo
    fi
  else
    echo "(/status unavailable)"
  fi
  awk -v pid="$gateway_pid" '/^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 }
       END { printf "gateway pid %s RSS %.1f MiB (peak %.1f MiB)\n", pid, rss / 1024, hwm / 1024 }' \
    "/proc/$gateway_pid/status" 2>/dev/null || echo "(no /proc/$gateway_pid/status)"
}

declare -A RPS P50 P99 ERRS
field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"; }

# One bounded wrk run through the kit; keeps the figures for the table.
measure() {
  local mode=$1 conc=$2 target=$3 url=$4 auth=$5 stream=0 line k
  [ "$mode" = stream ] && stream=1
  k=$mode/$conc/$target
  line=$(WRK_STREAM=$stream WRK_AUTH=$auth "$kit/load.sh" "$target-$mode" "$url" "$conc" "$SECONDS_PER_RUN") || true
  if [ -z "$line" ]; then
    echo "WRKSUMMARY label=$target-$mode (no result: wrk failed) conc=$conc"
    RPS[$k]=n/a; P50[$k]=n/a; P99[$k]=n/a; ERRS[$k]=failed
    return 0
  fi
  echo "$line"
  RPS[$k]=$(field "$line" rps)
  P50[$k]=$(field "$line" p50_ms)
  P99[$k]=$(field "$line" p99_ms)
  ERRS[$k]=$(( $(field "$line" non2xx) + $(field "$line" err_connect) + $(field "$line" err_read) \
             + $(field "$line" err_write) + $(field "$line" err_timeout) ))
}

for mode in $MODES; do
  if [ "$mode" = stream ]; then upstream_base=$mock/stream; target_path=/stream$path; else upstream_base=$mock; target_path=$path; fi
  start_gateway "$mode" "$upstream_base"
  probe_gateway "$mode"
  say "$mode runs: ${SECONDS_PER_RUN} s each, concurrency $CONCURRENCY_LIST"
  for conc in $CONCURRENCY_LIST; do
    measure "$mode" "$conc" direct "$mock$target_path" "Bearer sk-bench-1234"
    measure "$mode" "$conc" proxy "$proxy$target_path" "Bearer sk-bench-1234"
    measure "$mode" "$conc" proxy2 "$proxy2$target_path" "Bearer sk-bench-1234"
    measure "$mode" "$conc" gateway "$gateway_url$path" "Bearer $gateway_key"
  done
  report_gateway "$mode"
  stop_gateway
done

# 4. The table. Ratios are of requests per second (higher is better for the gateway); "p99
# added" is the gateway's p99 minus the direct p99. The bar (shared kit README): at c=1 under
# 0.1 ms added p99; at c=64 at least half the proxy hop's throughput.
errors=0
say "results (SECONDS_PER_RUN=$SECONDS_PER_RUN, gateway workers=$GATEWAY_WORKERS, state=$GATEWAY_STATE; compare only within this run)"
printf '%-6s %5s  %-8s %12s %9s %9s %7s\n' mode conc target rps p50_ms p99_ms errors
for mode in $MODES; do
  for conc in $CONCURRENCY_LIST; do
    for target in direct proxy proxy2 gateway; do
      k=$mode/$conc/$target
      printf '%-6s %5s  %-8s %12s %9s %9s %7s\n' "$mode" "$conc" "$target" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${ERRS[$k]}"
      [ "${ERRS[$k]}" = 0 ] || errors=1
    done
  done
done
echo
# Beside the bar, what the hop in its own process costs: its throughput next to the gateway's, and
# the p99 it adds to the direct run's itself.
printf '%-6s %5s  %10s %10s %10s %13s %13s %14s  %s\n' mode conc gw/direct gw/proxy gw/proxy2 \
  "p99+ direct" "p99+ proxy" "proxy2 p99+" bar
for mode in $MODES; do
  for conc in $CONCURRENCY_LIST; do
    awk -v mode="$mode" -v conc="$conc" \
        -v dr="${RPS[$mode/$conc/direct]}" -v pr="${RPS[$mode/$conc/proxy]}" -v gr="${RPS[$mode/$conc/gateway]}" \
        -v d99="${P99[$mode/$conc/direct]}" -v p99="${P99[$mode/$conc/proxy]}" -v g99="${P99[$mode/$conc/gateway]}" \
        -v qr="${RPS[$mode/$conc/proxy2]}" -v q99="${P99[$mode/$conc/proxy2]}" '
      function num(x) { return x ~ /^[0-9.]+$/ }
      function ratio(a, b) { return (num(a) && num(b) && b > 0) ? sprintf("%.2f", a / b) : "n/a" }
      function added(g, d) { return (num(g) && num(d)) ? sprintf("%+.3f ms", g - d) : "n/a" }
      BEGIN {
        bar = "-"
        # The direct run is the floor: a direct p99 above the proxy hop'"'"'s is an outlier of the
        # load generator or the machine. Against it "added" means nothing; the hop'"'"'s p99 (above
        # the true floor) still proves a miss, never a pass.
        if (conc == 1 && num(g99) && num(d99) && num(p99) && d99 > p99)
          bar = (g99 - p99 >= 0.1) ? "MISSED: p99 >= 0.1 ms above even the hop'"'"'s" \
                                   : "INCONCLUSIVE: direct p99 above the hop'"'"'s (outlier); run again"
        else if (conc == 1 && num(g99) && num(d99))
          bar = (g99 - d99 < 0.1) ? "ok: added p99 < 0.1 ms" : "MISSED: added p99 >= 0.1 ms"
        else if (conc == 64 && num(gr) && num(pr) && pr > 0)
          bar = (gr / pr >= 0.5) ? "ok: >= 0.5x proxy rps" : "MISSED: < 0.5x proxy rps"
        printf "%-6s %5s  %10s %10s %10s %13s %13s %14s  %s\n", mode, conc, ratio(gr, dr), ratio(gr, pr),
               ratio(gr, qr), added(g99, d99), added(g99, p99), added(q99, d99), bar
      }'
  done
done
if [ "$errors" = 1 ]; then
  echo "run.sh: some runs had errors or non-2xx answers: their figures are not comparable" >&2
  exit 1
fi
