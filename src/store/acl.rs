//! POSIX access ACLs, read and written through an open file descriptor.
//!
//! Why not `exacl` here: on Linux it only offers `acl_get_file`/`acl_set_file`, which take a
//! path and follow symbolic links — the store must never resolve a path twice or follow a
//! link. The kernel's `system.posix_acl_access` extended attribute has a small, stable
//! binary format (`linux/posix_acl_xattr.h`), so the store reads and writes it with
//! `fgetxattr`/`fsetxattr` on the descriptor it already holds. The kernel validates the
//! entries and keeps the mode bits in step (the group bits become the mask). The tests
//! cross-check the result with `getfacl` and with `exacl` (libacl).

use std::collections::BTreeMap;
use std::io;
use std::os::fd::AsFd;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use akv_sync_config::{AclGrant, Principal};

use super::error::StoreError;

const XATTR_NAME: &str = "system.posix_acl_access";
const XATTR_VERSION: u32 = 2;
const TAG_USER_OBJ: u16 = 0x01;
const TAG_USER: u16 = 0x02;
const TAG_GROUP_OBJ: u16 = 0x04;
const TAG_GROUP: u16 = 0x08;
const TAG_MASK: u16 = 0x10;
const TAG_OTHER: u16 = 0x20;
const UNDEFINED_ID: u32 = u32::MAX;

/// Read permission bit of an ACL entry.
pub(crate) const PERM_READ: u16 = 4;
/// Write permission bit of an ACL entry.
pub(crate) const PERM_WRITE: u16 = 2;
/// Execute (traverse, for a folder) permission bit of an ACL entry.
pub(crate) const PERM_EXEC: u16 = 1;

/// User or group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantKind {
    User,
    Group,
}

/// One `acls` entry resolved against this host's user and group databases.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResolvedGrant {
    pub kind: GrantKind,
    /// uid or gid.
    pub id: u32,
    /// The user or group name as the host knows it (for messages).
    pub name: String,
}

/// Resolve the `acls` of one certificate: each `user` and each `group` becomes one
/// [`ResolvedGrant`]. Names are looked up with the host's NSS (`getpwnam_r`/`getgrnam_r`);
/// numeric ids must exist too. Duplicates are merged. A principal that does not exist is
/// [`StoreError::UnknownUser`] / [`StoreError::UnknownGroup`], naming it.
pub fn resolve_grants(grants: &[AclGrant]) -> Result<Vec<ResolvedGrant>, StoreError> {
    use nix::unistd::{Gid, Group, Uid, User};
    let mut out: Vec<ResolvedGrant> = Vec::new();
    let mut push = |g: ResolvedGrant| {
        if !out.iter().any(|o| o.kind == g.kind && o.id == g.id) {
            out.push(g);
        }
    };
    for grant in grants {
        if let Some(user) = &grant.user {
            let unknown = || StoreError::UnknownUser {
                name: user.to_string(),
            };
            let found = match user {
                Principal::Name(n) => User::from_name(n),
                Principal::Id(id) => User::from_uid(Uid::from_raw(*id)),
            }
            .map_err(|_| unknown())?
            .ok_or_else(unknown)?;
            push(ResolvedGrant {
                kind: GrantKind::User,
                id: found.uid.as_raw(),
                name: found.name,
            });
        }
        if let Some(group) = &grant.group {
            let unknown = || StoreError::UnknownGroup {
                name: group.to_string(),
            };
            let found = match group {
                Principal::Name(n) => Group::from_name(n),
                Principal::Id(id) => Group::from_gid(Gid::from_raw(*id)),
            }
            .map_err(|_| unknown())?
            .ok_or_else(unknown)?;
            push(ResolvedGrant {
                kind: GrantKind::Group,
                id: found.gid.as_raw(),
                name: found.name,
            });
        }
    }
    Ok(out)
}

/// An access ACL: the three base entries and the named entries (the mask is derived).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Acl {
    pub user_obj: u16,
    pub group_obj: u16,
    pub other: u16,
    /// Named users and groups with their permission bits.
    pub named: BTreeMap<(GrantKind, u32), u16>,
    /// The mask as stored (`None` for a minimal ACL).
    pub mask: Option<u16>,
}

impl Acl {
    /// The minimal ACL equivalent to a mode.
    pub fn from_mode(mode: u32) -> Acl {
        Acl {
            user_obj: ((mode >> 6) & 7) as u16,
            group_obj: ((mode >> 3) & 7) as u16,
            other: (mode & 7) as u16,
            named: BTreeMap::new(),
            mask: None,
        }
    }

    /// `mode`'s base entries plus `named`, with the mask set to exactly what the named
    /// entries and the owning group need (so every grant is effective and nothing more).
    pub fn with_named(mode: u32, named: BTreeMap<(GrantKind, u32), u16>) -> Acl {
        let mut acl = Acl::from_mode(mode);
        acl.named = named;
        acl.mask = acl.needed_mask();
        acl
    }

    fn needed_mask(&self) -> Option<u16> {
        if self.named.is_empty() {
            None
        } else {
            Some(self.named.values().fold(self.group_obj, |m, p| m | p))
        }
    }

    /// Whether the stored mask lets every named entry have all its permissions.
    pub fn mask_covers_named(&self) -> bool {
        let named = self.named.values().fold(0, |m, p| m | p);
        match self.mask {
            Some(mask) => mask & named == named,
            None => self.named.is_empty(),
        }
    }

    /// Take write off everyone but the owning user: the owning group, other, every named
    /// entry and the mask.
    pub fn close_writes(&mut self) {
        self.group_obj &= !PERM_WRITE;
        self.other &= !PERM_WRITE;
        for perm in self.named.values_mut() {
            *perm &= !PERM_WRITE;
        }
        if let Some(mask) = &mut self.mask {
            *mask &= !PERM_WRITE;
        }
    }

    /// Recompute the mask after editing `named`.
    pub fn fix_mask(&mut self) {
        self.mask = self.needed_mask();
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + 8 * (4 + self.named.len()));
        out.extend_from_slice(&XATTR_VERSION.to_le_bytes());
        let mut put = |tag: u16, perm: u16, id: u32| {
            out.extend_from_slice(&tag.to_le_bytes());
            out.extend_from_slice(&perm.to_le_bytes());
            out.extend_from_slice(&id.to_le_bytes());
        };
        put(TAG_USER_OBJ, self.user_obj, UNDEFINED_ID);
        for ((kind, id), perm) in &self.named {
            if *kind == GrantKind::User {
                put(TAG_USER, *perm, *id);
            }
        }
        // When there is a mask, the kernel reads the group bits of the mode from the mask and
        // keeps the GROUP_OBJ entry's own bits.
        put(TAG_GROUP_OBJ, self.group_obj, UNDEFINED_ID);
        for ((kind, id), perm) in &self.named {
            if *kind == GrantKind::Group {
                put(TAG_GROUP, *perm, *id);
            }
        }
        if let Some(mask) = self.mask {
            put(TAG_MASK, mask, UNDEFINED_ID);
        }
        put(TAG_OTHER, self.other, UNDEFINED_ID);
        out
    }

    fn decode(bytes: &[u8]) -> io::Result<Acl> {
        let bad = || io::Error::new(io::ErrorKind::InvalidData, "malformed posix_acl_access");
        if bytes.len() < 4 || !(bytes.len() - 4).is_multiple_of(8) {
            return Err(bad());
        }
        if u32::from_le_bytes(bytes[0..4].try_into().map_err(|_| bad())?) != XATTR_VERSION {
            return Err(bad());
        }
        let mut acl = Acl::from_mode(0);
        for e in bytes[4..].chunks_exact(8) {
            let tag = u16::from_le_bytes([e[0], e[1]]);
            let perm = u16::from_le_bytes([e[2], e[3]]);
            let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
            match tag {
                TAG_USER_OBJ => acl.user_obj = perm,
                TAG_GROUP_OBJ => acl.group_obj = perm,
                TAG_OTHER => acl.other = perm,
                TAG_MASK => acl.mask = Some(perm),
                TAG_USER => {
                    acl.named.insert((GrantKind::User, id), perm);
                }
                TAG_GROUP => {
                    acl.named.insert((GrantKind::Group, id), perm);
                }
                _ => return Err(bad()),
            }
        }
        Ok(acl)
    }
}

/// Read the access ACL of an open file or folder (the minimal ACL of its mode when it has
/// no extended ACL).
pub(crate) fn read(fd: impl AsFd, mode: u32) -> io::Result<Acl> {
    let fd = fd.as_fd();
    let mut buf = vec![0u8; 256];
    loop {
        match rustix::fs::fgetxattr(fd, XATTR_NAME, &mut buf[..]) {
            Ok(n) => return Acl::decode(&buf[..n]),
            // No extended ACL, or a file system without ACL support: the mode is the ACL.
            Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => return Ok(Acl::from_mode(mode)),
            Err(Errno::RANGE) if buf.len() < (1 << 20) => {
                let need = rustix::fs::fgetxattr_query(fd, XATTR_NAME)?;
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Set the access ACL of an open file or folder. A minimal ACL is written as the mode
/// (and any extended ACL removed).
pub(crate) fn write(fd: impl AsFd, acl: &Acl) -> io::Result<()> {
    let fd = fd.as_fd();
    if acl.named.is_empty() && acl.mask.is_none() {
        match rustix::fs::fremovexattr(fd, XATTR_NAME) {
            Ok(()) | Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
        let mode =
            (u32::from(acl.user_obj) << 6) | (u32::from(acl.group_obj) << 3) | u32::from(acl.other);
        rustix::fs::fchmod(fd, rustix::fs::Mode::from_raw_mode(mode))?;
        return Ok(());
    }
    rustix::fs::fsetxattr(fd, XATTR_NAME, &acl.encode(), XattrFlags::empty())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_round_trips_with_the_mask_covering_the_grants() {
        let mut named = BTreeMap::new();
        named.insert((GrantKind::User, 1001), PERM_READ);
        named.insert((GrantKind::Group, 2002), PERM_READ);
        let acl = Acl::with_named(0o600, named);
        assert_eq!(acl.mask, Some(PERM_READ));
        assert_eq!(Acl::decode(&acl.encode()).unwrap(), acl);
    }

    #[test]
    fn folder_mask_keeps_the_owning_group_bits() {
        let mut named = BTreeMap::new();
        named.insert((GrantKind::User, 1001), PERM_EXEC);
        let acl = Acl::with_named(0o750, named);
        assert_eq!(acl.mask, Some(5));
    }

    #[test]
    fn truncated_xattr_is_refused() {
        assert!(Acl::decode(&[2, 0, 0, 0, 1]).is_err());
        assert!(Acl::decode(&[3, 0, 0, 0]).is_err());
    }
}
