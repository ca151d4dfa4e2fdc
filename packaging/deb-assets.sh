#!/bin/sh
# Generates what the Debian package ships but the repository does not hold: the
# man pages (one per subcommand, and git-push-mirror.toml(5) for the
# configuration files) and the bash, zsh and fish completions, all from the
# binary given (default: the release build). `packaging/build-deb.sh` runs it
# before `cargo deb`.
#
#   packaging/deb-assets.sh [BINARY [DIR]]      # writes DIR, default target/deb-assets/
set -eu
cd "$(dirname "$0")/.."
bin=${1:-target/release/git-push-mirror}
out=${2:-target/deb-assets}
rm -rf "$out"
mkdir -p "$out/man" "$out/man5" "$out/completions"
"$bin" man --dir "$out/man" >/dev/null
"$bin" man --section 5 --dir "$out/man5" >/dev/null
"$bin" completions bash > "$out/completions/git-push-mirror.bash"
"$bin" completions zsh > "$out/completions/_git-push-mirror"
"$bin" completions fish > "$out/completions/git-push-mirror.fish"
echo "wrote $(ls "$out/man" "$out/man5" | grep -c '\.[15]$') man pages and 3 completion scripts into $out"
