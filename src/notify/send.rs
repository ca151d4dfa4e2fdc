//! One pass over the outbox: the notices waiting for their digest window, grouped by cause,
//! sent through every channel within the hourly limit, each removed once every channel took
//! it. A channel that fails keeps its notices; they go again with the next notice (or after a
//! minute), and the failure is counted in the ledger for `metrics`.

use crate::config::{self, GlobalConfig};
use crate::mirror::state::StateStore;
use crate::mirror::state::outbox::Queued;
use crate::notify::digest::{self, Resolved};
use crate::notify::ledger::Ledger;
use crate::notify::{channels, deliver, hostname};
use crate::util::fsutil::{FileLock, now_ms};
use crate::util::remote_url::host_of;
use anyhow::Result;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a pass did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pass {
    /// Notices (groups) sent through at least one channel.
    pub sent: usize,
    /// Deliveries that failed.
    pub failed: usize,
    /// Queued notices left waiting (window, limit, failed channel).
    pub waiting: usize,
}

/// Sends what is due. `flush`: the digest window is cut short (the worker is leaving).
/// Another process sending (its lock held) makes this pass do nothing.
pub fn send_waiting(global: &GlobalConfig, store: &StateStore, flush: bool) -> Result<Pass> {
    let outbox = store.outbox();
    if outbox.is_empty() {
        return Ok(Pass::default());
    }
    let lock_path = outbox.dir().with_file_name("send.lock");
    let Some(_lock) = FileLock::try_acquire(&lock_path)? else {
        return Ok(Pass::default());
    };
    let settings = &global.notify;
    let mut waiting = Vec::new();
    let mut mirrors = MirrorLookup::new(global);
    for queued in outbox.list()? {
        let notice = &queued.notice;
        let (url, host, wanted) = mirrors.details(&notice.repo, notice.mirror.as_deref());
        if !settings.tells(notice.event) || !wanted {
            log::debug!(
                "notice {} of {} not sent: not wanted",
                notice.event,
                notice.repo.display()
            );
            outbox.remove(&queued)?;
            continue;
        }
        let resolved = Resolved {
            notice: notice.clone(),
            url,
            mirror_host: host,
        };
        waiting.push((queued, resolved));
    }
    let now = now_ms();
    let window = u64::try_from(settings.digest_window.as_millis()).unwrap_or(u64::MAX);
    let oldest = waiting.iter().map(|(q, _)| q.notice.at_ms).min();
    if oldest.is_none_or(|oldest| !flush && now < oldest.saturating_add(window) && now >= oldest) {
        return Ok(Pass {
            waiting: waiting.len(),
            ..Pass::default()
        });
    }
    let channels = channels(settings);
    let mut ledger = Ledger::load(&global.state_dir);
    let mut pass = Pass::default();
    let host = hostname();
    let mut allowance = ledger.allowance(settings.max_per_hour, now);
    let (mut queued, resolved): (Vec<Queued>, Vec<Resolved>) = waiting.into_iter().unzip();
    let mut over_limit = 0;
    for members in digest::group(&resolved) {
        if allowance == 0 {
            over_limit += members.len();
            continue;
        }
        let mut any_delivered = false;
        let mut changed = false;
        for channel in &channels {
            let owed: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| !queued[i].delivered.contains(channel.name()))
                .collect();
            let newest = owed.iter().map(|&i| queued[i].notice.at_ms).max().unwrap_or(0);
            // A channel that failed is tried again with a newer notice, after a minute, or when the
            // worker leaves (so every run tries once).
            if owed.is_empty() || !(flush || ledger.may_try(channel.name(), newest, now)) {
                continue;
            }
            let part: Vec<Resolved> = owed.iter().map(|&i| resolved[i].clone()).collect();
            let payload = digest::payload(&part, &host);
            crate::util::failpoint::hit("notify.before_send");
            match deliver(channel, settings, &payload, now) {
                Ok(()) => {
                    ledger.delivered(channel.name());
                    any_delivered = true;
                    changed = true;
                    for &i in &owed {
                        queued[i].delivered.insert(channel.name().to_string());
                    }
                }
                Err(e) => {
                    ledger.failed(channel.name(), now);
                    pass.failed += 1;
                    log::error!(
                        "notify: {} could not tell \"{}\": {e}; it is tried again with the next notice",
                        channel.describe(settings),
                        payload["text"].as_str().unwrap_or("")
                    );
                }
            }
        }
        if any_delivered {
            pass.sent += 1;
            allowance -= 1;
            ledger.recent_ms.push(now);
        }
        for &i in &members {
            let remaining = channels.iter().any(|c| !queued[i].delivered.contains(c.name()));
            if remaining {
                pass.waiting += 1;
            }
            if (changed || !remaining)
                && let Err(e) = outbox.record(&queued[i], remaining)
            {
                log::warn!("notify: recording a delivery: {e:#}");
            }
        }
    }
    if over_limit > 0 {
        pass.waiting += over_limit;
        log::warn!(
            "notify: the limit of {} notices per hour is reached; {over_limit} notice(s) wait in {} and go out, \
             digested, when the hour allows",
            settings.max_per_hour,
            outbox.dir().display()
        );
    }
    if let Err(e) = ledger.save(&global.state_dir) {
        log::warn!("notify: {e:#}");
    }
    Ok(pass)
}

/// Mirror details for notices, each repository's configuration read once per pass.
struct MirrorLookup<'a> {
    global: &'a GlobalConfig,
    repos: BTreeMap<PathBuf, Option<config::RepoConfig>>,
}

impl<'a> MirrorLookup<'a> {
    fn new(global: &'a GlobalConfig) -> MirrorLookup<'a> {
        MirrorLookup {
            global,
            repos: BTreeMap::new(),
        }
    }

    /// The mirror's URL as shown, its host, and whether it wants notices (`notify`). A mirror no
    /// longer configured (or a configuration that cannot be read) still gets its notice.
    fn details(&mut self, repo: &std::path::Path, mirror: Option<&str>) -> (Option<String>, String, bool) {
        let Some(mirror) = mirror else {
            return (None, String::new(), true);
        };
        let global = self.global;
        let config = self
            .repos
            .entry(repo.to_path_buf())
            .or_insert_with(|| config::load_repo(repo, global).ok());
        match config.as_ref().and_then(|c| c.mirror(mirror)) {
            Some(m) => (Some(m.shown_url()), host_of(&m.url), m.notify),
            None => (None, String::new(), true),
        }
    }
}
