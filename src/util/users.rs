//! Users and groups by id, for messages that say who must be able to do what ("as user git (uid
//! 1001)", `sudo -u git`) and for judging another user's access to a directory: names, and the
//! groups a user belongs to. Lookups go through the C library (in this program, `/etc/passwd`
//! and `/etc/group` only: see `main.rs`); and the group the admin names as `shared_group`.

use std::ffi::{CStr, CString};

/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A buffer size for the `*_r` lookups: what the system suggests, at least 16 KiB.
fn buffer_size(which: libc::c_int) -> usize {
    // SAFETY: sysconf has no preconditions.
    let suggested = unsafe { libc::sysconf(which) };
    usize::try_from(suggested).unwrap_or(0).max(16 * 1024)
}

/// The name and primary group of the user `uid`, if the user database knows it.
fn passwd_entry(uid: u32) -> Option<(String, u32)> {
    let mut buf = vec![0u8; buffer_size(libc::_SC_GETPW_R_SIZE_MAX)];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill in.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size.
    let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || entry.pw_name.is_null() {
        return None;
    }
    // SAFETY: on success pw_name points to a NUL-terminated string inside `buf`, still alive.
    let name = unsafe { CStr::from_ptr(entry.pw_name) }.to_string_lossy().into_owned();
    Some((name, entry.pw_gid))
}

/// The user's name, if the user database knows `uid`.
pub fn user_name(uid: u32) -> Option<String> {
    passwd_entry(uid).map(|(name, _)| name)
}

/// The group's name, if the group database knows `gid`.
pub fn group_name(gid: u32) -> Option<String> {
    let mut buf = vec![0u8; buffer_size(libc::_SC_GETGR_R_SIZE_MAX)];
    // SAFETY: an all-zero group is a valid value for getgrgid_r to fill in.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size.
    let rc = unsafe { libc::getgrgid_r(gid, &mut entry, buf.as_mut_ptr().cast(), buf.len(), &mut found) };
    if rc != 0 || found.is_null() || entry.gr_name.is_null() {
        return None;
    }
    // SAFETY: on success gr_name points to a NUL-terminated string inside `buf`, still alive.
    Some(unsafe { CStr::from_ptr(entry.gr_name) }.to_string_lossy().into_owned())
}

/// How a user is named in messages and commands: the name, else the number (`sudo -u '#1001'`
/// takes it too).
pub fn user_label(uid: u32) -> String {
    user_name(uid).unwrap_or_else(|| format!("#{uid}"))
}

/// How a group is named in messages and commands: the name, else the number.
pub fn group_label(gid: u32) -> String {
    group_name(gid).unwrap_or_else(|| gid.to_string())
}

/// The groups of the user `uid`: its primary group and every group that lists it. Empty when
/// the user database does not know the user.
pub fn groups_of(uid: u32) -> Vec<u32> {
    let Some((name, primary)) = passwd_entry(uid) else {
        return Vec::new();
    };
    let Ok(c_name) = CString::new(name) else {
        return vec![primary];
    };
    let mut count: libc::c_int = 64;
    loop {
        let mut groups: Vec<libc::gid_t> = vec![0; usize::try_from(count).unwrap_or(64)];
        let asked = count;
        // SAFETY: `groups` holds `count` entries; getgrouplist writes at most that many and
        // sets `count` to the number it has (or needs).
        let rc = unsafe { libc::getgrouplist(c_name.as_ptr(), primary, groups.as_mut_ptr(), &mut count) };
        if rc >= 0 {
            groups.truncate(usize::try_from(count).unwrap_or(0));
            return groups;
        }
        if count <= asked {
            // No progress: the C library cannot say; the primary group at least is certain.
            return vec![primary];
        }
    }
}

/// A group the admin named (`shared_group`), resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
}

impl Group {
    /// Looks a group up by name (or number).
    pub fn by_name(name: &str) -> Option<Group> {
        if let Some(gid) = group_gid(name) {
            return Some(Group {
                name: name.to_string(),
                gid,
            });
        }
        let gid: u32 = name.parse().ok()?;
        group_name(gid).map(|name| Group { name, gid })
    }

    /// Whether the user `uid` belongs to the group (as its primary group, or listed in it).
    pub fn has_member(&self, uid: u32) -> bool {
        groups_of(uid).contains(&self.gid)
    }
}

/// The id of the group named `name`, if the group database knows it.
fn group_gid(name: &str) -> Option<u32> {
    let c_name = CString::new(name).ok()?;
    let mut buf = vec![0u8; buffer_size(libc::_SC_GETGR_R_SIZE_MAX)];
    // SAFETY: an all-zero group is a valid value for getgrnam_r to fill in.
    let mut entry: libc::group = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call and `buf.len()` is the buffer's real size.
    let rc = unsafe {
        libc::getgrnam_r(
            c_name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut found,
        )
    };
    (rc == 0 && !found.is_null()).then_some(entry.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_known_by_name_and_its_groups_include_its_primary_group() {
        assert_eq!(user_name(0).as_deref(), Some("root"));
        assert_eq!(group_name(0).as_deref(), Some("root"));
        assert!(groups_of(0).contains(&0));
    }

    #[test]
    fn a_shared_group_is_found_by_name_or_number_and_knows_its_members() {
        let root = Group::by_name("root").expect("every Linux system has a root group");
        assert_eq!(root.gid, 0);
        assert!(root.has_member(0));
        assert_eq!(Group::by_name("0").map(|g| g.name), Some("root".to_string()));
        assert!(Group::by_name("no-such-group-gpm").is_none());
    }

    #[test]
    fn unknown_ids_are_named_by_number() {
        let nobody_has = 3_999_999_999;
        assert_eq!(user_name(nobody_has), None);
        assert_eq!(user_label(nobody_has), "#3999999999");
        assert_eq!(group_label(nobody_has), "3999999999");
        assert!(groups_of(nobody_has).is_empty());
    }
}
