//! Traverse for ACL readers on the folders above a store folder (issue 16, point 3).
//!
//! The documented layout keeps stores under `/var/lib/waagent/…`, and `/var/lib/waagent` is
//! 0700 root: a principal granted in `acls` gets `r--` on its files and `--x` on the store
//! folder, yet cannot reach the folder. So each folder above a store that blocks a principal
//! the store folder grants gets a traverse-only entry (`u:app1:--x`: never read, so the
//! principal cannot list it) — only where the folder does not already let it through; the
//! entries the store added are recorded in the folder's `trusted.akv-sync.traverse`
//! attribute (root-only), so that they — and never an administrator's — are removed again
//! when a store stops granting the principal and no other store of this process below that
//! folder grants it. (An entry whose store left the settings while the agent was stopped
//! stays until the setting is turned off.) The ACL mask only ever gains `x`; nothing else
//! about the folder changes.
//!
//! Off (`akvSyncSettings.traverseAncestors: false`): nothing is added, the entries added
//! earlier are removed, and each folder that blocks a granted principal is reported.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustix::fs::XattrFlags;
use rustix::io::Errno;

use super::acl::{self, Acl, GrantKind, PERM_EXEC};
use super::error::StoreError;

/// Attribute listing the traverse entries the store added to a folder (`u:<uid>`/`g:<gid>`
/// lines). `trusted.*`: only root can read or write it.
const MARK: &str = "trusted.akv-sync.traverse";

/// A user or group by id.
pub(crate) type Principal = (GrantKind, u32);

/// A folder above a store, opened read-only by the walk.
#[derive(Debug)]
pub(crate) struct Ancestor {
    pub path: PathBuf,
    pub fd: OwnedFd,
}

/// A folder above a store that keeps a granted principal from reaching it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub folder: PathBuf,
    pub kind: GrantKind,
    pub id: u32,
}

/// Which principals each store folder of this process grants, by folder above it.
static NEEDS: Mutex<BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<Principal>>>> =
    Mutex::new(BTreeMap::new());

fn acl_err(op: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    if source.raw_os_error() == Some(rustix::io::Errno::ROFS.raw_os_error()) {
        return StoreError::ReadOnly {
            folder: path.to_path_buf(),
        };
    }
    StoreError::Acl {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn read_mark(a: &Ancestor) -> Result<BTreeSet<Principal>, StoreError> {
    let mut buf = vec![0u8; 4096];
    let n = match rustix::fs::fgetxattr(&a.fd, MARK, &mut buf[..]) {
        Ok(n) => n,
        Err(Errno::NODATA) | Err(Errno::OPNOTSUPP) => return Ok(BTreeSet::new()),
        Err(Errno::RANGE) => {
            let need = rustix::fs::fgetxattr_query(&a.fd, MARK)
                .map_err(|e| acl_err("read mark", &a.path, e.into()))?;
            buf.resize(need, 0);
            rustix::fs::fgetxattr(&a.fd, MARK, &mut buf[..])
                .map_err(|e| acl_err("read mark", &a.path, e.into()))?
        }
        Err(e) => return Err(acl_err("read mark", &a.path, e.into())),
    };
    Ok(String::from_utf8_lossy(&buf[..n])
        .lines()
        .filter_map(|l| {
            let (k, id) = l.split_once(':')?;
            let kind = match k {
                "u" => GrantKind::User,
                "g" => GrantKind::Group,
                _ => return None,
            };
            Some((kind, id.parse().ok()?))
        })
        .collect())
}

fn write_mark(a: &Ancestor, mark: &BTreeSet<Principal>) -> Result<(), StoreError> {
    let r = if mark.is_empty() {
        match rustix::fs::fremovexattr(&a.fd, MARK) {
            Err(Errno::NODATA) => Ok(()),
            r => r,
        }
    } else {
        let text: String = mark
            .iter()
            .map(|(k, id)| match k {
                GrantKind::User => format!("u:{id}\n"),
                GrantKind::Group => format!("g:{id}\n"),
            })
            .collect();
        rustix::fs::fsetxattr(&a.fd, MARK, text.as_bytes(), XattrFlags::empty())
    };
    r.map_err(|e| acl_err("write mark", &a.path, e.into()))
}

/// The groups a user is in (primary and supplementary), from the host's databases.
fn groups_of(uid: u32) -> Vec<u32> {
    let Ok(Some(user)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user.name) else {
        return vec![user.gid.as_raw()];
    };
    nix::unistd::getgrouplist(&name, user.gid)
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|_| vec![user.gid.as_raw()])
}

/// Whether the folder's mode and ACL let `p` traverse it (POSIX ACL access check).
fn lets_through(acl: &Acl, owner: u32, group: u32, p: Principal) -> bool {
    let x = |perm: u16| perm & acl.mask.unwrap_or(7) & PERM_EXEC != 0;
    let (kind, id) = p;
    if kind == GrantKind::User {
        if id == owner {
            return acl.user_obj & PERM_EXEC != 0;
        }
        if let Some(perm) = acl.named.get(&(GrantKind::User, id)) {
            return x(*perm);
        }
    }
    let groups = match kind {
        GrantKind::User => groups_of(id),
        GrantKind::Group => vec![id],
    };
    let mut matched = false;
    for g in groups {
        if g == group {
            matched = true;
            if x(acl.group_obj) {
                return true;
            }
        }
        if let Some(perm) = acl.named.get(&(GrantKind::Group, g)) {
            matched = true;
            if x(*perm) {
                return true;
            }
        }
    }
    !matched && acl.other & PERM_EXEC != 0
}

/// Record that `store` grants `principals`, then bring every folder above it in line: a
/// traverse entry for each principal some store below it grants and it blocks, none left
/// of those the store added and no store needs. `enabled: false` adds nothing (and removes
/// what was added). Returns the folders that still block one of `principals`.
pub(crate) fn reconcile(
    store: &Path,
    ancestors: &[Ancestor],
    principals: &BTreeSet<Principal>,
    enabled: bool,
) -> Result<Vec<Blocked>, StoreError> {
    // A poisoned lock only means another reconcile panicked; the map is still usable.
    let mut needs = NEEDS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut blocked = Vec::new();
    for a in ancestors {
        let by_store = needs.entry(a.path.clone()).or_default();
        let before = by_store.get(store).cloned().unwrap_or_default();
        if enabled && !principals.is_empty() {
            by_store.insert(store.to_path_buf(), principals.clone());
        } else {
            by_store.remove(store);
        }
        let needed: BTreeSet<Principal> = if enabled {
            by_store.values().flatten().copied().collect()
        } else {
            BTreeSet::new()
        };
        let st = rustix::fs::fstat(&a.fd).map_err(|e| acl_err("stat", &a.path, e.into()))?;
        let have = acl::read(&a.fd, st.st_mode & 0o777).map_err(|e| acl_err("read", &a.path, e))?;
        let old_mark = read_mark(a)?;
        let mut mark = old_mark.clone();
        let mut want = have.clone();
        // Ours and no longer needed: take the traverse back. Only for a principal this store
        // stopped granting (or everything, turned off): right after a start, another store
        // below the same folder may simply not have been installed yet, and its readers
        // must not lose their way in meanwhile.
        for p in mark.clone() {
            if !needed.contains(&p) && (!enabled || before.contains(&p)) {
                if let Some(perm) = want.named.get_mut(&p) {
                    *perm &= !PERM_EXEC;
                    if *perm == 0 {
                        want.named.remove(&p);
                    }
                }
                mark.remove(&p);
            }
        }
        for p in &needed {
            if !lets_through(&want, st.st_uid, st.st_gid, *p) {
                *want.named.entry(*p).or_insert(0) |= PERM_EXEC;
                mark.insert(*p);
            }
        }
        if want != have {
            want.mask = if want.named.is_empty() {
                None
            } else {
                // Only ever widen by traverse: never read or write for anyone.
                Some(have.mask.unwrap_or(want.group_obj) | PERM_EXEC)
            };
            // Mark first: an entry added is always one the store knows it added.
            write_mark(a, &mark.union(&old_mark).copied().collect())?;
            acl::write(&a.fd, &want).map_err(|e| acl_err("write", &a.path, e))?;
            tracing::info!(folder = %a.path.display(), store = %store.display(), "traverse entries for ACL readers updated on a folder above the store");
        }
        if mark != old_mark {
            write_mark(a, &mark)?;
        }
        for p in principals {
            if !lets_through(&want, st.st_uid, st.st_gid, *p) {
                blocked.push(Blocked {
                    folder: a.path.clone(),
                    kind: p.0,
                    id: p.1,
                });
            }
        }
    }
    Ok(blocked)
}

/// The existing folders above `store` (its path as given, not created) that keep one of
/// `principals` out, as they are now: what `validate` warns about when
/// `traverseAncestors` is off. Opened by path without following the last component; a
/// folder that cannot be opened is skipped (the daemon reports it when it opens the store).
pub fn blocked_ancestors(store: &Path, principals: &[(GrantKind, u32)]) -> Vec<Blocked> {
    use rustix::fs::{CWD, Mode, OFlags};
    let mut out = Vec::new();
    for folder in store.ancestors().skip(1) {
        if folder.as_os_str().is_empty() {
            continue;
        }
        let Ok(fd) = rustix::fs::openat(
            CWD,
            folder,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            continue;
        };
        let Ok(st) = rustix::fs::fstat(&fd) else {
            continue;
        };
        let Ok(acl) = acl::read(&fd, st.st_mode & 0o777) else {
            continue;
        };
        for p in principals {
            if !lets_through(&acl, st.st_uid, st.st_gid, *p) {
                out.push(Blocked {
                    folder: folder.to_path_buf(),
                    kind: p.0,
                    id: p.1,
                });
            }
        }
    }
    out.reverse();
    out
}
