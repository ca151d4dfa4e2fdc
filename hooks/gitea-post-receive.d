#!/bin/sh
# git-push-mirror's hook for Gitea and Forgejo, for installing by hand.
#
# `git-push-mirror install --gitea REPO` writes an equivalent file (with the
# absolute path of the binary). To install this one yourself, copy it to
# REPO/hooks/post-receive.d/git-push-mirror and make it executable:
#
#   install -m 755 hooks/gitea-post-receive.d REPO/hooks/post-receive.d/git-push-mirror
#
# Gitea's own REPO/hooks/post-receive reads the push's input once and replays it
# to every executable in post-receive.d/ (its own `gitea` script among them), so
# neither Gitea's files nor its "Resynchronize hooks" action are in the way.
# `git-push-mirror` must be on the PATH of the user Gitea runs as. It records
# the pushed refs and returns at once; it never fails a push.
exec git-push-mirror hook post-receive
