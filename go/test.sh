#!/usr/bin/env bash
# The Go side of deadbolt, as CI runs it: build the C ABI, vet the package, run the seed
# example (moby/moby#49074 from Go), then bbolt 1.3.6's own black-box tests (bbolt-tests.sh).
# Needs go (1.19+) and, for the bbolt tests, Debian's golang-github-coreos-bbolt-dev.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
target="${CARGO_TARGET_DIR:-$repo/target}"
(cd "$repo" && cargo build --release -p deadbolt-capi)
export CGO_CFLAGS="-I$repo/capi/include" CGO_LDFLAGS="-L$target/release"
export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GOTOOLCHAIN=local
[ -n "${HOME:-}" ] || export GOCACHE="${GOCACHE:-/tmp/deadbolt-gocache}"
cd "$here"
go vet . ./examples/... ./benchmark/...
go test -count=1 .
test -z "$(gofmt -l $(ls *.go) examples)" || { gofmt -l $(ls *.go) examples; echo "gofmt: files above need formatting"; exit 1; }
go run ./examples/volumes
"$here/bbolt-tests.sh"
