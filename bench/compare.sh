#!/usr/bin/env bash
# Compares tresor with the tools users would pick instead (pass, and "age + files"), in one run
# on one machine, and prints per-operation times and ratios.
#
#   bash bench/compare.sh              # N=1000 secrets
#   N=100 bash bench/compare.sh        # quick run
#   TRESOR_BIN=/path/to/tresor bash bench/compare.sh   # skip the cargo build
#
# Other knobs: BENCH_TMPDIR (parent of the temp dir, default /tmp), HYPERFINE=0 (skip the
# hyperfine sample), HF_RUNS (hyperfine runs per command, default 30), SPOT (secrets
# spot-checked, default 10), GPG_ALGO (pass's key, default "default"; "future-default" for
# ed25519/cv25519 on GnuPG 2.2). See bench/README.md.
set -euo pipefail

N=${N:-1000}
SPOT=${SPOT:-10}
HYPERFINE=${HYPERFINE:-1}
HF_RUNS=${HF_RUNS:-30}
BENCH_TMPDIR=${BENCH_TMPDIR:-/tmp}
GPG_ALGO=${GPG_ALGO:-default}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf '[compare] %s\n' "$*" >&2; }
die() {
    printf 'compare.sh: %s\n' "$*" >&2
    exit 1
}

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer (got '$N')"
[[ $SPOT =~ ^[0-9]+$ ]] || die "SPOT must be a non-negative integer (got '$SPOT')"

# ---------------------------------------------------------------- tools
install_missing() {
    local pkgs=()
    { command -v gpg >/dev/null 2>&1 && command -v gpgconf >/dev/null 2>&1; } || pkgs+=(gnupg)
    command -v pass >/dev/null 2>&1 || pkgs+=(pass)
    { command -v age >/dev/null 2>&1 && command -v age-keygen >/dev/null 2>&1; } || pkgs+=(age)
    if [[ $HYPERFINE != 0 ]]; then
        command -v hyperfine >/dev/null 2>&1 || pkgs+=(hyperfine)
    fi
    ((${#pkgs[@]} > 0)) || return 0
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null 2>&1 || die "missing ${pkgs[*]}; install them or run as root"
        sudo=(sudo)
    fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${pkgs[*]} and no apt-get to install them"
    log "installing ${pkgs[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
}
install_missing
for t in gpg gpgconf pass age age-keygen shuf cmp base64 awk; do
    command -v "$t" >/dev/null 2>&1 || die "$t not found"
done
HAVE_HF=0
if [[ $HYPERFINE != 0 ]] && command -v hyperfine >/dev/null 2>&1; then HAVE_HF=1; fi

if [[ -n ${TRESOR_BIN:-} ]]; then
    TRESOR=$TRESOR_BIN
else
    log "building tresor (release)"
    (cd "$ROOT" && cargo build --release -p tresor-cli --locked >&2)
    target=${CARGO_TARGET_DIR:-$ROOT/target}
    [[ $target == /* ]] || target=$ROOT/$target
    TRESOR=$target/release/tresor
fi
[[ -x $TRESOR ]] || die "tresor binary not found at $TRESOR"
TRESOR=$(cd "$(dirname "$TRESOR")" && pwd)/$(basename "$TRESOR")
# The whole CLI, which the front hands every command line it does not serve itself.
TRESOR_CLI=$(dirname "$TRESOR")/tresor-cli
[[ -x $TRESOR_CLI ]] || die "tresor-cli not found beside $TRESOR"

# ---------------------------------------------------------------- sandbox
mkdir -p "$BENCH_TMPDIR"
TMP=$(mktemp -d "$BENCH_TMPDIR/tresor-bench.XXXXXX")
RUNDIR=$TMP/run
# An AF_UNIX socket path is limited to 107 bytes: keep the agent's runtime dir short.
if ((${#RUNDIR} > 60)); then RUNDIR=$(mktemp -d /tmp/trb.XXXXXX); fi
AGENT_STARTED=0

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    if ((AGENT_STARTED)); then "$TRESOR" lock >/dev/null 2>&1; fi
    if [[ -n ${GNUPGHOME:-} && -d $GNUPGHOME ]]; then
        gpgconf --kill gpg-agent >/dev/null 2>&1
        gpgconf --kill all >/dev/null 2>&1
    fi
    [[ $RUNDIR == "$TMP"/* ]] || rm -rf "$RUNDIR"
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$TMP"/{vals,config,data,state,home,age/name,store}
mkdir -p "$TMP/gnupg" "$RUNDIR"
chmod 700 "$TMP/gnupg" "$RUNDIR"

export GNUPGHOME=$TMP/gnupg
export PASSWORD_STORE_DIR=$TMP/store/pass
export TRESOR_VAULT=$TMP/store/tresor
export TRESOR_STATE_DIR=$TMP/state/tresor
export TRESOR_RUNTIME_DIR=$RUNDIR
export XDG_CONFIG_HOME=$TMP/config
export XDG_DATA_HOME=$TMP/data
export XDG_STATE_HOME=$TMP/state
export TRESOR_IDLE_TIMEOUT=30m
unset TRESOR_PASSWORD TRESOR_CONFIG PASSWORD_STORE_KEY PASSWORD_STORE_GPG_OPTS

# ---------------------------------------------------------------- helpers
now_ns() { date +%s%N; }
ms_since() { awk -v a="$1" -v b="$(now_ns)" 'BEGIN { printf "%.0f", (b - a) / 1e6 }'; }
# per_op_ms TOTAL_NS -> mean ms per operation
per_op_ms() { awk -v t="$1" -v n="$N" 'BEGIN { printf "%.3f", t / n / 1e6 }'; }
ops_per_s() { awk -v t="$1" -v n="$N" 'BEGIN { printf "%.0f", n / (t / 1e9) }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'; }

declare -A NS
# timed KEY FUNCTION: runs FUNCTION (a loop over all N secrets) and records its wall time.
timed() {
    local key=$1 fn=$2 t0 t1
    log "$key: $N operations"
    t0=$(now_ns)
    "$fn"
    t1=$(now_ns)
    NS[$key]=$((t1 - t0))
    log "$key: $(per_op_ms "${NS[$key]}") ms/op"
}

# ---------------------------------------------------------------- machine
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
fs_type=$(df -PT "$TMP" | awk 'NR == 2 { print $2 " (" $1 ", mounted on " $7 ")" }')
echo "== tresor vs pass vs age: N=$N secrets, values 32 random bytes base64-encoded"
echo "machine: nproc=$(nproc), cpu=${cpu_model:-unknown}, kernel=$(uname -r)"
echo "temp dir: $TMP on $fs_type"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every column)"
echo "tresor: $("$TRESOR" --version) ($TRESOR)"
echo "pass: $(pass version 2>/dev/null | grep -o 'v[0-9][0-9.]*' | head -n1 || echo '?')," \
    "$(gpg --version | head -n1), age $(age --version 2>&1 | head -n1)"

# ---------------------------------------------------------------- values
log "generating $N values"
for ((i = 0; i < N; i++)); do
    head -c 32 /dev/urandom | base64 -w0 >"$TMP/vals/$i"
done

# ---------------------------------------------------------------- setup
log "generating a gpg key without passphrase"
gpg --batch --quiet --passphrase '' --quick-gen-key "bench <bench@example.invalid>" "$GPG_ALGO" default never \
    >/dev/null 2>&1
fpr=$(gpg --batch --with-colons --list-keys bench@example.invalid | awk -F: '/^fpr/ { print $10; exit }')
[[ -n $fpr ]] || die "gpg key generation failed"
gpg_algo=$(gpg --batch --with-colons --list-keys "$fpr" |
    awk -F: '/^sub/ { print ($17 != "" ? $17 : ($4 == 1 ? "rsa" $3 : "algo " $4 "/" $3 " bits")); exit }')
# Build the trust db now, not during the first timed `pass insert`.
gpg --batch --quiet --check-trustdb >/dev/null 2>&1 || true
pass init "$fpr" >"$TMP/pass-init.log" 2>&1 || { cat "$TMP/pass-init.log" >&2; die "pass init failed"; }

age-keygen -o "$TMP/age/key" 2>/dev/null
age_recipient=$(age-keygen -y "$TMP/age/key")

printf 'bench-password-%s\n' "$(head -c 18 /dev/urandom | base64 -w0)" >"$TMP/password"
chmod 600 "$TMP/password"
export TRESOR_PASSWORD_FILE=$TMP/password
t0=$(now_ns)
"$TRESOR" init >/dev/null 2>"$TMP/init.log" || { cat "$TMP/init.log" >&2; die "tresor init failed"; }
init_ms=$(ms_since "$t0")
AGENT_STARTED=1
t0=$(now_ns)
"$TRESOR" unlock 2>"$TMP/unlock.log" || { cat "$TMP/unlock.log" >&2; die "tresor unlock failed"; }
unlock_ms=$(ms_since "$t0")
# From here on every tresor command must go through the agent: a missing password file makes a
# fallback to opening the vault directly fail loudly instead of silently timing the KDF.
export TRESOR_PASSWORD_FILE=$TMP/no-password-after-unlock
"$TRESOR" status | grep -q 'unlocked (agent)' || die "the tresor agent is not unlocked"
kdf=$("$TRESOR" status | awk -F': ' '/^kdf/ { print $2 }')
echo "setup: gpg key $gpg_algo; tresor kdf $kdf; tresor init ${init_ms} ms, unlock ${unlock_ms} ms"

# ---------------------------------------------------------------- loops
tresor_set() {
    local i
    for ((i = 0; i < N; i++)); do
        "$TRESOR" set "name/$i" <"$TMP/vals/$i" 2>>"$TMP/tresor-set.log"
    done
}
tresor_get() {
    local i
    for ((i = 0; i < N; i++)); do
        "$TRESOR" get "name/$i" >/dev/null
    done
}
pass_set() {
    local i
    for ((i = 0; i < N; i++)); do
        pass insert -m "name/$i" <"$TMP/vals/$i" >/dev/null
    done
}
pass_get() {
    local i
    for ((i = 0; i < N; i++)); do
        pass show "name/$i" >/dev/null
    done
}
age_set() {
    local i
    for ((i = 0; i < N; i++)); do
        age -r "$age_recipient" -o "$TMP/age/name/$i.age" <"$TMP/vals/$i"
    done
}
age_get() {
    local i
    for ((i = 0; i < N; i++)); do
        age -d -i "$TMP/age/key" "$TMP/age/name/$i.age" >/dev/null
    done
}

# Transit encryption (issue 5) beside age, the tool users pick to encrypt a file: the same N
# values through `tresor encrypt`/`decrypt` (named key, the agent holds it) and `age -r`/`age -d`.
mkdir -p "$TMP/tx"
tresor_enc() {
    local i
    for ((i = 0; i < N; i++)); do
        "$TRESOR" encrypt bench <"$TMP/vals/$i" >"$TMP/tx/$i.tx"
    done
}
tresor_dec() {
    local i
    for ((i = 0; i < N; i++)); do
        "$TRESOR" decrypt bench "$TMP/tx/$i.tx" >/dev/null
    done
}

# The physical floor, measured in the same run: starting a process that does nothing (a C
# hello-world), the whole CLI's start-up (`tresor-cli --version`; `get` and `set` through the agent
# are served by the small `tresor` front without it), and one durable create of a small file
# on the vault's filesystem (open O_EXCL, write, fsync the file, fsync its directory).
cat >"$TMP/floor.c" <<'C'
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc < 4) { puts("hello"); return 0; }
    int n = atoi(argv[2]), dir = open(argv[1], O_RDONLY | O_DIRECTORY);
    char name[64], buf[64];
    memset(buf, 7, sizeof buf);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s-%d", argv[3], i);
        int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0 || write(fd, buf, sizeof buf) != sizeof buf || fsync(fd) || close(fd) || fsync(dir)) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.0f\n", (b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec));
    return 0;
}
C
HAVE_FLOOR=0
if command -v cc >/dev/null 2>&1 && cc -O2 -o "$TMP/floor" "$TMP/floor.c" 2>/dev/null; then HAVE_FLOOR=1; fi
floor_hello() {
    local i
    for ((i = 0; i < N; i++)); do "$TMP/floor" >/dev/null; done
}
tresor_version() {
    local i
    for ((i = 0; i < N; i++)); do "$TRESOR_CLI" --version >/dev/null; done
}
if ((HAVE_FLOOR)); then
    timed floor_hello floor_hello
    mkdir -p "$TMP/store/floor"
    NS[floor_create]=$("$TMP/floor" "$TMP/store/floor" "$N" f) || die "the durable-create floor failed"
fi
timed tresor_version tresor_version

timed tresor_set tresor_set
timed pass_set pass_set
timed age_set age_set
timed tresor_get tresor_get
timed pass_get pass_get
timed age_get age_get
timed tresor_enc tresor_enc
timed tresor_dec tresor_dec
for ((i = 0; i < SPOT && i < N; i++)); do
    "$TRESOR" decrypt bench "$TMP/tx/$i.tx" | cmp -s - "$TMP/vals/$i" || die "MISMATCH: tresor decrypt $i"
done
# One 64 MiB file each way (tresor's transit limit).
head -c $((64 << 20)) /dev/urandom >"$TMP/big"
t0=$(now_ns); "$TRESOR" encrypt bench "$TMP/big" >"$TMP/big.tx"; NS[big_tresor_enc]=$(($(now_ns) - t0))
t0=$(now_ns); "$TRESOR" decrypt bench "$TMP/big.tx" | cmp -s - "$TMP/big" || die "MISMATCH: 64 MiB"; NS[big_tresor_dec]=$(($(now_ns) - t0))
t0=$(now_ns); age -r "$age_recipient" -o "$TMP/big.age" "$TMP/big"; NS[big_age_enc]=$(($(now_ns) - t0))
t0=$(now_ns); age -d -i "$TMP/age/key" "$TMP/big.age" | cmp -s - "$TMP/big" || die "MISMATCH: age 64 MiB"; NS[big_age_dec]=$(($(now_ns) - t0))

if grep -v ': version 1$' "$TMP/tresor-set.log" | grep -q .; then
    grep -v ': version 1$' "$TMP/tresor-set.log" | head -n5 >&2
    die "unexpected output from tresor set (see above)"
fi

# ---------------------------------------------------------------- correctness
count=$((SPOT < N ? SPOT : N))
bad=0
log "spot-checking $count random secrets"
while read -r i; do
    "$TRESOR" get "name/$i" | cmp -s - "$TMP/vals/$i" || {
        echo "MISMATCH: tresor name/$i" >&2
        bad=$((bad + 1))
    }
    pass show "name/$i" | cmp -s - "$TMP/vals/$i" || {
        echo "MISMATCH: pass name/$i" >&2
        bad=$((bad + 1))
    }
    age -d -i "$TMP/age/key" "$TMP/age/name/$i.age" | cmp -s - "$TMP/vals/$i" || {
        echo "MISMATCH: age name/$i" >&2
        bad=$((bad + 1))
    }
done < <(if ((count > 0)); then shuf -n "$count" -i "0-$((N - 1))"; fi)
listed=$("$TRESOR" list name/ | wc -l)
((listed == N)) || {
    echo "MISMATCH: tresor lists $listed secrets, expected $N" >&2
    bad=$((bad + 1))
}
((bad == 0)) || die "correctness check failed ($bad mismatches)"
echo "correctness: $count random secrets read back equal from tresor, pass and age; tresor lists $listed"

# ---------------------------------------------------------------- hyperfine sample
if ((HAVE_HF)); then
    log "hyperfine sample ($HF_RUNS runs each)"
    hf_args=(--warmup 5 --runs "$HF_RUNS" --style basic --export-markdown "$TMP/hf.md")
    if hyperfine -N --runs 1 true >/dev/null 2>&1; then hf_args+=(-N); fi
    if hyperfine "${hf_args[@]}" \
        -n "tresor get" "$TRESOR get name/0" \
        -n "pass show" "pass show name/0" \
        -n "age -d" "age -d -i $TMP/age/key $TMP/age/name/0.age" >"$TMP/hf.log" 2>&1; then
        echo
        echo "hyperfine sample (one secret, $HF_RUNS runs each):"
        cat "$TMP/hf.md"
    else
        log "hyperfine failed (ignored):"
        cat "$TMP/hf.log" >&2
    fi
fi

# ---------------------------------------------------------------- report
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %14s %12s %11s %12s %11s %14s %12s %11s\n' \
    op 'tresor(ms/op)' 'pass(ms/op)' 'age(ms/op)' 'pass/tresor' 'age/tresor' \
    'tresor(ops/s)' 'pass(ops/s)' 'age(ops/s)'
for op in set get; do
    t=${NS[tresor_$op]} p=${NS[pass_$op]} a=${NS[age_$op]}
    printf '%-4s %14s %12s %11s %12s %11s %14s %12s %11s\n' "$op" \
        "$(per_op_ms "$t")" "$(per_op_ms "$p")" "$(per_op_ms "$a")" \
        "$(ratio "$p" "$t")" "$(ratio "$a" "$t")" \
        "$(ops_per_s "$t")" "$(ops_per_s "$p")" "$(ops_per_s "$a")"
done
echo
printf '%-16s %14s %11s %11s\n' op 'tresor(ms/op)' 'age(ms/op)' 'age/tresor'
printf '%-16s %14s %11s %11s\n' "encrypt 32 B" "$(per_op_ms "${NS[tresor_enc]}")" "$(per_op_ms "${NS[age_set]}")" \
    "$(ratio "${NS[age_set]}" "${NS[tresor_enc]}")"
printf '%-16s %14s %11s %11s\n' "decrypt 32 B" "$(per_op_ms "${NS[tresor_dec]}")" "$(per_op_ms "${NS[age_get]}")" \
    "$(ratio "${NS[age_get]}" "${NS[tresor_dec]}")"
ms() { awk -v t="$1" 'BEGIN { printf "%.0f", t / 1e6 }'; }
printf '%-16s %14s %11s %11s\n' "encrypt 64 MiB" "$(ms "${NS[big_tresor_enc]}")" "$(ms "${NS[big_age_enc]}")" \
    "$(ratio "${NS[big_age_enc]}" "${NS[big_tresor_enc]}")"
printf '%-16s %14s %11s %11s\n' "decrypt 64 MiB" "$(ms "${NS[big_tresor_dec]}")" "$(ms "${NS[big_age_dec]}")" \
    "$(ratio "${NS[big_age_dec]}" "${NS[big_tresor_dec]}")"
echo "(tresor encrypt/decrypt: transit keys through the agent; age: X25519 recipient, file in and out)"
echo
if ((HAVE_FLOOR)); then
    echo
    echo "floor (same run): a C hello-world process $(per_op_ms "${NS[floor_hello]}") ms, tresor-cli --version" \
        "$(per_op_ms "${NS[tresor_version]}") ms ($(ratio "${NS[tresor_version]}" "${NS[floor_hello]}")x the C process)," \
        "one durable create $(per_op_ms "${NS[floor_create]}") ms"
    echo "tresor get = $(ratio "${NS[tresor_get]}" "${NS[floor_hello]}")x a bare process;" \
        "tresor set = $(ratio "${NS[tresor_set]}" "$((NS[floor_hello] + NS[floor_create]))")x a bare process plus one durable create"
fi
echo "BENCH: get ratio pass/tresor = $(ratio "${NS[pass_get]}" "${NS[tresor_get]}");" \
    "set ratio = $(ratio "${NS[pass_set]}" "${NS[tresor_set]}")"
