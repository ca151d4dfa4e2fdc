#!/bin/sh
# Builds the Debian package: the release binary, the generated man pages and
# completions (packaging/deb-assets.sh), then `cargo deb` with the metadata in
# Cargo.toml ([package.metadata.deb]). Needs cargo-deb (`cargo install
# cargo-deb`) and dpkg-dev. Prints the path of the .deb on its last line.
#
#   packaging/build-deb.sh && sudo dpkg -i target/debian/git-push-mirror_*.deb
set -eu
cd "$(dirname "$0")/.."
# Before the long build: what `cargo deb` needs.
missing=
cargo deb --version >/dev/null 2>&1 || missing="$missing cargo-deb (cargo install cargo-deb --locked)"
command -v dpkg-shlibdeps >/dev/null 2>&1 || missing="$missing dpkg-dev (apt-get install dpkg-dev)"
if [ -n "$missing" ]; then
  echo "packaging/build-deb.sh: missing:$missing" >&2
  exit 2
fi
echo "==> building the release binary (about two minutes from scratch on 2 cores)" >&2
cargo build --release --locked
echo "==> generating man pages and shell completions" >&2
packaging/deb-assets.sh target/release/git-push-mirror >&2
echo "==> cargo deb" >&2
cargo deb --no-build --locked
