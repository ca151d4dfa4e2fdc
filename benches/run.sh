#!/usr/bin/env bash
# The benchmark suite (issue 5): builds the release binary, then runs every
# figure next to its baseline in the same run and prints medians and ratios.
#
#   benches/run.sh            full run (~18 min on 2 cores; P4 and P6 in three repository
#                             formats); updates BENCHMARKS.md
#   benches/run.sh --quick    fewer repetitions, smaller sizes (~2 min); writes
#                             target/bench/BENCHMARKS-quick.md, leaves BENCHMARKS.md alone
#
# Other flags go to benches/bench.py: --only P1,P4  --keep  --tmpdir DIR.
# A run with --only writes its figures to a block of their own (after the full
# run's table), so it never erases the other figures' results; the next full
# run measures them with the others and removes that block.
# Everything runs in a scratch directory with its own HOME, XDG_* and git
# configuration; nothing outside it (and target/) is touched.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "benches/run.sh: '$1' is required: $2" >&2
    exit 2
  }
}
need git "apt-get install git"
need python3 "apt-get install python3 (the driver uses only the standard library)"
need cargo "https://rustup.rs"
need xargs "apt-get install findutils (P6's baseline)"
# Optional: the hook's peak RSS (P7) is read through GNU time; without it that
# one figure is skipped with a note.
[ -x /usr/bin/time ] || echo "benches/run.sh: /usr/bin/time not found (apt-get install time): P7's hook RSS will be skipped" >&2
# Optional: P8 (Git LFS) runs git-lfs, as the worker does; without it P8 is
# skipped with a note.
git lfs version >/dev/null 2>&1 || echo "benches/run.sh: git-lfs not found (apt-get install git-lfs): P8 will be skipped" >&2

quick=false
for arg in "$@"; do
  [ "$arg" = "--quick" ] && quick=true
done

echo "==> cargo build --release"
(cd "$here" && cargo build --release)

# A quick run is a smoke test of the suite and a rough picture: it must not
# replace the full results that BENCHMARKS.md documents.
if $quick; then
  report="$here/target/bench/BENCHMARKS-quick.md"
  json="$here/target/bench/results-quick.json"
else
  report="$here/BENCHMARKS.md"
  json="$here/target/bench/results.json"
fi
mkdir -p "$here/target/bench"

echo "==> benches/bench.py $*"
exec python3 "$here/benches/bench.py" \
  --bin "$here/target/release/git-push-mirror" \
  --write "$report" --json "$json" \
  --command-line "benches/run.sh${*:+ $*}" \
  "$@"
