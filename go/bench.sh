#!/usr/bin/env bash
# The Go benchmark of docs/BENCHMARKS.md ("From Go"): go/benchmark/bench_test.go run against
# Go bbolt 1.3.6 (Debian's golang-github-coreos-bbolt-dev) and against this repository's
# package (deadbolt through its C ABI), one after the other on the same machine. Prints a
# markdown table of medians (of COUNT runs, default 3).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$repo/target}"
bbolt="${BBOLT_SRC:-/usr/share/gocode/src/go.etcd.io/bbolt}"
xsys="${XSYS_SRC:-/usr/share/gocode/src/golang.org/x/sys}"
count="${COUNT:-3}"
(cd "$repo" && cargo build --release -p deadbolt-capi)
export CGO_CFLAGS="-I$repo/capi/include" CGO_LDFLAGS="-L$target/release"
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
[ -n "${HOME:-}" ] || export GOCACHE="${GOCACHE:-/tmp/deadbolt-gocache}"

# name, -benchtime, what one op is
benches="PointRead 300000x one_random_Get_(1000_per_read_transaction)
RangeScan 20000x one_Seek_plus_100_Next
BatchWrite 30x one_durable_transaction_of_1000_new_keys
DurableCommit 300x one_durable_transaction_of_one_new_key
ConcurrentBatch 3000x one_DB.Batch_call_of_one_key,_8_goroutines
Call 3000000x Bucket.Sequence_(a_call_that_does_nothing:_the_crossing)"

scratch="$here/.bench"
rm -rf "$scratch"
for impl in bbolt deadbolt; do
  d="$scratch/$impl"
  mkdir -p "$d"
  cp "$here/benchmark/bench_test.go" "$d/"
  if [ "$impl" = bbolt ]; then dest="$bbolt"; else dest="$here"; fi
  cat > "$d/go.mod" <<MOD
module benchrun

go 1.19

require go.etcd.io/bbolt v1.3.6
require golang.org/x/sys v0.0.0
replace go.etcd.io/bbolt => $dest
replace golang.org/x/sys => $xsys
MOD
  (cd "$d" && go test -c -o bench.test . )
done

median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "| Workload (one op) | Go bbolt 1.3.6 ns/op | deadbolt from Go ns/op | deadbolt ÷ bbolt (time; < 1 is faster) |"
echo "|---|---:|---:|---:|"
while read -r name n what; do
  declare -A res=()
  for impl in bbolt deadbolt; do
    d="$scratch/$impl"
    out="$(cd "$d" && ./bench.test -test.run '^$' -test.bench "^Benchmark${name}\$" -test.benchtime "$n" -test.count "$count")"
    echo "$out" >> "$scratch/$impl.log"
    res[$impl]="$(echo "$out" | awk '/^Benchmark/ {print $3}' | median)"
  done
  ratio="$(awk -v a="${res[deadbolt]}" -v b="${res[bbolt]}" 'BEGIN {printf "%.2f", a / b}')"
  echo "| $name: ${what//_/ } | ${res[bbolt]} | ${res[deadbolt]} | $ratio |"
done <<< "$benches"
echo
echo "go: $(go version | cut -d' ' -f3-); $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg); logs in $scratch/*.log"
