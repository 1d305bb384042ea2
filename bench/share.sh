#!/usr/bin/env bash
# Sharing through a relay, end to end with the real binary: two vaults, a `tresor relay` on
# loopback, and what a user waits for — pairing with the first transfer of N secrets, a change on
# one side visible on the other (set, sync here, sync there), a quiet sync — beside what the same
# round trip costs with pass and git (the way pass and gopass users share: a bare repository,
# `pass git push`, `pass git pull`), and the floor measured in the same run: starting a process.
#
#   bash bench/share.sh                 # N=10000 secrets at pairing, R=20 round trips
#   N=1000 R=10 bash bench/share.sh     # quick run
#   TRESOR_BIN=/path/to/tresor bash bench/share.sh   # skip the cargo build
#
# Prints one line per figure and the ratios. PASS=0 skips the pass comparison.
set -euo pipefail

N=${N:-10000}
R=${R:-20}
PASS=${PASS:-1}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[share] %s\n' "$*" >&2; }
die() {
    printf 'share.sh: %s\n' "$*" >&2
    exit 1
}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$N')"
[[ $R =~ ^[1-9][0-9]*$ ]] || die "R must be a positive integer (got '$R')"

if [[ -z ${TRESOR_BIN:-} ]]; then
    log "building tresor (release)"
    cargo build --release --locked -p tresor-cli --manifest-path "$ROOT/Cargo.toml" >&2
    TRESOR_BIN=$ROOT/target/release/tresor
fi
[[ -x $TRESOR_BIN ]] || die "no tresor binary at $TRESOR_BIN"

WORK=$(mktemp -d /tmp/tresor-share-bench.XXXXXX)
RELAY_PID=
cleanup() {
    [[ -n $RELAY_PID ]] && kill "$RELAY_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

export TRESOR_PASSWORD='bench password for share.sh'
export TRESOR_SYNC_INTERVAL=0
KDF=(--kdf-memory 19456 --kdf-time 2 --kdf-parallelism 1)
# Each side its own machine: its own vault, trust state, sockets and config.
side() {
    local name=$1
    shift
    TRESOR_VAULT=$WORK/$name TRESOR_STATE_DIR=$WORK/$name-state TRESOR_RUNTIME_DIR=$WORK/$name-run \
        XDG_CONFIG_HOME=$WORK/$name-cfg "$TRESOR_BIN" --no-agent "$@"
}
# The same side through its agent (unlocked once; it does not sync on its own: TRESOR_SYNC_INTERVAL=0).
agent_side() {
    local name=$1
    shift
    TRESOR_VAULT=$WORK/$name TRESOR_STATE_DIR=$WORK/$name-state TRESOR_RUNTIME_DIR=$WORK/$name-run \
        XDG_CONFIG_HOME=$WORK/$name-cfg "$TRESOR_BIN" "$@"
}
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

log "relay on a free loopback port"
"$TRESOR_BIN" relay --listen 127.0.0.1:0 --data "$WORK/relay" 2>"$WORK/relay.log" &
RELAY_PID=$!
for _ in $(seq 100); do
    URL=$(grep -o 'listening on http://[0-9.:]*' "$WORK/relay.log" | head -1 | sed 's/listening on //') || true
    [[ -n ${URL:-} ]] && break
    sleep 0.05
done
[[ -n ${URL:-} ]] || die "the relay did not start: $(cat "$WORK/relay.log")"

log "two vaults; $N secrets under team/ in the first"
side a init "${KDF[@]}" >/dev/null 2>&1
side b init "${KDF[@]}" >/dev/null 2>&1
for i in $(seq -w 1 "$N"); do printf 'S%s=value-%s-%s\n' "$i" "$i" "$RANDOM$RANDOM"; done >"$WORK/secrets.env"
side a import "$WORK/secrets.env" --prefix team >/dev/null 2>&1

log "pairing, and the first transfer of $N secrets"
mkfifo "$WORK/a.in" "$WORK/b.in"
exec 7<>"$WORK/a.in" 8<>"$WORK/b.in"
START=$(now)
side a share create team --relay "$URL" --wait 5m <"$WORK/a.in" >"$WORK/a.out" 2>"$WORK/a.err" &
A_PID=$!
for _ in $(seq 600); do
    INVITATION=$(head -1 "$WORK/a.out" 2>/dev/null) || true
    [[ $INVITATION == tresor-invite-1:* ]] && break
    sleep 0.05
done
[[ $INVITATION == tresor-invite-1:* ]] || die "no invitation: $(cat "$WORK/a.err")"
SHARED=$(now)
printf '%s\n' "$INVITATION" >"$WORK/invitation"
side b share join "$INVITATION" --as team --wait 5m <"$WORK/b.in" >/dev/null 2>"$WORK/b.err" &
B_PID=$!
printf "y\n" >&8
printf 'y\n' >&7
wait "$A_PID" || die "share create failed: $(cat "$WORK/a.err")"
wait "$B_PID" || die "share join failed: $(cat "$WORK/b.err")"
DONE=$(now)
got=$(side b list team/ 2>/dev/null | wc -l)
[[ $got -eq $N ]] || die "the joiner holds $got secrets, not $N"
FIRST_SEND=$(elapsed "$START" "$SHARED")
PAIR=$(elapsed "$SHARED" "$DONE")

# R round trips through `$1` (`side`: each command opens the vault; `agent_side`: through the
# unlocked agents): set on one side, sync there, sync on the other, read; prints the median.
round_trips() {
    local via=$1 file=$WORK/trips-$1
    : >"$file"
    for i in $(seq "$R"); do
        t0=$(now)
        printf '%s round %s' "$via" "$i" | "$via" a set team/hot >/dev/null 2>&1
        "$via" a sync >/dev/null 2>&1
        "$via" b sync >/dev/null 2>&1
        t1=$(now)
        [[ $("$via" b get team/hot 2>/dev/null) == "$via round $i" ]] || die "round $i ($via) did not arrive"
        elapsed "$t0" "$t1" >>"$file"
        echo >>"$file"
    done
    median <"$file"
}

log "$R round trips: set on one side, sync there, sync here, read"
TRIP=$(round_trips side)
: >"$WORK/quiet"
for _ in $(seq "$R"); do
    t0=$(now)
    side b sync >/dev/null 2>&1
    elapsed "$t0" "$(now)" >>"$WORK/quiet"
    echo >>"$WORK/quiet"
done
QUIET=$(median <"$WORK/quiet")

log "$R round trips with both agents unlocked: set, sync, sync through them"
agent_side a unlock >/dev/null 2>&1
agent_side b unlock >/dev/null 2>&1
AGENT_TRIP=$(round_trips agent_side)
agent_side a lock >/dev/null 2>&1 || true
agent_side b lock >/dev/null 2>&1 || true

log "the floor: starting a process (tresor --version, /bin/true)"
: >"$WORK/floor"
for _ in $(seq "$R"); do
    t0=$(now)
    "$TRESOR_BIN" --version >/dev/null
    elapsed "$t0" "$(now)" >>"$WORK/floor"
    echo >>"$WORK/floor"
done
FLOOR=$(median <"$WORK/floor")

PASS_TRIP=
if [[ $PASS != 0 ]] && command -v pass >/dev/null && command -v git >/dev/null && command -v gpg >/dev/null; then
    log "pass with git: insert, git push on one side, git pull on the other ($R round trips)"
    export GNUPGHOME=$WORK/gnupg
    mkdir -m 700 "$GNUPGHOME"
    gpg --batch --passphrase '' --quick-gen-key bench@tresor.invalid default default never >/dev/null 2>&1
    git init -q --bare "$WORK/pass.git"
    export PASSWORD_STORE_DIR=$WORK/pass-a
    pass init bench@tresor.invalid >/dev/null
    pass git init >/dev/null 2>&1
    git -C "$PASSWORD_STORE_DIR" -c user.email=b@t -c user.name=b commit -q --allow-empty -m init
    pass git remote add origin "$WORK/pass.git"
    pass git push -q -u origin HEAD:main >/dev/null 2>&1
    git clone -q -b main "$WORK/pass.git" "$WORK/pass-b" 2>/dev/null
    : >"$WORK/pass-trips"
    for i in $(seq "$R"); do
        t0=$(now)
        printf 'round %s\n' "$i" | PASSWORD_STORE_DIR=$WORK/pass-a pass insert -m -f team/hot >/dev/null 2>&1
        PASSWORD_STORE_DIR=$WORK/pass-a pass git push -q origin HEAD:main >/dev/null 2>&1
        PASSWORD_STORE_DIR=$WORK/pass-b pass git pull -q origin main >/dev/null 2>&1
        t1=$(now)
        [[ $(PASSWORD_STORE_DIR=$WORK/pass-b pass show team/hot) == "round $i" ]] || die "pass round $i did not arrive"
        elapsed "$t0" "$t1" >>"$WORK/pass-trips"
        echo >>"$WORK/pass-trips"
    done
    PASS_TRIP=$(median <"$WORK/pass-trips")
fi

echo
printf 'share create until the invitation (first send of %s secrets): %8.3f s\n' "$N" "$FIRST_SEND"
printf 'pairing and the joiner taking in %s secrets:            %8.3f s\n' "$N" "$PAIR"
printf 'round trip, set + sync + sync (median of %s):          %8.3f s\n' "$R" "$TRIP"
printf 'quiet sync (median of %s):                             %8.3f s\n' "$R" "$QUIET"
printf 'round trip through unlocked agents (median of %s):     %8.3f s\n' "$R" "$AGENT_TRIP"
printf 'floor: tresor --version (median of %s):                %8.3f s\n' "$R" "$FLOOR"
awk -v t="$TRIP" -v f="$FLOOR" 'BEGIN { printf "round trip / floor (3 processes at least):        %8.1fx\n", t / f }'
if [[ -n $PASS_TRIP ]]; then
    printf 'pass + git: insert + push + pull (median of %s):     %8.3f s\n' "$R" "$PASS_TRIP"
    awk -v t="$TRIP" -v p="$PASS_TRIP" 'BEGIN { printf "pass + git / tresor round trip:                    %8.2fx\n", p / t }'
    awk -v t="$AGENT_TRIP" -v p="$PASS_TRIP" 'BEGIN { printf "pass + git / tresor round trip through agents:    %8.2fx\n", p / t }'
fi
