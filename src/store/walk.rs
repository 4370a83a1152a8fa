//! Opening a store folder without trusting its path (issue 15, class 3).
//!
//! The path is walked from `/` one component at a time with
//! `openat(O_NOFOLLOW|O_DIRECTORY)` on the descriptor of the folder before it, so no
//! component is ever resolved through a symbolic link the walk did not check: a link is
//! followed only when root or the agent's user owns it and the folder holding it passed the
//! rules below (so only they could have made it, as `/var/run -> /run`), and its target is
//! walked the same way; anyone else's link is refused. A missing folder on the way is made
//! with `mkdirat` on that descriptor and set to 0755 whatever the umask (ACL readers must be
//! able to traverse it). Every folder on the way must be safe to write below — OpenSSH's
//! StrictModes rule:
//! - it belongs to root or to the agent's own user (its owner could replace what follows);
//! - nobody else can write it (no group/other write bit, which with an ACL is the mask:
//!   a writable named entry shows there), except a sticky folder such as `/tmp`, where
//!   others may create names but not replace ours: there the next component must belong to
//!   root or the agent's user, which the walk checks when it opens it.
//!
//! The last component is the store folder itself; [`super::Store::open`] decides what is
//! accepted there (a folder of the agent's own user, tightened).

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, CWD, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::error::{ParentProblem, StoreError};
use super::reach::Ancestor;

/// How many links the walk follows before giving up (as the kernel's `MAXSYMLINKS`).
const MAX_LINKS: u32 = 40;

/// Mode of the missing folders made on the way to a store folder.
pub const PARENT_MODE: u32 = 0o755;

/// The store folder, opened.
#[derive(Debug)]
pub(crate) struct Walked {
    pub dir: OwnedFd,
    /// Whether this call made the store folder.
    pub created: bool,
    /// The folders above it the agent could open read-only (their ACLs can be read and
    /// changed through these), `/` first.
    pub ancestors: Vec<Ancestor>,
}

fn unsafe_parent(path: &Path, problem: ParentProblem) -> StoreError {
    StoreError::UnsafeParent {
        path: path.to_path_buf(),
        problem,
    }
}

fn io(op: &'static str, path: &Path, e: Errno) -> StoreError {
    if e == Errno::ROFS {
        // The folder that could not be made or changed is the one to open up.
        return StoreError::ReadOnly {
            folder: path.parent().unwrap_or(path).to_path_buf(),
        };
    }
    StoreError::Io {
        op,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

/// Open folder `name` in `parent` without following a link: read-only, or `O_PATH` when the
/// agent may not read it. `Ok(None)` when it does not exist.
fn open_dir(parent: &OwnedFd, name: &OsStr) -> Result<Option<(OwnedFd, bool)>, Errno> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    match rustix::fs::openat(parent, name, flags | OFlags::RDONLY, Mode::empty()) {
        Ok(fd) => Ok(Some((fd, true))),
        Err(Errno::NOENT) => Ok(None),
        Err(Errno::ACCESS) => rustix::fs::openat(parent, name, flags | OFlags::PATH, Mode::empty())
            .map(|fd| Some((fd, false))),
        Err(e) => Err(e),
    }
}

/// What a failed no-follow open of `name` in `parent` met: a link or something else.
fn not_a_folder(parent: &OwnedFd, name: &OsStr) -> ParentProblem {
    match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
            ParentProblem::Symlink
        }
        _ => ParentProblem::NotDirectory,
    }
}

/// Walk `path` from `/` and open the store folder (made with `folder_mode` when missing).
/// `uid` is the agent's own user: folders of root or of `uid` are trusted.
pub(crate) fn open(path: &Path, uid: u32, folder_mode: u32) -> Result<Walked, StoreError> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|source| StoreError::Io {
                op: "read the current folder",
                path: path.to_path_buf(),
                source,
            })?
            .join(path)
    };
    // Components still to walk, next first (a followed link puts its target's in front).
    let mut todo: VecDeque<OsString> = VecDeque::new();
    for c in absolute.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => todo.push_back(n.to_owned()),
            Component::ParentDir | Component::Prefix(_) => {
                return Err(unsafe_parent(path, ParentProblem::NotNormal));
            }
        }
    }
    if todo.is_empty() {
        return Err(unsafe_parent(path, ParentProblem::NotNormal));
    }
    let trusted = |owner: u32| owner == 0 || owner == uid;

    let root = rustix::fs::openat(
        CWD,
        "/",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io("open", Path::new("/"), e))?;
    // The folders walked so far, `/` first: (path, descriptor, opened read-only).
    let mut chain: Vec<(PathBuf, OwnedFd, bool)> = vec![(PathBuf::from("/"), root, true)];
    let mut links = 0;
    while let Some(name) = todo.pop_front() {
        // Only a followed link's target can hold these.
        if name == ".." {
            if chain.len() > 1 {
                chain.pop();
            }
            continue;
        }
        if name == "." || name.is_empty() {
            continue;
        }
        let is_store = todo.is_empty();
        let (here, parent, _) = chain.last().expect("the walk starts at /");
        let st = rustix::fs::fstat(parent).map_err(|e| io("stat", here, e))?;
        if !trusted(st.st_uid) {
            return Err(unsafe_parent(
                here,
                ParentProblem::NotOwned { owner: st.st_uid },
            ));
        }
        let mode = st.st_mode & 0o7777;
        let sticky = mode & 0o1000 != 0;
        if mode & 0o022 != 0 && !sticky {
            return Err(unsafe_parent(here, ParentProblem::Writable { mode }));
        }
        let next = here.join(&name);
        if is_store {
            let (dir, created) = open_store(parent, &name, &next, folder_mode)?;
            let ancestors = chain
                .into_iter()
                .filter(|(_, _, readable)| *readable)
                .map(|(path, fd, _)| Ancestor { path, fd })
                .collect();
            return Ok(Walked {
                dir,
                created,
                ancestors,
            });
        }
        let (fd, readable) = match open_dir(parent, &name) {
            Ok(Some(found)) => found,
            Ok(None) => make_parent(parent, &name, &next)?,
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                // A link root (or the agent's user) made in a folder no one else can write
                // is that owner's choice (`/var/run -> /run`): followed, and every folder of
                // its target checked in turn. Anyone else's link is refused.
                let problem = not_a_folder(parent, &name);
                let link_owner = rustix::fs::statat(parent, &name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| st.st_uid)
                    .ok();
                if problem != ParentProblem::Symlink
                    || !link_owner.is_some_and(trusted)
                    || links >= MAX_LINKS
                {
                    return Err(unsafe_parent(&next, problem));
                }
                links += 1;
                let target = rustix::fs::readlinkat(parent, &name, Vec::new())
                    .map_err(|e| io("read link", &next, e))?;
                let target = PathBuf::from(OsStr::from_bytes(target.as_bytes()));
                if target.is_absolute() {
                    chain.truncate(1);
                }
                for c in target.components().rev() {
                    match c {
                        Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
                        Component::ParentDir => todo.push_front(OsString::from("..")),
                        Component::Normal(n) => todo.push_front(n.to_owned()),
                    }
                }
                continue;
            }
            Err(e) => return Err(io("open", &next, e)),
        };
        // In a sticky folder others may have made this name: it must be ours or root's
        // (checked for every folder on the next round, and here for the clear message).
        let st = rustix::fs::fstat(&fd).map_err(|e| io("stat", &next, e))?;
        if !trusted(st.st_uid) {
            return Err(unsafe_parent(
                &next,
                ParentProblem::NotOwned { owner: st.st_uid },
            ));
        }
        chain.push((next, fd, readable));
    }
    unreachable!("the loop returns at the store folder")
}

/// Make a missing folder on the way, 0755 whatever the umask.
fn make_parent(parent: &OwnedFd, name: &OsStr, path: &Path) -> Result<(OwnedFd, bool), StoreError> {
    let made = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(PARENT_MODE)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(io("create parent folder", path, e)),
    };
    let (fd, readable) = match open_dir(parent, name) {
        Ok(Some(found)) => found,
        Ok(None) => return Err(io("open", path, Errno::NOENT)),
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
            return Err(unsafe_parent(path, not_a_folder(parent, name)));
        }
        Err(e) => return Err(io("open", path, e)),
    };
    if made {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(PARENT_MODE))
            .map_err(|e| io("chmod parent folder", path, e))?;
    }
    Ok((fd, readable))
}

/// Open (or make, with `mode`) the store folder itself, refusing a link or a non-folder.
fn open_store(
    parent: &OwnedFd,
    name: &OsStr,
    path: &Path,
    mode: u32,
) -> Result<(OwnedFd, bool), StoreError> {
    let created = match rustix::fs::mkdirat(parent, name, Mode::from_raw_mode(mode)) {
        Ok(()) => true,
        Err(Errno::EXIST) => false,
        Err(e) => return Err(io("create store folder", path, e)),
    };
    match rustix::fs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok((fd, created)),
        Err(Errno::LOOP) | Err(Errno::NOTDIR) => Err(match not_a_folder(parent, name) {
            ParentProblem::Symlink => StoreError::StoreIsSymlink {
                path: path.to_path_buf(),
            },
            _ => StoreError::StoreNotDirectory {
                path: path.to_path_buf(),
            },
        }),
        Err(e) => Err(io("open store folder", path, e)),
    }
}
