//! Git LFS for mirrors: what an update's LFS step did and left (its report and the status it
//! records), and which transports can carry LFS objects. The settings are in `config/lfs.rs`,
//! pointers and the local object store in `git/lfs_pointer.rs`; the scan and the upload run git
//! and git-lfs, in `git/lfs.rs`.

use crate::util::remote_url::Transport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Whether the mirror has the LFS objects of the refs it was given, as of the last update
/// that looked (`status` shows it as `lfs_status`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LfsStatus {
    /// No update has had LFS objects to send.
    #[default]
    None,
    Ok,
    Failed,
}

impl LfsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LfsStatus::None => "none",
            LfsStatus::Ok => "ok",
            LfsStatus::Failed => "failed",
        }
    }
}

/// What the LFS step of one update did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LfsReport {
    /// Distinct LFS objects the scanned commits reference.
    pub objects: usize,
    /// Objects handed to git-lfs, which uploaded those the mirror lacked.
    pub sent: usize,
    /// Objects the local store lacks (pointers whose content never reached this repository).
    pub missing: BTreeSet<String>,
    /// Why the upload failed (redacted).
    pub error: Option<String>,
    /// Every object of every ref on the mirror was checked, not only the new commits'.
    pub full: bool,
    /// Refs were pushed although some of their objects could not be sent (`lfs_required = false`).
    pub pushed_without_objects: bool,
}

impl LfsReport {
    pub fn is_complete(&self) -> bool {
        self.error.is_none() && self.missing.is_empty()
    }

    /// The `lfs_error` this report leaves, if any.
    pub fn error_summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(error) = &self.error {
            parts.push(format!("LFS upload failed: {error}"));
        }
        if !self.missing.is_empty() {
            parts.push(missing_objects_message(&self.missing));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

/// How many missing objects a message names before "and N more".
const MISSING_SHOWN: usize = 3;

/// Names (some of) the missing objects and says how to get them.
pub fn missing_objects_message(missing: &BTreeSet<String>) -> String {
    let mut shown: Vec<&str> = missing.iter().take(MISSING_SHOWN).map(String::as_str).collect();
    let more = format!("and {} more", missing.len().saturating_sub(MISSING_SHOWN));
    if missing.len() > MISSING_SHOWN {
        shown.push(&more);
    }
    format!(
        "{} LFS object(s) missing from the repository's LFS store: {} (fetch them into the repository \
         with `git lfs fetch --all`, or have the pusher run `git lfs push --all`)",
        missing.len(),
        shown.join(", ")
    )
}

/// Whether LFS objects can reach a mirror of this transport, and if not, why.
pub fn transport_support(transport: &Transport, lfs_url: Option<&str>) -> Result<(), String> {
    if lfs_url.is_some() {
        return Ok(());
    }
    match transport {
        // HTTPS: the endpoint is <url>.git/info/lfs; SSH: git-lfs asks the host with
        // git-lfs-authenticate (GitHub, GitLab, Gitea) or speaks git-lfs-transfer;
        // file://: git-lfs copies into the mirror's own lfs/objects.
        Transport::Https | Transport::Http | Transport::Ssh | Transport::File => Ok(()),
        Transport::Git => Err("the git:// protocol cannot carry LFS objects; set lfs_url to the \
             mirror's HTTPS LFS endpoint, or lfs = \"off\""
            .to_string()),
        Transport::Refused(what) => Err(format!("{what} is not an allowed transport")),
    }
}

/// Where a mirror's LFS objects go, in words for `check`: the endpoint git-lfs uses (`lfs_url`,
/// else derived from the URL as git-lfs derives it), or why there is none.
pub fn describe_endpoint(url: &str, transport: &Transport, lfs_url: Option<&str>) -> Result<String, String> {
    transport_support(transport, lfs_url)?;
    if let Some(lfs_url) = lfs_url {
        return Ok(format!("{lfs_url} (lfs_url)"));
    }
    Ok(match transport {
        Transport::Https | Transport::Http => {
            let base = url.trim_end_matches('/');
            let git = if base.ends_with(".git") { "" } else { ".git" };
            format!("{base}{git}/info/lfs")
        }
        Transport::Ssh => "given by the SSH host (git-lfs-authenticate or git-lfs-transfer, which GitHub, \
             GitLab and Gitea provide; for another SSH server set lfs_url to an HTTPS LFS endpoint)"
            .to_string(),
        _ => format!("{url} (the mirror repository's own lfs/objects)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OID: &str = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";

    #[test]
    fn reports_name_missing_objects_and_upload_errors() {
        let mut report = LfsReport::default();
        assert!(report.is_complete());
        assert_eq!(report.error_summary(), None);
        report.missing = (0..5).map(|i| format!("{i}{}", &OID[1..])).collect();
        report.error = Some("batch response: Authorization error".into());
        let summary = report.error_summary().unwrap();
        assert!(summary.starts_with("LFS upload failed: batch response: Authorization error; 5 LFS object(s) missing"));
        assert!(summary.contains(&format!("0{}", &OID[1..])));
        assert!(summary.contains("and 2 more"), "{summary}");
        assert!(!summary.contains(&format!("4{}", &OID[1..])));
    }

    #[test]
    fn endpoints_are_derived_as_git_lfs_derives_them() {
        let https = |url| describe_endpoint(url, &Transport::Https, None).unwrap();
        assert_eq!(https("https://h/a/b.git"), "https://h/a/b.git/info/lfs");
        assert_eq!(https("https://h/a/b"), "https://h/a/b.git/info/lfs");
        assert_eq!(https("https://h/a/b/"), "https://h/a/b.git/info/lfs");
        let own = describe_endpoint("ssh://h/x", &Transport::Ssh, Some("https://l/x")).unwrap();
        assert_eq!(own, "https://l/x (lfs_url)");
        assert!(
            describe_endpoint("ssh://h/x", &Transport::Ssh, None)
                .unwrap()
                .contains("git-lfs-authenticate")
        );
        assert!(describe_endpoint("git://h/x", &Transport::Git, None).is_err());
    }

    #[test]
    fn git_protocol_mirrors_need_an_lfs_url() {
        assert!(transport_support(&Transport::Git, None).is_err());
        assert!(transport_support(&Transport::Git, Some("https://lfs.example/x")).is_ok());
        for t in [Transport::Https, Transport::Ssh, Transport::File] {
            assert!(transport_support(&t, None).is_ok());
        }
    }
}
