#!/usr/bin/env bash
# The harness's mutation score: apply each engine mutant to a copy of HEAD, run tier 1 and a
# fixed-seed torture run, and print which invariant caught it and how fast.
#
#   fault-injection/mutants/run.sh                 # every mutants/*.patch
#   fault-injection/mutants/run.sh 05 13           # the mutants whose names start so
#
# Per mutant: a scratch git worktree of HEAD (reused, reset between mutants) with the patch
# applied; tier 1 = `cargo test --release -p fault-injection --no-fail-fast` (every test
# binary of the harness, two test threads); then `torture --seed 1 --duration 60s
# --stop-on-violation` (one worker, one core). A mutant is caught when either reports a
# violation (or a tier-1 test fails). Results go to stdout, one line per mutant, and the logs
# to $MUTANT_LOGS (default /tmp/deadbolt-mutants). Set CARGO_TARGET_DIR to share a build
# directory between runs (default: $MUTANT_LOGS/target).
set -u
here=$(cd "$(dirname "$0")" && pwd)
repo=$(git -C "$here" rev-parse --show-toplevel)
logs=${MUTANT_LOGS:-/tmp/deadbolt-mutants}
wt="$logs/worktree"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$logs/target}
mkdir -p "$logs"
if [ ! -d "$wt" ]; then
    git -C "$repo" worktree add --detach "$wt" HEAD -q
fi
git -C "$wt" checkout -q --detach "$(git -C "$repo" rev-parse HEAD)"

patches=()
if [ $# -eq 0 ]; then
    patches=("$here"/*.patch)
else
    for p in "$@"; do patches+=("$here/$p"*.patch); done
fi

# The first invariant tag (I1..I12, P1, P2, COVERAGE) in a log's first violation or failure.
# Without one (a check of the harness's own, such as a backup copy that does not open), the
# first words of the message.
tag() {
    local first t
    first=$({ grep -a -m1 -E 'VIOLATION|COVERAGE' "$1" || grep -a -m1 -A1 'panicked' "$1" | tail -1; })
    t=$(echo "$first" | grep -oE '\b(I[0-9]+(/I[0-9]+)?|P[12]( \(batch\))?|COVERAGE)\b' | head -1)
    if [ -z "$t" ]; then
        case "$first" in
        VIOLATION*) t=$(echo "$first" | sed -E 's/.*\): //; s/^[^:]*: //' | cut -c1-40) ;;
        *) t=$(echo "$first" | sed -E 's/^ +//' | cut -c1-40) ;;
        esac
    fi
    echo "$t"
}

printf '%-34s | %-34s | %s\n' mutant "tier 1" "torture (seed 1, <= 60 s)"
caught=0
for p in "${patches[@]}"; do
    name=$(basename "$p" .patch)
    git -C "$wt" checkout -q -- . && git -C "$wt" clean -qfd
    if ! git -C "$wt" apply "$p"; then
        printf '%-34s | %s\n' "$name" "patch does not apply to HEAD"
        continue
    fi
    t1log="$logs/$name.tier1.log"
    start=$(date +%s)
    (cd "$wt" && cargo test --release -p fault-injection --no-fail-fast -- --nocapture) \
        >"$t1log" 2>&1
    t1=$?
    secs=$(($(date +%s) - start))
    failed=$(grep -cE '^test .* FAILED$' "$t1log")
    if [ "$t1" -ne 0 ] && grep -q 'could not compile' "$t1log"; then
        r1="does not build"
    elif [ "$t1" -ne 0 ]; then
        first=$(grep -m1 -E '^test .* FAILED$' "$t1log" | awk '{print $2}')
        r1="caught: $(tag "$t1log") ($failed tests, $first; ${secs}s)"
    else
        r1="missed (${secs}s)"
    fi
    t2log="$logs/$name.torture.log"
    "$CARGO_TARGET_DIR/release/fault-injection" torture --seed 1 --duration 60s \
        --stop-on-violation >"$t2log" 2>&1
    t2=$?
    last=$(grep -E '^torture seed' "$t2log" | tail -1)
    tsecs=$(echo "$last" | grep -oE 'in [0-9.]+s' | head -1)
    tcases=$(echo "$last" | grep -oE '[0-9]+ cases' | head -1)
    if [ "$t2" -ne 0 ]; then
        r2="caught: $(tag "$t2log") ($tcases, $tsecs)"
    else
        r2="missed ($tcases, $tsecs)"
    fi
    case "$r1$r2" in *caught*) caught=$((caught + 1)) ;; esac
    printf '%-34s | %-34s | %s\n' "$name" "$r1" "$r2"
done
git -C "$wt" checkout -q -- .
echo "$caught of ${#patches[@]} mutants caught"
