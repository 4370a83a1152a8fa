//! Errors of the store layer.
//!
//! Every variant names the file (or principal) concerned. None of them ever carries file
//! content: the files hold private keys.

use std::io;
use std::path::PathBuf;

/// Which kind of name was refused by [`StoreError::UnsafeName`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Vault,
    Certificate,
    Version,
    /// `customSymbolicLinkName`.
    Link,
    /// The file name of an extra output.
    Output,
}

impl std::fmt::Display for NameKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NameKind::Vault => "vault name",
            NameKind::Certificate => "certificate name",
            NameKind::Version => "version",
            NameKind::Link => "customSymbolicLinkName",
            NameKind::Output => "output file name",
        })
    }
}

/// What was found where the store expected its own file, link or folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    Symlink,
    Directory,
    /// A regular file where a link belongs.
    RegularFile,
    /// A regular file owned by another user, or with more than one hard link: not one the
    /// store created, so it is neither rewritten in place nor given ACLs.
    ForeignFile,
    /// A FIFO, socket or device.
    Special,
}

/// Why an ancestor of a store folder (or the path itself) is not safe to write below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParentProblem {
    /// It is a symbolic link someone other than root and the agent's user made (or one of
    /// more than 40 in a row): never followed.
    Symlink,
    /// It exists and is not a folder.
    NotDirectory,
    /// Someone other than root and the agent's own user can write it (group/other write
    /// bits or a writable ACL entry) and it is not a sticky folder whose next component
    /// belongs to root or the agent: that someone could swap what follows for a link.
    Writable { mode: u32 },
    /// It belongs to a user other than root and the agent's own user.
    NotOwned { owner: u32 },
    /// The path has a `..` component, or is empty.
    NotNormal,
}

impl std::fmt::Display for ParentProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParentProblem::Symlink => {
                f.write_str("it is a symbolic link that is not root's (never followed)")
            }
            ParentProblem::NotDirectory => f.write_str("it is not a folder"),
            ParentProblem::Writable { mode } => write!(
                f,
                "users other than root can write it (mode {mode:o}); make it writable by root only, or move the store"
            ),
            ParentProblem::NotOwned { owner } => write!(
                f,
                "it belongs to uid {owner}, who could replace what is below it; it must belong to root"
            ),
            ParentProblem::NotNormal => f.write_str("the path must be absolute and without `..`"),
        }
    }
}

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A vault, certificate, version, link or output name that could escape the store folder
    /// or collide with the store's own names.
    #[error("unsafe {kind} {name:?}: {reason}")]
    UnsafeName {
        kind: NameKind,
        name: String,
        reason: &'static str,
    },

    /// Something the store did not create sits where its file or link must go (a planted
    /// symlink, a directory, a FIFO, a hard link to another file…). It is refused, never
    /// followed nor overwritten.
    #[error("refusing {path}: found a {found:?} where the store keeps its own file or link")]
    Planted { path: PathBuf, found: Found },

    /// A link the store manages points somewhere the store never points (outside the store,
    /// or not at one of this certificate's version files). It is not followed.
    #[error("link {path} points to {target:?}, which is not a version file of this store")]
    ForeignLink { path: PathBuf, target: PathBuf },

    /// The store folder itself is a symbolic link (refused, never followed).
    #[error("store folder {path} is a symbolic link; refusing to follow it")]
    StoreIsSymlink { path: PathBuf },

    /// The store path exists but is not a directory.
    #[error("store folder {path} is not a directory")]
    StoreNotDirectory { path: PathBuf },

    /// The store folder belongs to another user than the one running akv-sync.
    #[error("store folder {path} is owned by uid {owner}, not by uid {expected} running akv-sync")]
    StoreNotOwned {
        path: PathBuf,
        owner: u32,
        expected: u32,
    },

    /// A folder on the way to the store folder is not safe: the store is not opened and
    /// nothing is created below it.
    #[error("unsafe folder {path} on the way to the store folder: {problem}")]
    UnsafeParent {
        path: PathBuf,
        problem: ParentProblem,
    },

    /// The store folder was removed (or renamed away) while open.
    #[error("store folder {path} vanished while in use")]
    StoreVanished { path: PathBuf },

    /// The file system is full (ENOSPC) or the quota is exhausted (EDQUOT).
    #[error("no space left while writing {path}")]
    NoSpace { path: PathBuf },

    /// The folder cannot be written because its file system is read-only (EROFS): mounted
    /// read-only, or made read-only for this process by a service sandbox (systemd's
    /// `ProtectSystem=strict` outside `ReadWritePaths=`).
    #[error(
        "{folder} is read-only for akv-sync (a read-only mount, or the service sandbox: systemd's ProtectSystem= outside ReadWritePaths=); run `akv-sync handler sandbox` to add the store folders to the unit's ReadWritePaths=, or choose a writable certificateStoreLocation"
    )]
    ReadOnly { folder: PathBuf },

    /// A user named in `acls` does not exist on this host.
    #[error("ACL user {name:?} does not exist on this host")]
    UnknownUser { name: String },

    /// A group named in `acls` does not exist on this host.
    #[error("ACL group {name:?} does not exist on this host")]
    UnknownGroup { name: String },

    /// Reading or writing a POSIX ACL failed (e.g. the file system has no ACL support).
    #[error("POSIX ACL {op} failed on {path}")]
    Acl {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// Any other I/O failure, with the operation and the path.
    #[error("{op} failed on {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl StoreError {
    /// Whether retrying the same install later, with backoff, may succeed without anyone
    /// changing the settings or the store folder: I/O trouble, a full disk, a vanished
    /// folder (re-opened on the next attempt), an ACL call failing, or a user or group
    /// that provisioning may still create. Unsafe names, planted files and links, and a
    /// store folder that is a link, not a folder, or someone else's need a person.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Io { .. }
            | StoreError::NoSpace { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::StoreVanished { .. }
            | StoreError::Acl { .. }
            | StoreError::UnknownUser { .. }
            | StoreError::UnknownGroup { .. } => true,
            StoreError::UnsafeName { .. }
            | StoreError::Planted { .. }
            | StoreError::ForeignLink { .. }
            | StoreError::StoreIsSymlink { .. }
            | StoreError::StoreNotDirectory { .. }
            | StoreError::StoreNotOwned { .. }
            | StoreError::UnsafeParent { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planted_links_need_a_person_and_a_full_disk_does_not() {
        let planted = StoreError::Planted {
            path: "/s/v.c.1".into(),
            found: Found::Symlink,
        };
        assert!(!planted.is_retryable());
        assert!(StoreError::NoSpace { path: "/s".into() }.is_retryable());
    }
}
