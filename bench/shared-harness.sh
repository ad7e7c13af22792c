#!/usr/bin/env bash
# Runs the team's proxy harness (../shared/bench: dovecot, perdition, nginx mail, haproxy) with
# Concierge as one more POP3, FTP and SMTP target, in the same interleaved run, against the same
# backends (dovecot, vsftpd, the harness's SMTP sink).
#
#   sudo bench/shared-harness.sh          # defaults below; ~4-6 min
#
# The harness directory is read-only and is never written: its generated state (configs, pid
# files, mail, logs, results) goes to RUN_DIR, which its env.sh lets us move, here
# bench/run/shared-harness/ (git-ignored). Results: $RUN_DIR/results/<UTC time>.{jsonl,md}.
#
# Knobs (environment):
#   PEERS="haproxy perdition nginx"  TESTS="pop3 bulk"  ROUNDS=3  (plus DURATION, CONC, BULK_REPS: see run.sh)
#   CONCIERGE_ADDR=127.0.0.1:11150     where Concierge's POP3 listens (the harness uses 11100-11140)
#   CONCIERGE_FTP_ADDR=127.0.0.1:11151 where Concierge's FTP listens: the harness logs in as a bare
#                                      user, so a second tenant owns this address (localAddresses)
#   CONCIERGE_PASV_MIN/MAX=14200/14299 Concierge's passive range (vsftpd 14000-, proftpd 14100-)
#   CONCIERGE_SMTP_ADDR=127.0.0.1:11152 where Concierge's SMTP (mx mode) listens: smtp-sessions.js sends
#                                      to u1@$POP3_DOMAIN, so the $POP3_DOMAIN tenant also has the
#                                      harness's sink ($SINK_ADDR) as its SMTP backend
#   CONCIERGE_SMTP_XCLIENT=0           1: pass the client's address to the sink with XCLIENT (as nginx's
#                                      default "xclient on" does; haproxy passes nothing)
#   CONCIERGE_LOG_LEVEL=warn           log level of Concierge's tenants.json
#   CONCIERGE_NODE_FLAGS="--cpu-prof --cpu-prof-dir bench/run/profiles/shared"   extra node flags
#   SKIP_SETUP=1                       do not run setup.sh (it is idempotent; it installs packages once)
#   KEEP_DAEMONS=1                     leave the harness daemons running afterwards (default: ./stop.sh them)
#   SHARED_BENCH=/path/to/shared/bench
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(dirname "$here")
SHARED_BENCH=${SHARED_BENCH:-$(cd "$repo/../shared/bench" && pwd)}
export RUN_DIR=${RUN_DIR:-$here/run/shared-harness}
# env.sh gives DOVECOT_ADDR, POP3_DOMAIN, host_of/port_of (it keeps our RUN_DIR)
source "$SHARED_BENCH/env.sh"

CONCIERGE_ADDR=${CONCIERGE_ADDR:-127.0.0.1:11150}
CONCIERGE_FTP_ADDR=${CONCIERGE_FTP_ADDR:-127.0.0.1:11151}
CONCIERGE_SMTP_ADDR=${CONCIERGE_SMTP_ADDR:-127.0.0.1:11152}
CONCIERGE_SMTP_XCLIENT=${CONCIERGE_SMTP_XCLIENT:-0}
CONCIERGE_PASV_MIN=${CONCIERGE_PASV_MIN:-14200}
CONCIERGE_PASV_MAX=${CONCIERGE_PASV_MAX:-14299}
CONCIERGE_LOG_LEVEL=${CONCIERGE_LOG_LEVEL:-warn}
CONCIERGE_NODE_FLAGS=${CONCIERGE_NODE_FLAGS:-}
export PEERS=${PEERS:-"haproxy perdition nginx"}
export TESTS=${TESTS:-"pop3 bulk"}
export ROUNDS=${ROUNDS:-3}
KEEP_DAEMONS=${KEEP_DAEMONS:-0}

[ "$(id -u)" = 0 ] || { echo "shared-harness.sh: the harness's setup.sh and daemons need root" >&2; exit 1; }
state=$here/run/concierge-shared
mkdir -p "$RUN_DIR" "$state"

# ------------------------------------------------------------------ setup --
if [ "${SKIP_SETUP:-0}" != 1 ]; then
  echo "== harness setup (packages once, data once, configs) into $RUN_DIR"
  (cd "$SHARED_BENCH" && NO_START=1 ./setup.sh)
fi

# ------------------------------------------------------------ Concierge ----
if [ ! -e "$repo/dist/src/cli.js" ]; then
  echo "== dist/ missing: npm run build"
  (cd "$repo" && npm run build)
fi
cat > "$state/tenants.json" <<EOF
{
  "log": { "level": "$CONCIERGE_LOG_LEVEL" },
  "listeners": [
    { "protocol": "pop3", "address": "$(host_of "$CONCIERGE_ADDR")", "port": $(port_of "$CONCIERGE_ADDR"), "banner": "Concierge bench POP3 ready" },
    { "protocol": "ftp", "address": "$(host_of "$CONCIERGE_FTP_ADDR")", "port": $(port_of "$CONCIERGE_FTP_ADDR"),
      "passivePorts": { "from": $CONCIERGE_PASV_MIN, "to": $CONCIERGE_PASV_MAX } },
    { "protocol": "smtp", "mode": "mx", "address": "$(host_of "$CONCIERGE_SMTP_ADDR")", "port": $(port_of "$CONCIERGE_SMTP_ADDR"),
      "hostname": "concierge.$POP3_DOMAIN" }
  ],
  "tenants": [
    {
      "domain": "$POP3_DOMAIN",
      "sourceAddress": "127.0.0.2",
      "backendUser": "full",
      "backends": {
        "pop3": [{ "host": "$(host_of "$DOVECOT_ADDR")", "port": $(port_of "$DOVECOT_ADDR") }],
        "smtp": [{ "host": "$(host_of "$SINK_ADDR")", "port": $(port_of "$SINK_ADDR")$([ "$CONCIERGE_SMTP_XCLIENT" = 1 ] && echo ', "xclient": true') }]
      }
    },
    {
      "domain": "ftp.$POP3_DOMAIN",
      "sourceAddress": "127.0.0.2",
      "localAddresses": ["$(host_of "$CONCIERGE_FTP_ADDR")"],
      "backendUser": "local",
      "backends": { "ftp": [{ "host": "$(host_of "$VSFTPD_ADDR")", "port": $(port_of "$VSFTPD_ADDR") }] }
    }
  ]
}
EOF

pidfile=$state/concierge.pid
concierge_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$concierge_pid" ] && [ -d "/proc/$concierge_pid" ] && grep -q "cli.js" "/proc/$concierge_pid/cmdline" 2>/dev/null; then
    kill -TERM "$concierge_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do [ -d "/proc/$concierge_pid" ] || break; sleep 0.1; done
    [ -d "/proc/$concierge_pid" ] && kill -KILL "$concierge_pid" 2>/dev/null
    echo "== stopped Concierge (pid $concierge_pid)"
  fi
  rm -f "$pidfile"
  if [ "$KEEP_DAEMONS" != 1 ] && [ -e "$RUN_DIR/paths.env" ]; then
    echo "== stopping the harness daemons (KEEP_DAEMONS=1 keeps them)"
    (cd "$SHARED_BENCH" && ./stop.sh) || true
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# shellcheck disable=SC2086  # CONCIERGE_NODE_FLAGS is a list of flags
(cd "$repo" && exec node $CONCIERGE_NODE_FLAGS dist/src/cli.js start --config "$state/tenants.json") > "$state/concierge.log" 2>&1 < /dev/null &
concierge_pid=$!
echo "$concierge_pid" > "$pidfile"
for i in $(seq 1 100); do
  if ss -Hltn "sport = :$(port_of "$CONCIERGE_ADDR")" | grep -q "$(host_of "$CONCIERGE_ADDR"):$(port_of "$CONCIERGE_ADDR")"; then break; fi
  if [ ! -d "/proc/$concierge_pid" ] || [ "$i" = 100 ]; then
    echo "shared-harness.sh: Concierge did not start; its log:" >&2; tail -n 20 "$state/concierge.log" >&2; exit 1
  fi
  sleep 0.1
done
echo "== Concierge pid $concierge_pid on $CONCIERGE_ADDR -> dovecot $DOVECOT_ADDR, $CONCIERGE_FTP_ADDR -> vsftpd $VSFTPD_ADDR, $CONCIERGE_SMTP_ADDR -> sink $SINK_ADDR (log level $CONCIERGE_LOG_LEVEL, git $(cd "$repo" && git rev-parse --short HEAD 2>/dev/null || echo '?'))"

# -------------------------------------------------------------------- run --
# run.sh starts the harness daemons (start.sh) if they are not running yet.
(cd "$SHARED_BENCH" && TARGET_NAME=concierge TARGET_POP3="$CONCIERGE_ADDR" TARGET_FTP="$CONCIERGE_FTP_ADDR" TARGET_SMTP="$CONCIERGE_SMTP_ADDR" TARGET_PID="$pidfile" ./run.sh)
echo "== results: $(ls -t "$RUN_DIR"/results/*.md | head -n 1)"
echo "== Concierge log: $state/concierge.log ($(stat -c %s "$state/concierge.log") bytes)"
