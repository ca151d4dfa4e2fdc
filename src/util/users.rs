//! Users and groups of this machine, from the C library (`/etc/passwd` and `/etc/group`, or
//! whatever the system's name service says): names for messages, and group membership for a
//! `shared_group`.

use std::ffi::{CStr, CString};

/// The effective uid of this process.
pub fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// A user's name and primary group.
struct UserEntry {
    name: String,
    gid: u32,
}

/// Calls a `get*_r` function with a buffer that grows until the entry fits.
fn with_buffer<T>(mut lookup: impl FnMut(&mut [libc::c_char]) -> Result<Option<T>, libc::c_int>) -> Option<T> {
    let mut size = 1024;
    loop {
        let mut buf = vec![0 as libc::c_char; size];
        match lookup(&mut buf) {
            Ok(found) => return found,
            Err(libc::ERANGE) if size < 1 << 20 => size *= 4,
            Err(_) => return None,
        }
    }
}

fn user_entry(uid: u32) -> Option<UserEntry> {
    with_buffer(|buf| {
        // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; the strings it sets point into `buf`.
        let rc = unsafe { libc::getpwuid_r(uid, &mut entry, buf.as_mut_ptr(), buf.len(), &mut found) };
        if rc != 0 {
            return Err(rc);
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: pw_name is a NUL-terminated string in `buf`, alive here.
        let name = unsafe { CStr::from_ptr(entry.pw_name) }.to_string_lossy().into_owned();
        Ok(Some(UserEntry {
            name,
            gid: entry.pw_gid,
        }))
    })
}

/// A group's id and the names of its listed members.
struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// # Safety
/// `entry` must have been filled by `getgrnam_r`/`getgrgid_r` with a buffer still alive.
unsafe fn group_from(entry: &libc::group) -> GroupEntry {
    let mut members = Vec::new();
    let mut member = entry.gr_mem;
    // SAFETY: gr_mem is a NULL-terminated array of NUL-terminated strings (the caller's contract).
    unsafe {
        while !member.is_null() && !(*member).is_null() {
            members.push(CStr::from_ptr(*member).to_string_lossy().into_owned());
            member = member.add(1);
        }
        GroupEntry {
            name: CStr::from_ptr(entry.gr_name).to_string_lossy().into_owned(),
            gid: entry.gr_gid,
            members,
        }
    }
}

/// Runs `getgrnam_r` or `getgrgid_r` (given as `call`) with a buffer that grows until the entry fits.
fn group_lookup(
    call: impl Fn(&mut libc::group, &mut [libc::c_char], &mut *mut libc::group) -> libc::c_int,
) -> Option<GroupEntry> {
    with_buffer(|buf| {
        // SAFETY: an all-zero group is a valid value for getgr*_r to fill.
        let mut entry: libc::group = unsafe { std::mem::zeroed() };
        let mut found: *mut libc::group = std::ptr::null_mut();
        let rc = call(&mut entry, buf, &mut found);
        if rc != 0 {
            return Err(rc);
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: filled by getgr*_r just above, its buffer `buf` still alive.
        Ok(Some(unsafe { group_from(&entry) }))
    })
}

fn group_by_name(name: &str) -> Option<GroupEntry> {
    let name = CString::new(name).ok()?;
    group_lookup(|entry, buf, found| {
        // SAFETY: every pointer is valid for the call; the strings it sets point into `buf`.
        unsafe { libc::getgrnam_r(name.as_ptr(), entry, buf.as_mut_ptr(), buf.len(), found) }
    })
}

fn group_by_id(gid: u32) -> Option<GroupEntry> {
    group_lookup(|entry, buf, found| {
        // SAFETY: every pointer is valid for the call; the strings it sets point into `buf`.
        unsafe { libc::getgrgid_r(gid, entry, buf.as_mut_ptr(), buf.len(), found) }
    })
}

/// A user's name, or its number when it has none.
pub fn user_name(uid: u32) -> String {
    user_entry(uid).map_or_else(|| uid.to_string(), |user| user.name)
}

/// A group's name, or its number when it has none.
pub fn group_name(gid: u32) -> String {
    group_by_id(gid).map_or_else(|| gid.to_string(), |group| group.name)
}

/// A group the admin named (`shared_group`), resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    /// The members listed in the group database (users whose primary group it is are members too).
    members: Vec<String>,
}

impl Group {
    /// Looks a group up by name (or number).
    pub fn by_name(name: &str) -> Option<Group> {
        let entry = group_by_name(name).or_else(|| name.parse().ok().and_then(group_by_id))?;
        Some(Group {
            name: entry.name,
            gid: entry.gid,
            members: entry.members,
        })
    }

    /// Whether the user `uid` belongs to the group (as its primary group, or listed in it).
    pub fn has_member(&self, uid: u32) -> bool {
        user_entry(uid).is_some_and(|user| user.gid == self.gid || self.members.contains(&user.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_named_and_belongs_to_its_group() {
        assert_eq!(user_name(0), "root");
        assert_eq!(group_name(0), "root");
        let root = Group::by_name("root").expect("every Linux system has a root group");
        assert_eq!(root.gid, 0);
        assert!(root.has_member(0));
        assert_eq!(Group::by_name("0").map(|g| g.name), Some("root".to_string()));
        assert!(Group::by_name("no-such-group-gpm").is_none());
        assert_eq!(
            user_name(4_000_000_000),
            "4000000000",
            "a uid without a name shows as its number"
        );
    }
}
