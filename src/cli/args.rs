//! The command-line definition: every command and flag, as clap parses them. Commands receive these structs; nothing here runs anything.

use crate::config::edit::MirrorEdit;
use crate::config::lfs::LfsMode;
use crate::config::rules::TagSelection;
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "git-push-mirror",
    version,
    about = "GitLab-style push mirroring for self-hosted bare git repositories",
    long_about = "GitLab-style push mirroring for self-hosted bare git repositories.\n\n\
A post-receive hook records each push in a spool and returns at once; a worker \
pushes the changed refs to every configured mirror, with GitLab's mirror rules.\n\n\
Quick start:\n  git-push-mirror add /srv/git/app.git backup file:///backup/app.git\n  \
git-push-mirror install /srv/git/app.git\n  git-push-mirror status",
    after_help = "Exit status: 0 success, 1 a mirror update failed or a check found a problem, 2 usage or configuration error."
)]
pub struct Cli {
    /// Global configuration file (default: $GIT_PUSH_MIRROR_CONFIG, then
    /// $XDG_CONFIG_HOME/git-push-mirror/config.toml, then /etc/git-push-mirror/config.toml or the
    /// file $GIT_PUSH_MIRROR_SYSTEM_CONFIG names; see `man 5 git-push-mirror.toml`).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log more (debug); twice for trace.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Hook bodies, as git runs them (`hook post-receive`).
    Hook {
        #[command(subcommand)]
        hook: HookCommand,
    },
    /// Drain the spool and update due mirrors, then exit (for cron and the hook).
    Run {
        /// Only update mirrors of these repositories.
        #[arg(long = "repo", value_name = "REPO")]
        repos: Vec<PathBuf>,
        /// If another worker is draining, wait for it and then drain (default: leave it the work).
        #[arg(long)]
        wait: bool,
        /// Started by the hook: log to the log file only.
        #[arg(long, hide = true)]
        detached: bool,
    },
    /// Update now: full reconciliation in the foreground, with a per-ref table.
    #[command(
        long_about = "Update now: a full reconciliation of the repository's mirrors in the foreground, with a \
per-ref table; exit 1 on failure.\n\n\
With --dry-run, nothing is pushed, created or written: one ls-remote per mirror, then per ref what the \
update would do (create, update, force, delete, keep-divergent, kept, filtered-out; refs the mirror refused \
last time are marked), the repository it would create and the default branch it would set."
    )]
    Sync {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// Only this mirror.
        #[arg(long, value_name = "NAME")]
        mirror: Option<String>,
        /// Say what the sync would do; push nothing, write no state.
        #[arg(long)]
        dry_run: bool,
        /// With --dry-run: one JSON array, an object per mirror.
        #[arg(long, requires = "dry_run")]
        json: bool,
    },
    /// Add a mirror to a repository.
    Add {
        /// The bare repository pushes go to (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// A name for the mirror: letters, digits, '.', '_' and '-' (e.g. github, backup).
        name: String,
        /// Where to push: https://…, ssh://[user@]host/…, user@host:path, git://…, or a local path
        /// (stored absolute: a relative path is taken from the current directory, ~ from HOME).
        url: String,
        #[command(flatten)]
        settings: MirrorFlags,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Change a mirror's settings (on a fleet mirror: give the repository its own copy of it).
    #[command(
        long_about = "Change a mirror's settings; the flags given are changed, the others kept.\n\n\
A fleet mirror (from the global configuration) is shared by many repositories: `set` on one of them first \
copies the fleet mirror into the repository's own push-mirror.toml, says so, and changes the copy, which \
then replaces the fleet mirror for that repository only (`remove` hands it back to the fleet mirror)."
    )]
    Set {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// The mirror's name (`git-push-mirror list REPO` shows them).
        name: String,
        /// A new URL (a local path is stored absolute, as with `add`).
        #[arg(long)]
        url: Option<String>,
        #[command(flatten)]
        settings: MirrorFlags,
        #[command(flatten)]
        set_only: SetOnlyFlags,
        /// Enable or disable the mirror.
        #[arg(long, value_name = "BOOL")]
        enabled: Option<bool>,
    },
    /// Remove a mirror and its state.
    Remove {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// The mirror's name (`git-push-mirror list REPO` shows them).
        name: String,
    },
    /// Add branch patterns to the repository's protected_branches (what --only-protected-branches mirrors).
    #[command(
        long_about = "Add branch name patterns to protected_branches in REPO/push-mirror.toml (kept at the \
top of the file, above the first [mirror.…] table, with the file's comments). A mirror with \
only_protected_branches = true (`set REPO NAME --only-protected-branches`) carries just the branches \
that match one; with none, it carries no branch at all. Patterns already there are kept once."
    )]
    Protect {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// Branch names or patterns, without refs/heads/ (`*` matches anything, `/` too; e.g. main 'release/*').
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Remove branch patterns from the repository's protected_branches.
    Unprotect {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// Patterns exactly as `protect` was given them.
        #[arg(required = true, value_name = "PATTERN")]
        patterns: Vec<String>,
    },
    /// Forget a repository that was deleted or moved: its registration and mirror state.
    #[command(
        long_about = "Forget a repository: remove its registration and its mirrors' state (including \
secrets and keys git-push-mirror stored for it in the state directory), so `run`, `status`, `check` and \
`metrics` no longer cover it. A registered repository that no longer exists is also forgotten by the first \
command that finds it gone, which reports it once. A repository that still has mirrors is refused: remove \
them first."
    )]
    Forget {
        /// The repository's path, as it was registered (it may no longer exist).
        repo: PathBuf,
    },
    /// List configured mirrors, one line each (URLs redacted).
    List {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
    },
    /// Show each mirror's status; exits 1 if any mirror is failed.
    Status {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
        /// One JSON array of objects with stable field names.
        #[arg(long)]
        json: bool,
        /// Each ref's local and mirror value, from one ls-remote per mirror.
        #[arg(long)]
        refs: bool,
    },
    /// Install the post-receive hook (an existing hook is kept and still runs).
    #[command(
        long_about = "Install the post-receive hook the way the repository's host expects.\n\n\
Plain bare repositories: REPO/hooks/post-receive (an existing hook is kept as \
post-receive.before-push-mirror and still runs with the same input); --all ROOT does every bare \
repository under ROOT.\n\n\
--gitea: REPO/hooks/post-receive.d/git-push-mirror, which Gitea's (or Forgejo's) own post-receive \
runs; Gitea's files are not touched.\n\n\
--gitolite (run as the gitolite user): a common hook, LOCAL_CODE/hooks/common/post-receive, that \
gitolite links into every repository, new ones included; `gitolite setup` keeps it. With \
--repo-specific: LOCAL_CODE/hooks/repo-specific/git-push-mirror, for repositories whose \
gitolite.conf has `option hook.post-receive = git-push-mirror`. LOCAL_CODE (and \
'repo-specific-hooks') are switched on in ~/.gitolite.rc if they are off.\n\n\
The hook runs this binary by its absolute path: /usr/bin/git-push-mirror (the package's) when that \
is this same program, else this one. A hook already installed keeps the binary it runs unless \
--rebind is given, so installing again with another copy (say /usr/local/bin's, first on PATH) \
never moves hooks to it silently; `install` says when several binaries are installed."
    )]
    Install {
        /// Bare repositories (none with --all; with --gitolite, optional: checked to be gitolite's).
        #[arg(required_unless_present_any = ["all", "gitolite"])]
        repos: Vec<PathBuf>,
        #[command(flatten)]
        host: HostFlags,
        /// Make hooks already installed run this binary (by default each keeps the binary it runs).
        #[arg(long)]
        rebind: bool,
    },
    /// Remove the hook and restore the one it replaced.
    Uninstall {
        /// Bare repositories (none with --all; with --gitolite, optional: checked to be gitolite's).
        #[arg(required_unless_present_any = ["all", "gitolite"])]
        repos: Vec<PathBuf>,
        #[command(flatten)]
        host: HostFlags,
    },
    /// Write per-mirror and spool metrics in the Prometheus text format (node_exporter textfile
    /// collector); exits 1 if any mirror is failed, like `status`, and 2 if the file cannot be written.
    Metrics {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
        /// Write to FILE atomically (temp file and rename), e.g.
        /// /var/lib/prometheus/node-exporter/git-push-mirror.prom; default: stdout.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Send a sample notice through every [notify] channel (command, webhook, mail) and say what
    /// happened for each; exits 1 if one failed.
    #[command(name = "notify-test")]
    NotifyTest,
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write it and a page per subcommand into a directory; with
    /// --section 5, the configuration files' page, git-push-mirror.toml(5).
    Man {
        /// Write git-push-mirror.1 and git-push-mirror-SUBCOMMAND.1 for every subcommand (section 5:
        /// git-push-mirror.toml.5) into DIR, e.g. /usr/local/share/man/man1 (man5).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// 1: the commands; 5: the configuration files (every key, its default and meaning).
        #[arg(long, value_enum, default_value = "1")]
        section: ManSection,
    },
    /// Validate the configuration and reach each mirror (ls-remote); says which configuration,
    /// state and spool it used, and what keeps each repository's pushes from being recorded (its
    /// hook, the user pushes run as, the directories that user must write), with the fix.
    Check {
        /// Only these repositories (default: every registered one and every mirrored one under repos_root).
        repos: Vec<PathBuf>,
    },
    /// Create an ed25519 key pair for an SSH mirror and print the public key
    /// (a deploy key to paste on the mirror's host).
    #[command(
        long_about = "Create an ed25519 key pair (mode 600, no passphrase) for an SSH mirror, set the \
mirror's ssh_key, and print the public key: add it on the mirror's host as a deploy key with write access, \
or to the account's authorized_keys. The key is created where ssh_key already points, else in the state \
directory. An existing key is never overwritten."
    )]
    Keygen {
        /// The bare repository (e.g. /srv/git/app.git).
        repo: PathBuf,
        /// The SSH mirror's name.
        name: String,
    },
    /// Show an SSH host's key fingerprints (SHA256); with --accept, record the keys for a mirror.
    #[command(
        long_about = "Ask the SSH host of URL for its host keys (ssh-keyscan) and print their SHA256 \
fingerprints. Compare them with the fingerprints the host's admin publishes; then run again with --accept \
to record the keys in the mirror's known_hosts file (created, and set in its configuration, if it has none) \
or in --file FILE. Nothing is recorded without --accept."
    )]
    KnownHosts {
        /// The mirror's SSH URL: ssh://[user@]host[:port]/path or [user@]host:path.
        url: String,
        /// Record the keys (without it, only show them).
        #[arg(long)]
        accept: bool,
        /// The repository of --mirror.
        #[arg(long, value_name = "REPO", requires = "mirror", conflicts_with = "file")]
        repo: Option<PathBuf>,
        /// The mirror whose known_hosts file gets the keys.
        #[arg(long, value_name = "NAME", requires = "repo")]
        mirror: Option<String>,
        /// A known_hosts file to record the keys in.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// How long to wait for the host.
        #[arg(long, value_name = "DURATION", default_value = "10s")]
        timeout: String,
    },
}

/// The man pages `man` writes: the commands', or the configuration files'.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManSection {
    /// Section 1: git-push-mirror(1) and a page per subcommand.
    #[value(name = "1")]
    Commands,
    /// Section 5: git-push-mirror.toml(5).
    #[value(name = "5")]
    Files,
}

#[derive(Subcommand, Debug)]
pub enum HookCommand {
    /// The post-receive hook: record the pushed refs, start a worker, exit 0.
    PostReceive {
        /// A previous post-receive hook to run afterwards with the same input.
        #[arg(long, value_name = "HOOK")]
        chain: Option<PathBuf>,
        /// Don't start a worker (cron's `run` will push).
        #[arg(long)]
        no_worker: bool,
        /// Arguments passed on to the chained hook.
        #[arg(last = true)]
        args: Vec<String>,
    },
}

/// Where `install` and `uninstall` act: which host's conventions, and over which repositories.
#[derive(Args, Debug, Default)]
pub struct HostFlags {
    /// Every bare repository under ROOT (hidden directories are skipped).
    #[arg(long, value_name = "ROOT", conflicts_with_all = ["repos", "gitolite"])]
    pub all: Option<PathBuf>,
    /// Gitea/Forgejo: a script in REPO/hooks/post-receive.d/, run by Gitea's own hook.
    #[arg(long, conflicts_with = "gitolite")]
    pub gitea: bool,
    /// gitolite: a common hook under LOCAL_CODE that gitolite links into every repository
    /// (run as the gitolite user).
    #[arg(long)]
    pub gitolite: bool,
    /// With --gitolite: a repo-specific hook (`option hook.post-receive = git-push-mirror` in gitolite.conf).
    #[arg(long, requires = "gitolite")]
    pub repo_specific: bool,
}

/// Mirror settings shared by `add` and `set`.
#[derive(Args, Debug, Default)]
pub struct MirrorFlags {
    /// Mirror only the repository's protected_branches.
    #[arg(long)]
    only_protected_branches: Option<Option<bool>>,
    /// Never overwrite or delete refs that differ on the mirror.
    #[arg(long)]
    keep_divergent_refs: Option<Option<bool>>,
    /// Delete on the mirror a branch or tag deleted here even when its commits are not merged into
    /// the default branch (default false: such refs are kept, listed in kept_refs).
    #[arg(long, value_name = "BOOL")]
    prune_unmerged: Option<Option<bool>>,
    /// Mirror only branches matching PATTERN (`*` matches anything, `/` too); repeatable.
    #[arg(long = "branch", value_name = "PATTERN")]
    branches: Vec<String>,
    /// Don't mirror tags.
    #[arg(long)]
    no_tags: bool,
    /// Mirror only tags matching PATTERN; repeatable.
    #[arg(long = "tag", value_name = "PATTERN", conflicts_with = "no_tags")]
    tags: Vec<String>,
    /// User name for HTTPS (an SSH user goes in the URL: ssh://USER@host/… or USER@host:path).
    #[arg(long)]
    username: Option<String>,
    /// File holding the HTTPS password or token (must be mode 600).
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Environment variable holding the HTTPS password or token.
    #[arg(long, value_name = "VAR")]
    password_env: Option<String>,
    /// SSH private key for this mirror.
    #[arg(long, value_name = "FILE")]
    ssh_key: Option<PathBuf>,
    /// known_hosts file for this mirror's SSH host.
    #[arg(long, value_name = "FILE")]
    known_hosts: Option<PathBuf>,
    /// CA certificates (PEM) to trust for HTTPS to this mirror's host, e.g. a company CA
    /// ("" to use the system's again).
    #[arg(long, value_name = "FILE")]
    ca_file: Option<std::ffi::OsString>,
    /// Wait this long after the first change before pushing, to gather others (e.g. "5s"); "" for
    /// the default: a change is pushed at once unless a push of this mirror is running or has
    /// just ended.
    #[arg(long, value_name = "DURATION")]
    delay: Option<String>,
    /// At most one update per this interval (e.g. "5m").
    #[arg(long, value_name = "DURATION")]
    min_interval: Option<String>,
    /// Wall-clock limit for each git process (e.g. "10m"), LFS uploads included.
    #[arg(long, value_name = "DURATION")]
    timeout: Option<String>,
    /// How often `run` checks the mirror still has what it was given (default "1d"; "0s": never).
    #[arg(long, value_name = "DURATION")]
    verify_interval: Option<String>,
    /// Upload Git LFS objects before pushing: auto (when the repository has LFS objects), on, off.
    #[arg(long, value_name = "MODE", value_parser = ["auto", "on", "off"])]
    lfs: Option<String>,
    /// Whether a failed LFS upload fails the update, so its refs wait (default true).
    #[arg(long, value_name = "BOOL")]
    lfs_required: Option<Option<bool>>,
    /// The mirror's LFS endpoint, when not <url>/info/lfs ("" to derive it again).
    #[arg(long, value_name = "URL")]
    lfs_url: Option<String>,
    /// Largest pack one push may carry (e.g. "1900MiB" for GitHub's 2 GiB limit; "" for no limit):
    /// bigger updates are pushed in steps.
    #[arg(long, value_name = "SIZE")]
    max_push_size: Option<String>,
    /// Most refs one push may update (0 for no limit): bigger updates are pushed in batches.
    #[arg(long, value_name = "N")]
    max_refs_per_push: Option<usize>,
    /// Create the repository when the mirror says it does not exist: ssh (git init --bare over the
    /// mirror's SSH key), github, gitlab, gitea (or forgejo) through the forge's API; false: never.
    #[arg(long, value_name = "KIND", value_parser = ["ssh", "github", "gitlab", "gitea", "forgejo", "false"])]
    create: Option<String>,
    /// Who may see a repository the forge creates: private (the default), public, internal (GitLab).
    #[arg(long, value_name = "VISIBILITY", value_parser = ["private", "public", "internal"])]
    visibility: Option<String>,
    /// The forge API's base URL, when not the one derived from the mirror's host ("" to derive it again).
    #[arg(long, value_name = "URL")]
    api_url: Option<String>,
    /// File holding the forge API token (mode 600), when not the mirror's password ("" to use the
    /// password again); an SSH mirror needs one to create repositories on a forge.
    #[arg(long, value_name = "FILE")]
    api_token_file: Option<std::ffi::OsString>,
    /// Whether people are told when this mirror fails or recovers ([notify]; default true).
    #[arg(long, value_name = "BOOL")]
    notify: Option<bool>,
}

impl MirrorFlags {
    pub fn to_edit(&self) -> Result<MirrorEdit> {
        let flag = |v: Option<Option<bool>>| v.map(|inner| inner.unwrap_or(true));
        let absolute = |p: &Option<PathBuf>| -> Result<Option<PathBuf>> {
            p.as_ref()
                .map(|p| std::path::absolute(p).context("resolving a path"))
                .transpose()
        };
        let tags = if self.no_tags {
            Some(TagSelection::None)
        } else if !self.tags.is_empty() {
            Some(TagSelection::Matching(self.tags.clone()))
        } else {
            None
        };
        // "" removes the key: the setting goes back to its default.
        let durations = [&self.delay, &self.min_interval, &self.timeout, &self.verify_interval];
        for duration in durations.into_iter().flatten().filter(|d| !d.is_empty()) {
            humantime::parse_duration(duration)
                .with_context(|| format!("invalid duration {duration:?} (try \"2s\", \"5m\", \"1h\")"))?;
        }
        Ok(MirrorEdit {
            only_protected_branches: flag(self.only_protected_branches),
            keep_divergent_refs: flag(self.keep_divergent_refs),
            prune_unmerged: flag(self.prune_unmerged),
            branches: (!self.branches.is_empty()).then(|| self.branches.clone()),
            tags,
            username: self.username.clone(),
            password_file: absolute(&self.password_file)?,
            password_env: self.password_env.clone(),
            ssh_key: absolute(&self.ssh_key)?,
            known_hosts: absolute(&self.known_hosts)?,
            // An empty path removes the setting.
            ca_file: match &self.ca_file {
                Some(path) if path.is_empty() => Some(PathBuf::new()),
                other => absolute(&other.as_ref().map(PathBuf::from))?,
            },
            delay: self.delay.clone(),
            min_interval: self.min_interval.clone(),
            timeout: self.timeout.clone(),
            verify_interval: self.verify_interval.clone(),
            lfs: self.lfs.as_deref().and_then(LfsMode::parse),
            lfs_required: flag(self.lfs_required),
            lfs_url: self.lfs_url.clone(),
            max_push_size: self.max_push_size.clone(),
            max_refs_per_push: self.max_refs_per_push,
            notify: self.notify,
            create: self
                .create
                .as_deref()
                .and_then(crate::config::mirror_side::CreateKind::parse)
                .map(crate::config::mirror_side::CreateSetting),
            visibility: self
                .visibility
                .as_deref()
                .and_then(crate::config::mirror_side::Visibility::parse),
            api_url: self.api_url.clone(),
            api_token_file: match &self.api_token_file {
                Some(path) if path.is_empty() => Some(PathBuf::new()),
                other => absolute(&other.as_ref().map(PathBuf::from))?,
            },
            ..Default::default()
        })
    }
}

/// Flags of `set` that undo a setting, so they mean nothing to `add`.
#[derive(Args, Debug, Default)]
pub struct SetOnlyFlags {
    /// Mirror all branches again (clears --branch patterns).
    #[arg(long, conflicts_with = "branches")]
    all_branches: bool,
    /// Mirror all tags again (clears --tag patterns and --no-tags).
    #[arg(long, conflicts_with_all = ["no_tags", "tags"])]
    all_tags: bool,
    /// Forget the push size limit learned from the mirror's refusals, dropped connections and
    /// timeouts (`learned_max_push_size` in status): the next update pushes as if none was learned.
    #[arg(long)]
    reset_learned_limit: bool,
}

impl SetOnlyFlags {
    /// Whether the learned push size limit is to be forgotten (a change of state, not of the file).
    pub fn resets_learned_limit(&self) -> bool {
        self.reset_learned_limit
    }

    pub fn apply(&self, edit: &mut MirrorEdit) {
        if self.all_branches {
            edit.branches = Some(Vec::new());
        }
        if self.all_tags {
            edit.tags = Some(TagSelection::All);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_durations_are_refused_before_editing() {
        let flags = MirrorFlags {
            delay: Some("soon".into()),
            ..Default::default()
        };
        assert!(flags.to_edit().unwrap_err().to_string().contains("invalid duration"));
    }
}
