#!/usr/bin/env bash
# The server under HTTP load, in one run on one machine: `tresor server` (KV v2 at secret/) beside
# RustyVault 0.2.1 (its KV at secret/), both driven by wrk over loopback, with the floor measured
# in the same run (tresor's unauthenticated sys/health: the HTTP stack and wrk alone), each
# server's memory afterwards, and a tresor server's memory after opening a vault of SECRETS
# secrets. Prints one table with ratios (> 1: tresor is faster).
# See bench/README.md for the variables.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNS="${CONNS:-16}"
THREADS="${THREADS:-2}"
BENCH_TMPDIR="${BENCH_TMPDIR:-/tmp}"
# Secrets in the vault whose server's memory is measured after opening (0: skip that figure).
SECRETS="${SECRETS:-1000000}"
[[ $SECRETS =~ ^[0-9]+$ ]] || { echo "server.sh: SECRETS must be a number (got '$SECRETS')" >&2; exit 1; }

command -v wrk >/dev/null || { echo "server.sh: wrk is needed (apt-get install wrk)" >&2; exit 1; }

if [ -z "${TRESOR_BIN:-}" ]; then
  cargo build --release --locked -p tresor-cli >&2
  TRESOR_BIN="$PWD/target/release/tresor"
fi
if [ -z "${RV_BIN:-}" ]; then
  RV_ROOT="${RV_ROOT:-$HOME/.cache/tresor-bench/rusty_vault-0.2.1}"
  [ -x "$RV_ROOT/bin/rvault" ] || cargo install rusty_vault --version 0.2.1 --locked --root "$RV_ROOT" >&2
  RV_BIN="$RV_ROOT/bin/rvault"
fi

work="$(mktemp -d "$BENCH_TMPDIR/tresor-server-bench.XXXXXX")"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# Waits until URL answers at all (any status).
wait_http() {
  for _ in $(seq 200); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "server.sh: nothing answers at $1" >&2
  exit 1
}

# A JSON field of stdin, by a Python expression on `d`.
field() { python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"; }

# wrk's requests/s and p50/p99 latency (ms) for: METHOD URL TOKEN-HEADER [BODY-FILE]
# prints "rps p50 p99".
load() {
  local method="$1" url="$2" header="$3" body="${4:-}" script="$work/wrk.lua"
  {
    echo "wrk.method = \"$method\""
    [ -n "$header" ] && echo "wrk.headers[\"X-Vault-Token\"] = \"$header\""
    if [ -n "$body" ]; then
      printf 'wrk.body = [[%s]]\n' "$(cat "$body")"
      echo 'wrk.headers["Content-Type"] = "application/json"'
    fi
    cat <<'LUA'
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.1f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA
  } >"$script"
  local out
  out="$(wrk -t "$THREADS" -c "$CONNS" -d "${DURATION}s" -s "$script" "$url")"
  local line
  line="$(grep '^RESULT' <<<"$out")"
  read -r _ rps p50 p99 bad_status socket_errors <<<"$line"
  if [ "$bad_status" != 0 ] || [ "$socket_errors" != 0 ]; then
    echo "server.sh: $method $url: $bad_status non-2xx answers, $socket_errors socket errors" >&2
    echo "$out" >&2
    exit 1
  fi
  echo "$rps $p50 $p99"
}

rss_mib() { awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

value='{"data":{"password":"correct horse battery staple 0123456789"}}'
echo "$value" >"$work/v2.json"
echo '{"password":"correct horse battery staple 0123456789"}' >"$work/v1.json"

# --- tresor -----------------------------------------------------------------------------------
tport="$(free_port)"
mkdir -p "$work/tresor/state" "$work/tresor/run"
chmod 700 "$work/tresor/run"
TRESOR_STATE_DIR="$work/tresor/state" TRESOR_RUNTIME_DIR="$work/tresor/run" TMPDIR="$work/tresor" \
  "$TRESOR_BIN" server --dev --listen "127.0.0.1:$tport" >"$work/tresor/out" 2>"$work/tresor/err" &
tpid=$!
pids+=("$tpid")
taddr="http://127.0.0.1:$tport"
wait_http "$taddr/v1/sys/health"
for _ in $(seq 100); do grep -q VAULT_TOKEN "$work/tresor/out" && break; sleep 0.05; done
ttoken="$(sed -n "s/^export VAULT_TOKEN='\(.*\)'$/\1/p" "$work/tresor/out")"
curl -sf -H "X-Vault-Token: $ttoken" -d @"$work/v2.json" "$taddr/v1/secret/data/bench" >/dev/null
got="$(curl -sf -H "X-Vault-Token: $ttoken" "$taddr/v1/secret/data/bench" | field 'd["data"]["data"]["password"]')"
[ "$got" = "correct horse battery staple 0123456789" ] || { echo "server.sh: tresor read back $got" >&2; exit 1; }

echo "server.sh: ${DURATION}s per figure, $CONNS connections, $THREADS wrk threads, on $(nproc) cores" >&2
read -r floor_rps floor_p50 floor_p99 <<<"$(load GET "$taddr/v1/sys/health" "")"
read -r t_read t_read50 t_read99 <<<"$(load GET "$taddr/v1/secret/data/bench" "$ttoken")"
read -r t_write t_write50 t_write99 <<<"$(load POST "$taddr/v1/secret/data/bench" "$ttoken" "$work/v2.json")"
t_rss="$(rss_mib "$tpid")"

# --- RustyVault 0.2.1 ---------------------------------------------------------------------------
rport="$(free_port)"
mkdir -p "$work/rv/data"
cat >"$work/rv/config.hcl" <<HCL
storage "file" {
  path = "$work/rv/data"
}
listener "tcp" {
  address = "127.0.0.1:$rport"
  tls_disable = "true"
}
api_addr = "http://127.0.0.1:$rport"
log_level = "error"
pid_file = "$work/rv/rvault.pid"
work_dir = "$work/rv"
HCL
(cd "$work/rv" && exec "$RV_BIN" server --config "$work/rv/config.hcl") >"$work/rv/out" 2>&1 &
rpid=$!
pids+=("$rpid")
raddr="http://127.0.0.1:$rport"
wait_http "$raddr/v1/sys/seal-status"
init="$(curl -sf -X PUT -d '{"secret_shares":1,"secret_threshold":1}' "$raddr/v1/sys/init")"
rkey="$(field 'd["keys"][0]' <<<"$init")"
rtoken="$(field 'd["root_token"]' <<<"$init")"
curl -sf -X PUT -d "{\"key\":\"$rkey\"}" "$raddr/v1/sys/unseal" >/dev/null
curl -sf -H "X-Vault-Token: $rtoken" -d @"$work/v1.json" "$raddr/v1/secret/bench" >/dev/null
got="$(curl -sf -H "X-Vault-Token: $rtoken" "$raddr/v1/secret/bench" | field 'd["data"]["password"]')"
[ "$got" = "correct horse battery staple 0123456789" ] || { echo "server.sh: RustyVault read back $got" >&2; exit 1; }

read -r r_read r_read50 r_read99 <<<"$(load GET "$raddr/v1/secret/bench" "$rtoken")"
read -r r_write r_write50 r_write99 <<<"$(load POST "$raddr/v1/secret/bench" "$rtoken" "$work/v1.json")"
r_rss="$(rss_mib "$rpid")"

# --- a server's memory after opening a large vault ------------------------------------------------
# A vault of $SECRETS secrets made by `tresor import` (one .env file), then `tresor server --unseal`
# on it: resident memory once it answers unsealed, and its peak while opening.
if [ "$SECRETS" -gt 0 ]; then
  big="$work/big"
  mkdir -p "$big/state" "$big/run" "$big/config"
  chmod 700 "$big/run"
  python3 - "$SECRETS" "$big/secrets.env" <<'PY'
import base64, os, sys
with open(sys.argv[2], "w") as f:
    for i in range(int(sys.argv[1])):
        f.write("SECRET_%08d=%s\n" % (i, base64.b64encode(os.urandom(24)).decode()))
PY
  printf 'server-bench-password-%s\n' "$(head -c 12 /dev/urandom | base64 -w0)" >"$big/pw"
  chmod 600 "$big/pw"
  big_env=(TRESOR_VAULT="$big/vault" TRESOR_STATE_DIR="$big/state" TRESOR_RUNTIME_DIR="$big/run"
    XDG_CONFIG_HOME="$big/config" TRESOR_PASSWORD_FILE="$big/pw" TMPDIR="$big")
  big() { env -u TRESOR_CONFIG -u TRESOR_PASSWORD -u TRESOR_ADDR "${big_env[@]}" "$TRESOR_BIN" "$@"; }
  big init --no-agent >/dev/null 2>"$big/init.err" || { cat "$big/init.err" >&2; exit 1; }
  big import --prefix bench "$big/secrets.env" >/dev/null 2>"$big/import.err" ||
    { cat "$big/import.err" >&2; exit 1; }
  rm -f "$big/secrets.env"
  bport="$(free_port)"
  started_ns="$(date +%s%N)"
  # Not through `big`: $! must be the server itself, not a subshell running it.
  env -u TRESOR_CONFIG -u TRESOR_PASSWORD -u TRESOR_ADDR "${big_env[@]}" "$TRESOR_BIN" server --unseal \
    --listen "127.0.0.1:$bport" >"$big/out" 2>"$big/err" &
  bpid=$!
  pids+=("$bpid")
  opened=""
  for _ in $(seq 1200); do
    if curl -s "http://127.0.0.1:$bport/v1/sys/seal-status" 2>/dev/null | grep -q '"sealed":false'; then
      opened="$(( ($(date +%s%N) - started_ns) / 1000000 ))"
      break
    fi
    kill -0 "$bpid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$opened" ] || { echo "server.sh: the server on $SECRETS secrets never answered unsealed" >&2; cat "$big/err" >&2; exit 1; }
  big_rss="$(awk '/^VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$bpid/status")"
  big_peak="$(rss_mib "$bpid")"
  kill "$bpid" 2>/dev/null || true
fi

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
printf '\n%-44s %12s %9s %9s %12s\n' "what (wrk -c $CONNS, ${DURATION}s)" "requests/s" "p50 ms" "p99 ms" "tresor / RV"
printf '%-44s %12s %9s %9s %12s\n' "floor: tresor sys/health (no token, no vault)" "$floor_rps" "$floor_p50" "$floor_p99" "-"
printf '%-44s %12s %9s %9s %12s\n' "tresor KV v2 read (token, policy, audited)" "$t_read" "$t_read50" "$t_read99" "$(ratio "$t_read" "$r_read")"
printf '%-44s %12s %9s %9s %12s\n' "RustyVault 0.2.1 KV read" "$r_read" "$r_read50" "$r_read99" ""
printf '%-44s %12s %9s %9s %12s\n' "tresor KV v2 write (fsynced, audited)" "$t_write" "$t_write50" "$t_write99" "$(ratio "$t_write" "$r_write")"
printf '%-44s %12s %9s %9s %12s\n' "RustyVault 0.2.1 KV write (no fsync)" "$r_write" "$r_write50" "$r_write99" ""
printf '\nread at %s of the floor; peak memory (VmHWM): tresor %s MiB, RustyVault %s MiB\n' \
  "$(ratio "$t_read" "$floor_rps")" "$t_rss" "$r_rss"
if [ "$SECRETS" -gt 0 ]; then
  printf 'tresor server on a %s-secret vault (directory): unsealed and answering %s ms after start; resident %s MiB after opening (peak %s MiB)\n' \
    "$SECRETS" "$opened" "$big_rss" "$big_peak"
fi
echo "durability: tresor writes the blob, the audit entry and the commit with fsync before answering, and writes an audit entry for every read before answering (fsynced with the next commit or every 64 entries); RustyVault's file backend writes without fsync and keeps no audit trail unless an audit device is enabled (none is here)."
