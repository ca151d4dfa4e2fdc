#!/bin/sh
# Builds git-push-mirror as one self-contained executable (glibc linked in, a
# static-pie) for machines and containers without glibc, such as the Alpine-based
# official Gitea and Forgejo images (docs/hosts.md: "Gitea and Forgejo", "In a container").
# It needs nothing beyond the usual Rust toolchain. Prints the binary's path.
#
#   scripts/build-static.sh               builds for this machine's architecture
#   TARGET=aarch64-unknown-linux-gnu scripts/build-static.sh
#
# Extra arguments go to `cargo build` (e.g. --locked). The explicit --target is
# what keeps build scripts and proc-macros (which cannot be static) out of the
# static flags, and the result out of target/release:
#   target/<TARGET>/release/git-push-mirror
set -eu
cd "$(dirname "$0")/.."

target=${TARGET:-$(rustc -vV | sed -n 's/^host: //p')}
case $target in
  *-linux-gnu) ;;
  *)
    echo "scripts/build-static.sh: $target is not a *-linux-gnu target; set TARGET, e.g. TARGET=x86_64-unknown-linux-gnu" >&2
    exit 2
    ;;
esac

RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static" \
  cargo build --release --target "$target" "$@"

binary=target/$target/release/git-push-mirror
# A binary that still names a dynamic loader would fail in a root without glibc
# with a bare "No such file or directory": refuse it here instead.
if LC_ALL=C readelf -l "$binary" 2>/dev/null | grep -q 'Requesting program interpreter'; then
  echo "scripts/build-static.sh: $binary is dynamically linked: crt-static did not apply (is CARGO_ENCODED_RUSTFLAGS set?)" >&2
  exit 1
fi
echo "$binary"
