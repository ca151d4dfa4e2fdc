#!/bin/bash
# Counts the fsyncs and renames one update per repository costs (the shape of P6): N repositories
# with a file:// mirror each, one pushed commit spooled per repository, then one `run --wait`
# under strace; the worker's own calls are counted apart from its git children's.
# Usage: benches/count-fsyncs.sh path/to/git-push-mirror [N]    (needs strace, git, python3)
set -e
BIN=$1; N=${2:-50}
W=$(mktemp -d /tmp/fsync-count.XXXXXX); cd $W
export HOME=$W/home XDG_CONFIG_HOME=$W/home/.config XDG_STATE_HOME=$W/home/.local/state GIT_CONFIG_NOSYSTEM=1
mkdir -p $HOME $XDG_CONFIG_HOME/git-push-mirror
git config --global user.name T; git config --global user.email t@e; git config --global init.defaultBranch main
printf '[defaults]\ndelay = "0s"\n' > $XDG_CONFIG_HOME/git-push-mirror/config.toml
for i in $(seq 1 $N); do
  git init -q --bare up$i.git; git init -q --bare mirror$i.git
  printf 'commit refs/heads/main\ncommitter T <t@e> 1700000000 +0000\ndata 2\na\nM 100644 inline f\ndata 2\na\n\n' | git -C up$i.git fast-import --quiet
  $BIN add $W/up$i.git m file://$W/mirror$i.git >/dev/null 2>&1
done
$BIN run --wait
for i in $(seq 1 $N); do
  old=$(git -C up$i.git rev-parse main)
  new=$(git -C up$i.git commit-tree -p $old -m b "$(git -C up$i.git rev-parse 'main^{tree}')")
  git -C up$i.git update-ref refs/heads/main $new
  (cd up$i.git && echo "$old $new refs/heads/main" | GIT_DIR=. $BIN hook post-receive --no-worker)
done
strace -f -e trace=fsync,fdatasync,rename,renameat,renameat2,execve -o $W/strace.txt $BIN run --wait
python3 - $W/strace.txt $N <<'PY'
import re, sys, collections
lines = open(sys.argv[1]).read().splitlines()
n = int(sys.argv[2])
execs = [m.group(1) for l in lines if (m := re.match(r'(\d+)\s+execve\(', l))]
children = set(execs[1:]) - {execs[0]}  # the first is the worker itself, started by strace
ours, git = collections.Counter(), collections.Counter()
for l in lines:
    m = re.match(r'(\d+)\s+(fsync|fdatasync|rename|renameat2?)\(', l)
    if m:
        (git if m.group(1) in children else ours)[m.group(2)] += 1
print(f"worker, per repository: " + ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(ours.items())))
print(f"git children, per repository: " + ", ".join(f"{k} {v / n:.1f}" for k, v in sorted(git.items())))
PY
for i in $(seq 1 $N); do [ "$(git -C mirror$i.git rev-parse main)" = "$(git -C up$i.git rev-parse main)" ] || echo "mirror $i differs"; done
echo "state files of one repository: $(find $XDG_STATE_HOME/git-push-mirror/state/repos -mindepth 1 -maxdepth 1 | head -1 | xargs -I{} find {} -type f | wc -l)"
rm -rf $W
