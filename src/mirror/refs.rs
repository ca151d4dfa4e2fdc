//! Read-only facts about a local repository, through gix: refs, the default branch, ancestry, ref-name validity.
//! Any object format (SHA-1, SHA-256) and ref storage: gix reads no reftable yet, so a reftable
//! repository's refs and HEAD come from git itself ([`crate::git::local_refs`]); its objects,
//! and so ancestry, still come from gix.

use crate::git::local_refs::{self, LocalRef};
use crate::git::ref_cache;
use crate::mirror::plan::Ancestry;
use crate::util::oid::{ObjectFormat, Oid};
use anyhow::{Context, Result, anyhow};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Whether `name` is a full ref name git would accept under `refs/`.
pub fn is_valid_ref_name(name: &str) -> bool {
    name.starts_with("refs/") && gix::validate::reference::name(name.into()).is_ok()
}

/// The refs of a repository, split into direct and symbolic ones.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LocalRefs {
    pub direct: BTreeMap<String, Oid>,
    pub symbolic: BTreeSet<String>,
}

/// An opened local repository.
pub struct LocalRepo {
    repo: gix::Repository,
    /// Refs live in `reftable/`: read them with git.
    reftable: bool,
    /// Where a reftable repository's listing of all refs is kept between runs (see
    /// [`crate::git::ref_cache`]); without one, only this process's memory keeps it.
    ref_cache: Option<std::path::PathBuf>,
}

fn to_oid(id: &gix::oid) -> Result<Oid> {
    let hex = id.to_hex().to_string();
    Oid::parse(&hex).ok_or_else(|| anyhow!("unexpected object id {hex}"))
}

fn to_object_id(oid: &Oid) -> Option<gix::ObjectId> {
    gix::ObjectId::from_hex(oid.as_str().as_bytes()).ok()
}

impl LocalRepo {
    /// Opens the repository at `path` (bare or not) without reading the
    /// environment or global configuration.
    pub fn open(path: &Path) -> Result<LocalRepo> {
        let repo = gix::open_opts(path, gix::open::Options::isolated())
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("{} is not a git repository", path.display()))?;
        let reftable = repo
            .config_snapshot()
            .string("extensions.refStorage")
            .is_some_and(|storage| storage.eq_ignore_ascii_case(b"reftable"));
        Ok(LocalRepo {
            repo,
            reftable,
            ref_cache: None,
        })
    }

    /// Keeps a reftable repository's listing of all refs in `file` too, for later runs.
    pub fn with_ref_cache(mut self, file: std::path::PathBuf) -> LocalRepo {
        self.ref_cache = Some(file);
        self
    }

    /// The repository's object format.
    pub fn object_format(&self) -> ObjectFormat {
        match self.repo.object_hash() {
            gix::hash::Kind::Sha256 => ObjectFormat::Sha256,
            _ => ObjectFormat::Sha1,
        }
    }

    /// Refs read by git itself, for reftable storage: all of them (`names` empty), or those of
    /// `names` that exist. Told again by a cached listing while the refs are unchanged.
    fn refs_from_git(&self, names: &[&str]) -> Result<LocalRefs> {
        let git_dir = self.repo.git_dir();
        let cache = self.ref_cache.as_deref();
        let found = if names.is_empty() {
            ref_cache::all_refs(git_dir, cache)?.refs().to_vec()
        } else {
            match ref_cache::refs_named(git_dir, cache, names) {
                Some(found) => found,
                None => local_refs::for_each_ref(git_dir, names)?,
            }
        };
        let mut refs = LocalRefs::default();
        for found in found {
            match found {
                LocalRef::Direct { name, oid } => {
                    refs.direct.insert(name, oid);
                }
                LocalRef::Symbolic { name } => {
                    refs.symbolic.insert(name);
                }
            }
        }
        Ok(refs)
    }

    /// The URL of the repository's `origin` remote (of a clone), if it has one.
    pub fn origin_url(&self) -> Option<String> {
        self.repo
            .config_snapshot()
            .string("remote.origin.url")
            .map(|url| url.to_string())
    }

    /// Every ref under `refs/`.
    pub fn all_refs(&self) -> Result<LocalRefs> {
        if self.reftable {
            return self.refs_from_git(&[]);
        }
        let mut refs = LocalRefs::default();
        let platform = self.repo.references().map_err(|e| anyhow!("reading refs: {e}"))?;
        for reference in platform.all().map_err(|e| anyhow!("reading refs: {e}"))? {
            let reference = reference.map_err(|e| anyhow!("reading refs: {e}"))?;
            let name = reference.name().as_bstr().to_string();
            if !name.starts_with("refs/") {
                continue;
            }
            match reference.target() {
                gix::refs::TargetRef::Object(id) => {
                    refs.direct.insert(name, to_oid(id)?);
                }
                gix::refs::TargetRef::Symbolic(_) => {
                    refs.symbolic.insert(name);
                }
            }
        }
        Ok(refs)
    }

    /// The named refs only (those that exist).
    pub fn refs_named<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> Result<LocalRefs> {
        if self.reftable {
            let names: Vec<&str> = names.into_iter().map(String::as_str).collect();
            if names.is_empty() {
                return Ok(LocalRefs::default());
            }
            return self.refs_from_git(&names);
        }
        let mut refs = LocalRefs::default();
        for name in names {
            let found = self
                .repo
                .try_find_reference(name.as_str())
                .map_err(|e| anyhow!("reading {name}: {e}"))?;
            let Some(reference) = found else { continue };
            match reference.target() {
                gix::refs::TargetRef::Object(id) => {
                    refs.direct.insert(name.clone(), to_oid(id)?);
                }
                gix::refs::TargetRef::Symbolic(_) => {
                    refs.symbolic.insert(name.clone());
                }
            }
        }
        Ok(refs)
    }

    /// The branch HEAD points at (`refs/heads/main`), born or not; `None` when it is detached or
    /// points elsewhere.
    pub fn head_branch(&self) -> Result<Option<String>> {
        if self.reftable {
            return Ok(crate::git::head::head_branch(self.repo.git_dir())?);
        }
        let name = self.repo.head_name().map_err(|e| anyhow!("reading HEAD: {e}"))?;
        Ok(name
            .map(|name| name.as_bstr().to_string())
            .filter(|name| name.starts_with("refs/heads/")))
    }

    /// The commit HEAD points at, or `None` when HEAD is unborn or detached to nothing.
    pub fn default_branch_commit(&self) -> Result<Option<Oid>> {
        if self.reftable {
            return Ok(local_refs::head_commit(self.repo.git_dir())?);
        }
        let mut head = self.repo.head().map_err(|e| anyhow!("reading HEAD: {e}"))?;
        if head.is_unborn() {
            return Ok(None);
        }
        match head.peel_to_commit() {
            Ok(commit) => Ok(Some(to_oid(&commit.id)?)),
            Err(_) => Ok(None),
        }
    }

    /// The commit an object id peels to, if the object is here and commit-ish.
    fn peel_to_commit(&self, oid: &Oid) -> Option<gix::ObjectId> {
        let id = to_object_id(oid)?;
        let object = self.repo.try_find_object(id).ok()??;
        object.peel_to_commit().ok().map(|c| c.id)
    }
}

impl Ancestry for LocalRepo {
    fn is_ancestor(&self, ancestor: &Oid, descendant: &Oid) -> Option<bool> {
        let ancestor = self.peel_to_commit(ancestor)?;
        let descendant = self.peel_to_commit(descendant)?;
        if ancestor == descendant {
            return Some(true);
        }
        match self.repo.merge_base(ancestor, descendant) {
            Ok(Some(base)) => Some(base.detach() == ancestor),
            Ok(None) => Some(false),
            Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ref_names_are_validated_like_git() {
        assert!(is_valid_ref_name("refs/heads/main"));
        assert!(is_valid_ref_name("refs/tags/v1.0"));
        assert!(is_valid_ref_name("refs/heads/feature/x"));
        assert!(!is_valid_ref_name("main"));
        assert!(!is_valid_ref_name("HEAD"));
        assert!(!is_valid_ref_name("refs/heads/a..b"));
        assert!(!is_valid_ref_name("refs/heads/a b"));
        assert!(!is_valid_ref_name("refs/heads/x.lock"));
        assert!(!is_valid_ref_name("refs/heads/a~1"));
        assert!(!is_valid_ref_name("refs/heads/"));
        assert!(!is_valid_ref_name("refs/heads/a\nb"));
        assert!(!is_valid_ref_name("refs/heads/-x:y"));
    }
}
