#!/bin/sh
# Builds the Debian package: the release binary, the generated man pages and
# completions (packaging/deb-assets.sh), then `cargo deb` with the metadata in
# Cargo.toml ([package.metadata.deb]). Needs cargo-deb (`cargo install
# cargo-deb`) and dpkg-dev. Prints the path of the .deb on its last line.
#
#   packaging/build-deb.sh && sudo dpkg -i target/debian/git-push-mirror_*.deb
set -eu
cd "$(dirname "$0")/.."
echo "==> building the release binary (about two minutes from scratch on 2 cores)" >&2
cargo build --release --locked
echo "==> generating man pages and shell completions" >&2
packaging/deb-assets.sh target/release/git-push-mirror >&2
echo "==> cargo deb" >&2
cargo deb --no-build --locked
