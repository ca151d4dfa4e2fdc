//! Every configuration key, with an example value, its default and what it means: one table beside
//! the serde types that parse the files (`raw.rs`, [`super::MirrorKeys`]). The configuration's man
//! page (`git-push-mirror man --section 5`) is generated from it, and the tests (`keys/tests.rs`) check that
//! every key the parser accepts has a row (and every row a key), that each example parses, and
//! which keys `[defaults]` takes, so the reference cannot drift from the parser: a key added
//! without its row fails a test.

/// Where a key is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// The global file's top level (`config.toml`).
    Global,
    /// The global file's `[retry]`.
    Retry,
    /// The global file's `[notify]`: who is told when mirrors fail.
    Notify,
    /// A `[mirror.NAME]` table, in a repository's `push-mirror.toml` or the global file (a fleet
    /// mirror); most also in the global `[defaults]` (see [`KeyDoc::in_defaults`]).
    Mirror,
    /// A repository's `push-mirror.toml`, top level.
    Repo,
}

/// One key: where it goes, an example, its default, what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyDoc {
    pub table: Table,
    pub key: &'static str,
    /// A valid value, as TOML (empty for a key that holds tables).
    pub example: &'static str,
    pub default: &'static str,
    pub meaning: &'static str,
    /// For [`Table::Mirror`] keys: whether the global `[defaults]` may set it for every mirror.
    pub in_defaults: bool,
}

const fn key(
    table: Table,
    key: &'static str,
    example: &'static str,
    default: &'static str,
    meaning: &'static str,
) -> KeyDoc {
    KeyDoc {
        table,
        key,
        example,
        default,
        meaning,
        in_defaults: matches!(table, Table::Mirror),
    }
}

/// A [`Table::Mirror`] key that belongs to one mirror only, never to `[defaults]`.
const fn own(key_name: &'static str, example: &'static str, default: &'static str, meaning: &'static str) -> KeyDoc {
    KeyDoc {
        in_defaults: false,
        ..key(Table::Mirror, key_name, example, default, meaning)
    }
}

use Table::{Global, Mirror, Notify, Repo, Retry};

/// Every key of every configuration file, in the order the man page gives them.
pub const KEYS: &[KeyDoc] = &[
    key(
        Global,
        "spool_dir",
        "\"/var/spool/git-push-mirror\"",
        "$XDG_STATE_HOME/git-push-mirror/spool",
        "Where hooks record pushes for the worker. The user pushes run as must be able to write it (`git-push-mirror check` says so).",
    ),
    key(
        Global,
        "state_dir",
        "\"/var/lib/git-push-mirror\"",
        "$XDG_STATE_HOME/git-push-mirror/state",
        "Each mirror's state, registered repositories, stored secrets and keys.",
    ),
    key(
        Global,
        "log_file",
        "\"/var/log/git-push-mirror/git-push-mirror.log\"",
        "$XDG_STATE_HOME/git-push-mirror/git-push-mirror.log",
        "The log of workers started by hooks and of `run` without a terminal; reopened when logrotate renames it, so its directory must be writable by the user pushes run as.",
    ),
    key(
        Global,
        "log_level",
        "\"info\"",
        "\"info\"",
        "One of error, warn, info, debug, trace, off.",
    ),
    key(
        Global,
        "silent_mode",
        "false",
        "false",
        "Hooks keep recording pushes, but nothing is pushed until it is turned off again.",
    ),
    key(
        Global,
        "max_parallel",
        "4",
        "4",
        "Mirror updates at once, across all repositories.",
    ),
    key(
        Global,
        "allowed_protocols",
        "[\"https\", \"ssh\"]",
        "[\"https\", \"ssh\", \"git\", \"file\", \"http\"]",
        "The transports mirrors may use; ext::, fd:: and other remote helpers are never allowed.",
    ),
    key(
        Global,
        "repos_root",
        "\"/home/git/repositories\"",
        "none",
        "The tree of repositories fleet mirrors apply to ({name} in their URLs is a repository's path under it, without .git), which `run` scans.",
    ),
    key(
        Global,
        "worker_linger",
        "\"60s\"",
        "\"60s\"",
        "How long a worker waits for due retries before leaving them to cron.",
    ),
    key(
        Global,
        "claim_timeout",
        "\"10m\"",
        "\"10m\"",
        "On a spool and state shared by several hosts: how long a host's claimed spool entries and mirror locks stay its own without being renewed (a live worker renews them every quarter of it); then another host takes them over. At least 1s.",
    ),
    key(
        Global,
        "shared_group",
        "\"git\"",
        "none",
        "A group whose members may share the spool and state directories: they may then be owned by that group and writable by it (never by others), and repositories owned by its members are trusted. Without it, both must be owned by the worker's user and writable by nobody else.",
    ),
    key(
        Global,
        "warn_pushers",
        "true",
        "true",
        "The hook prints one line per failing mirror of the pushed repository (its name, since when, the first line of its error).",
    ),
    key(
        Global,
        "metrics_mirrors",
        "\"attention\"",
        "\"all\"",
        "Which mirrors `metrics` gives series of their own: all, or attention (only those failing, retrying, behind, faulted, orphaned, with refused, divergent or kept refs, or not verified for two days); every mirror counts in the aggregates (git_push_mirror_mirrors and others) either way. For fleets of thousands of mirrors.",
    ),
    key(
        Global,
        "defaults",
        "",
        "none",
        "A table of mirror keys that apply to every mirror that does not set them (see MIRROR KEYS).",
    ),
    key(
        Global,
        "retry",
        "",
        "none",
        "A table: the backoff after a failed update (see [retry]).",
    ),
    key(
        Global,
        "notify",
        "",
        "none",
        "A table: who is told when a mirror fails, recovers, refuses or diverges (see [notify]).",
    ),
    key(
        Global,
        "mirror",
        "",
        "none",
        "[mirror.NAME] tables: fleet mirrors, which apply to every repository under repos_root that matches their `repos` patterns.",
    ),
    key(
        Retry,
        "initial",
        "\"5s\"",
        "\"5s\"",
        "The first backoff after a failed update; it doubles with each consecutive failure.",
    ),
    key(Retry, "max", "\"10m\"", "\"10m\"", "The longest backoff."),
    key(
        Retry,
        "fail_after",
        "5",
        "5",
        "Consecutive failures after which `status` says failed (retries go on).",
    ),
    key(
        Retry,
        "permanent_retry",
        "\"1h\"",
        "\"1h\"",
        "How long a mirror whose failure is permanent (credentials refused, repository not found, host key changed, other object format, a ref refused by the mirror's rules) waits before the next try; a push or `sync` tries at once.",
    ),
    key(
        Retry,
        "jitter",
        "true",
        "true",
        "Spread retries a little, so mirrors that failed together do not retry in lockstep.",
    ),
    key(
        Notify,
        "command",
        "\"/usr/local/bin/mirror-alert\"",
        "none",
        "A program run per notice with the notice's JSON on stdin and GIT_PUSH_MIRROR_EVENT in its environment; exit status 0 means delivered.",
    ),
    key(
        Notify,
        "webhook_url",
        "\"https://chat.example.com/hooks/abc\"",
        "none",
        "An HTTP(S) URL the notice's JSON (with a one-line `text`, as Slack, Mattermost and Rocket.Chat show it) is POSTed to.",
    ),
    key(
        Notify,
        "webhook_url_file",
        "\"/etc/git-push-mirror/slack.url\"",
        "none",
        "A file (mode 600) whose first line is the webhook URL, for a URL that is itself the secret; never logged.",
    ),
    key(
        Notify,
        "webhook_token_file",
        "\"/etc/git-push-mirror/webhook.token\"",
        "none",
        "A file (mode 600) whose first line is sent as `Authorization: Bearer` to the webhook.",
    ),
    key(
        Notify,
        "ca_file",
        "\"/etc/git-push-mirror/corp-root-ca.pem\"",
        "the system's CAs",
        "CA certificates (PEM) the webhook's TLS trusts besides the system's.",
    ),
    key(
        Notify,
        "email_to",
        "[\"ops@example.com\"]",
        "none",
        "Addresses a plain-text mail goes to, through sendmail -t.",
    ),
    key(
        Notify,
        "email_from",
        "\"git-push-mirror@git.example.com\"",
        "the MTA's",
        "The From of the mail.",
    ),
    key(
        Notify,
        "sendmail_command",
        "[\"/usr/sbin/sendmail\", \"-t\", \"-oi\"]",
        "[\"/usr/sbin/sendmail\", \"-t\", \"-oi\"]",
        "The program (and its arguments) the mail is handed to.",
    ),
    key(
        Notify,
        "events",
        "[\"failed\", \"recovered\"]",
        "every event",
        "Which events are told: failed, recovered, refused, divergent, quarantined, config_error.",
    ),
    key(
        Notify,
        "timeout",
        "\"30s\"",
        "\"30s\"",
        "How long one delivery may take; a command or sendmail is killed with its process group.",
    ),
    key(
        Notify,
        "digest_window",
        "\"30s\"",
        "\"30s\"",
        "How long a notice waits for others of the same cause, to go out as one digest.",
    ),
    key(
        Notify,
        "max_per_hour",
        "20",
        "20",
        "The most notices sent in an hour (a digest counts one); more wait, counted, and go out later.",
    ),
    key(
        Notify,
        "remind_every",
        "\"1d\"",
        "never",
        "Tell a mirror still failed again after this long.",
    ),
    key(
        Repo,
        "protected_branches",
        "[\"main\", \"release/*\"]",
        "none",
        "The branch patterns only_protected_branches mirrors.",
    ),
    key(
        Repo,
        "mirror",
        "",
        "none",
        "[mirror.NAME] tables: the repository's own mirrors (see MIRROR KEYS).",
    ),
    own(
        "url",
        "\"https://github.com/acme/app.git\"",
        "(required)",
        "Where to push: https://, ssh://[user@]host/… or user@host:path, git://, file:// or an absolute path. In a fleet mirror, {name} stands for the repository's name.",
    ),
    key(
        Mirror,
        "enabled",
        "true",
        "true",
        "A disabled mirror keeps recording changes but pushes nothing.",
    ),
    key(
        Mirror,
        "only_protected_branches",
        "false",
        "false",
        "Mirror only the branches matching the repository's protected_branches (none: no branch, with a warning).",
    ),
    key(
        Mirror,
        "keep_divergent_refs",
        "false",
        "false",
        "Never overwrite or delete refs that differ on the mirror.",
    ),
    key(
        Mirror,
        "branches",
        "[\"main\", \"release/*\"]",
        "all",
        "Glob patterns (`*` matches anything, `/` included); a branch must match one.",
    ),
    key(
        Mirror,
        "tags",
        "[\"v*\"]",
        "true",
        "true, false for no tags, or patterns.",
    ),
    key(
        Mirror,
        "refs",
        "[\"refs/notes/*\"]",
        "none",
        "Extra namespaces, as patterns over full ref names.",
    ),
    key(
        Mirror,
        "prune_unmerged",
        "true",
        "false",
        "Delete a ref deleted upstream from the mirror even when its work is not merged into the default branch (never in keep-divergent mode, never without a default branch). Off: such a ref is kept and listed in kept_refs with the reason.",
    ),
    key(
        Mirror,
        "notify",
        "false",
        "true",
        "Whether notices about this mirror are sent (the channels are the global [notify]).",
    ),
    own(
        "username",
        "\"acme-bot\"",
        "none",
        "The HTTPS user name (an SSH user is part of the URL).",
    ),
    own(
        "password_file",
        "\"/etc/git-push-mirror/github.token\"",
        "none",
        "A file (mode 600) whose first line is the HTTPS password or token.",
    ),
    own(
        "password_env",
        "\"GITHUB_TOKEN\"",
        "none",
        "An environment variable of the worker holding the HTTPS password or token.",
    ),
    own(
        "password",
        "\"s3cret\"",
        "none",
        "The HTTPS password inline: only in a file nobody else can read.",
    ),
    key(
        Mirror,
        "ssh_key",
        "\"/etc/git-push-mirror/keys/github_key\"",
        "the user's",
        "The SSH private key for the mirror (mode 600).",
    ),
    key(
        Mirror,
        "known_hosts",
        "\"/etc/git-push-mirror/keys/known_hosts\"",
        "the user's",
        "The SSH host keys to trust for the mirror's host.",
    ),
    key(
        Mirror,
        "ca_file",
        "\"/etc/git-push-mirror/corp-root-ca.pem\"",
        "the system's CAs",
        "CA certificates (PEM) to trust for HTTPS to the mirror's host and its lfs_url's host.",
    ),
    key(
        Mirror,
        "delay",
        "\"5s\"",
        "unset",
        "Unset: a change is pushed at once unless a push of this mirror runs or just ended. Set: wait this long after the first change, to gather others.",
    ),
    key(
        Mirror,
        "min_interval",
        "\"5m\"",
        "\"0s\"",
        "The least time between the starts of two updates of the mirror.",
    ),
    key(
        Mirror,
        "timeout",
        "\"10m\"",
        "\"10m\"",
        "The wall-clock limit of each git process talking to the mirror; its process group is killed.",
    ),
    key(
        Mirror,
        "verify_interval",
        "\"1d\"",
        "\"1d\"",
        "How often `run` lists the mirror's refs to catch changes made on the mirror itself; \"0s\" turns it off.",
    ),
    key(
        Mirror,
        "lfs",
        "\"auto\"",
        "\"auto\"",
        "Upload Git LFS objects before the refs: auto (when the repository has any), on, off.",
    ),
    key(
        Mirror,
        "lfs_required",
        "true",
        "true",
        "A failed LFS upload fails the update; false pushes the refs anyway.",
    ),
    own(
        "lfs_url",
        "\"https://lfs.example.com/acme/app.git/info/lfs\"",
        "derived from url",
        "The mirror's LFS endpoint, when not the one git-lfs derives from the URL.",
    ),
    key(
        Mirror,
        "lfs_store",
        "\"/var/lib/gitea/data/lfs\"",
        "REPO/lfs/objects",
        "Where the repository's LFS objects are, when the server keeps them outside it (Gitea, GitLab).",
    ),
    key(
        Mirror,
        "max_push_size",
        "\"1900MiB\"",
        "unlimited",
        "The largest pack one push may carry; bigger updates go in steps.",
    ),
    key(
        Mirror,
        "max_refs_per_push",
        "1000",
        "unlimited",
        "The most refs one push may update; bigger updates go in batches.",
    ),
    key(
        Mirror,
        "create",
        "\"github\"",
        "false",
        "When the mirror says the repository does not exist (never on a refused login), create it and push in the same update: \"ssh\" (git init --bare of the URL's path over the mirror's SSH key), \"github\", \"gitlab\", \"gitea\" (also Forgejo) through the forge's REST API; false: never.",
    ),
    own(
        "api_url",
        "\"https://gitlab.example.com/api/v4\"",
        "derived from url",
        "The forge API's base URL: https://api.github.com for github.com (https://HOST/api/v3 for GitHub Enterprise), https://HOST/api/v4 for GitLab, https://HOST/api/v1 for Gitea and Forgejo.",
    ),
    own(
        "api_token_file",
        "\"/etc/git-push-mirror/github-api.token\"",
        "the mirror's password",
        "A file (mode 600) whose first line is the forge API token that creates the repository and sets its default branch (needed for an SSH mirror).",
    ),
    key(
        Mirror,
        "visibility",
        "\"private\"",
        "\"private\"",
        "Who may see a repository the forge creates: private, public, or internal (GitLab, GitHub Enterprise organisations).",
    ),
    key(
        Mirror,
        "push_options",
        "[\"ci.skip\"]",
        "none",
        "Push options (git push -o) sent with every push to a mirror that accepts them; one that does not gets the push without them and a warning in `status`.",
    ),
    key(
        Mirror,
        "first_sync_push_options",
        "[\"ci.skip\"]",
        "push_options",
        "Push options sent instead of push_options with the pushes of the mirror's first sync (until an update of it has succeeded).",
    ),
    own(
        "repos",
        "[\"acme/*\", \"!acme/private-*\"]",
        "(required in a fleet mirror)",
        "Fleet mirrors only: the repositories under repos_root it applies to; `!` excludes.",
    ),
];

/// The rows of one table, in order.
pub fn keys_of(table: Table) -> impl Iterator<Item = &'static KeyDoc> {
    KEYS.iter().filter(move |doc| doc.table == table)
}

#[cfg(test)]
mod tests;
