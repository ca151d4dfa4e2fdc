#!/bin/sh
# Generates what the Debian package ships but the repository does not hold: the
# man pages (one per subcommand) and the bash, zsh and fish completions, all
# from the command-line definition of the binary given (default: the release
# build). `packaging/build-deb.sh` runs it before `cargo deb`.
#
#   packaging/deb-assets.sh [BINARY [DIR]]      # writes DIR, default target/deb-assets/
set -eu
cd "$(dirname "$0")/.."
bin=${1:-target/release/git-push-mirror}
out=${2:-target/deb-assets}
rm -rf "$out"
mkdir -p "$out/man" "$out/completions"
"$bin" man --dir "$out/man" >/dev/null
"$bin" completions bash > "$out/completions/git-push-mirror.bash"
"$bin" completions zsh > "$out/completions/_git-push-mirror"
"$bin" completions fish > "$out/completions/git-push-mirror.fish"
echo "wrote $(ls "$out/man" | wc -l) man pages and 3 completion scripts into $out"
