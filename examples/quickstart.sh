#!/usr/bin/env bash
# One-command quickstart: mirror a local bare repository to a local mirror.
# No network, no root, nothing outside a temporary directory is touched.
#
#   examples/quickstart.sh
#
# It builds git-push-mirror, creates upstream.git and mirror.git, adds the
# mirror, installs the hook, makes a real `git push`, waits for the mirror to
# catch up (printing how long that took) and shows `status`.
#
# With GIT_PUSH_MIRROR_BIN set (e.g. /usr/bin/git-push-mirror from the Debian
# package), or run from outside a source tree with git-push-mirror on PATH, it
# uses that binary and builds nothing.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${GIT_PUSH_MIRROR_BIN:-}" ]; then
  bin=$GIT_PUSH_MIRROR_BIN
elif [ -f "$here/Cargo.toml" ]; then
  echo "==> building git-push-mirror (release): about two minutes the first time on 2 cores, seconds after that"
  cargo build --release --manifest-path "$here/Cargo.toml"
  bin="$here/target/release/git-push-mirror"
else
  bin=$(command -v git-push-mirror) || { echo "git-push-mirror is not on PATH; set GIT_PUSH_MIRROR_BIN" >&2; exit 2; }
fi
echo "==> using $bin ($("$bin" --version))"

demo=$(mktemp -d "${TMPDIR:-/tmp}/git-push-mirror-quickstart.XXXXXX")
# Keep the demo's spool, state and configuration inside the demo directory, whatever the
# machine's /etc/git-push-mirror/config.toml says (the demo has no system file of its own).
export XDG_STATE_HOME="$demo/state" XDG_CONFIG_HOME="$demo/config"
export GIT_PUSH_MIRROR_SYSTEM_CONFIG="$demo/etc/config.toml"
unset GIT_PUSH_MIRROR_CONFIG
export GIT_CONFIG_GLOBAL="$demo/gitconfig" GIT_CONFIG_NOSYSTEM=1
git config --global user.name "Quickstart" && git config --global user.email "quickstart@example.com"
git config --global init.defaultBranch main

echo "==> creating $demo/upstream.git and $demo/mirror.git"
git init --quiet --bare "$demo/upstream.git"
git init --quiet --bare "$demo/mirror.git"

echo "==> git-push-mirror add / install"
"$bin" add "$demo/upstream.git" backup "file://$demo/mirror.git"
"$bin" install "$demo/upstream.git"

echo "==> a real git push to upstream.git"
git clone --quiet "$demo/upstream.git" "$demo/work" 2>/dev/null
cd "$demo/work"
echo "hello, mirror" > README
git add README && git commit --quiet -m "first commit"
git tag -a v1.0 -m "first release"
start=$(date +%s%N)
git push --quiet origin main v1.0
pushed=$(date +%s%N)
echo "    git push returned after $(( (pushed - start) / 1000000 )) ms"

want=$(git rev-parse HEAD)
for _ in $(seq 1 3000); do   # a deadline of 30 s, not a measurement
  got=$(git --git-dir="$demo/mirror.git" rev-parse --verify --quiet refs/heads/main || true)
  [ "$got" = "$want" ] && break
  sleep 0.01
done
done_at=$(date +%s%N)
if [ "$got" != "$want" ]; then
  echo "the mirror did not catch up; see $XDG_STATE_HOME/git-push-mirror/git-push-mirror.log" >&2
  exit 1
fi
echo "    mirror.git had the push $(( (done_at - pushed) / 1000000 )) ms after git push returned"

echo "==> git-push-mirror status"
sleep 0.2
"$bin" status "$demo/upstream.git"
echo
echo "mirror.git now has:"
git --git-dir="$demo/mirror.git" for-each-ref --format='    %(refname) %(objectname:short)'
echo "(demo files are in $demo)"
