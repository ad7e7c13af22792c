#!/usr/bin/env bash
# SMTP mx sessions, interleaved in one run: the harness's sink direct, haproxy, nginx mail,
# Concierge, and the Node.js floor (bench/lib/smtp-floor-proxy.mjs, an mx relay with backend
# connections kept and nothing else). Where Concierge stands between the floor and the peers says
# how much of its cost is Node.js and how much is Concierge.
#
#   KEEP_DAEMONS=1 PEERS="haproxy nginx" TESTS=smtp bash bench/shared-harness.sh   # once: daemons up
#   bash bench/smtp-floor.sh                                                        # ROUNDS=3 DURATION=8
#
# It starts its own Concierge (dist/, the harness's tenants.json on its own port) and floor proxy,
# and stops them at the end. Each line: sessions/s, then CPU µs per session of the target and of
# the sink behind it (the load generator: ../shared/bench/smtp-sessions.js, 32 clients).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
SHARED_BENCH=${SHARED_BENCH:-$(cd "$repo/../shared/bench" && pwd)}
export RUN_DIR=${RUN_DIR:-$here/run/shared-harness}
# env.sh gives SINK_ADDR, HAPROXY_SMTP_ADDR and NGINX_SMTP_ADDR (it keeps our RUN_DIR)
source "$SHARED_BENCH/env.sh"
RD=$RUN_DIR
ROUNDS=${ROUNDS:-3}; DURATION=${DURATION:-8}; CONC=${CONC:-32}
CONCIERGE_PORT=${CONCIERGE_PORT:-11153}; FLOOR_PORT=${FLOOR_PORT:-11154}
config=$here/run/concierge-shared/tenants.json
[ -e "$RD/smtp-sink.pid" ] && [ -e "$config" ] || { echo "smtp-floor.sh: run bench/shared-harness.sh with KEEP_DAEMONS=1 first" >&2; exit 1; }
[ -e "$repo/dist/src/cli.js" ] || (cd "$repo" && npm run build > /dev/null)

out=$(mktemp -d)
node -e '
  const fs = require("fs"); const [src, dst, port] = process.argv.slice(1);
  const t = JSON.parse(fs.readFileSync(src));
  t.listeners = t.listeners.filter((l) => l.protocol === "smtp").map((l) => ({ ...l, port: Number(port) }));
  fs.writeFileSync(dst, JSON.stringify(t));' "$config" "$out/tenants.json" "$CONCIERGE_PORT"
node "$repo/dist/src/cli.js" start --config "$out/tenants.json" > "$out/concierge.log" 2>&1 &
concierge=$!
node "$here/lib/smtp-floor-proxy.mjs" "$FLOOR_PORT" "$SINK_ADDR" &
floor=$!
trap 'kill $concierge $floor 2>/dev/null; rm -rf "$out"' EXIT
for port in "$CONCIERGE_PORT" "$FLOOR_PORT"; do
  for _ in $(seq 1 50); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done
done

targets=("direct|$SINK_ADDR|$RD/smtp-sink.pid" "haproxy|$HAPROXY_SMTP_ADDR|$RD/haproxy.pid" "nginx|$NGINX_SMTP_ADDR|$RD/nginx.pid" "concierge|127.0.0.1:$CONCIERGE_PORT|$concierge" "floor|127.0.0.1:$FLOOR_PORT|$floor")
# One unmeasured pass: Concierge's and the floor's JIT warm up as the peers' C code needs not.
for spec in "${targets[@]:3}"; do
  IFS='|' read -r _ addr _ <<< "$spec"
  node "$SHARED_BENCH/smtp-sessions.js" --target "$addr" --concurrency "$CONC" --duration 3 --json 1 > /dev/null
done
printf '%-5s %-10s %12s %14s %12s\n' round target sessions/s 'target µs' 'sink µs'
for round in $(seq 1 "$ROUNDS"); do
  for spec in "${targets[@]}"; do
    IFS='|' read -r name addr pid <<< "$spec"
    pids=$pid; [ "$name" = direct ] || pids="$pid,$RD/smtp-sink.pid"
    node "$SHARED_BENCH/smtp-sessions.js" --target "$addr" --concurrency "$CONC" --duration "$DURATION" --pid "$pids" --json 1 |
      node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => {
        const j = JSON.parse(s); const [round, name] = process.argv.slice(1);
        const sink = name === "direct" ? j.target_cpu_us_per_session : j.backend_cpu_us_per_session;
        console.log([round.padEnd(5), name.padEnd(10), String(j.sessions_per_s).padStart(12), String(name === "direct" ? "-" : j.target_cpu_us_per_session).padStart(14), String(sink).padStart(12), j.errors ? `errors ${j.errors}` : ""].join(" "));
      })' "$round" "$name"
  done
done
