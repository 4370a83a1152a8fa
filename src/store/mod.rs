//! The store: atomic versioned files, links, permissions and POSIX ACLs.
//!
//! The only code in akv-sync that writes certificates to disk. Layout (SPEC §3), for vault
//! `v`, certificate `c`, version `V` in store folder `S`:
//!
//! ```text
//! S/v.c      -> v.c.V    relative symlink to the current version
//! S/v.c.V                full-chain PEM, private key last, 0600 (+ ACL)
//! S/v.c.V0               earlier versions stay unless pruning is asked for
//! S/custom   -> v.c.V    customSymbolicLinkName, when set
//! S/<output>             extra outputs (certbot layout), when set
//! ```
//!
//! Guarantees:
//! - The folder is opened once (`O_DIRECTORY|O_NOFOLLOW`) and every operation is relative to
//!   that descriptor (`openat`, `renameat`, `symlinkat`, `readlinkat`, `fstatat` with
//!   `AT_SYMLINK_NOFOLLOW`): nothing is resolved through a link and nothing is written
//!   outside the folder.
//! - Every file appears atomically: a temporary name (`.akv-sync.tmp.<pid>.<n>`) is created
//!   `O_CREAT|O_EXCL|O_NOFOLLOW` with mode 0600, its final mode and ACL are set **before any
//!   content is written**, then content, `fsync`, `renameat`, `fsync` of the folder. A link
//!   is replaced by creating a temporary symlink and renaming it over the old one. At no
//!   instant can a reader see a partial file, or a key through an ACL it is not entitled to.
//! - A file already holding the wanted bytes is not written at all (mtime and inode stay);
//!   only its ACL and the links are corrected if they drifted.
//! - Something the store did not create where its file or link goes (a symlink, a folder, a
//!   FIFO, a file owned by someone else or with extra hard links) is refused and reported
//!   ([`StoreError::Planted`]), never followed.
//!
//! All calls are synchronous; the writer actor runs them on `spawn_blocking`.

mod acl;
mod error;
pub mod install;
mod name;
pub mod output;
mod reach;
mod walk;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use akv_sync_config::layout;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;
use zeroize::Zeroizing;

pub use acl::{GrantKind, ResolvedGrant, resolve_grants};
pub use error::{Found, NameKind, ParentProblem, StoreError};
pub use name::TEMP_PREFIX;
pub use reach::{Blocked, blocked_ancestors};

use acl::{Acl, PERM_EXEC, PERM_READ};

/// Mode of the store folder when akv-sync creates it.
pub const FOLDER_MODE: u32 = 0o700;
/// Mode of every key-bearing file (before ACL entries, which show as group bits = mask).
pub const KEY_FILE_MODE: u32 = 0o600;
/// Mode of the public extra outputs (certificate, chain, full chain), as certbot does.
pub const PUBLIC_FILE_MODE: u32 = 0o644;

/// How many temporary names are tried before giving up (each taken name is skipped, never
/// opened: it may be a link someone planted).
const TEMP_ATTEMPTS: u32 = 1000;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One extra output file (certbot layout), written with the same guarantees as the version
/// file. `secret` files get the key-file mode 0600 and the certificate's ACL; the others are
/// public data and get 0644 (the folder's own mode and ACL still decide who can reach them).
#[derive(Clone, Copy)]
pub struct Output<'a> {
    pub file_name: &'a str,
    pub content: &'a [u8],
    pub secret: bool,
}

impl std::fmt::Debug for Output<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("file_name", &self.file_name)
            .field("content", &format_args!("<{} bytes>", self.content.len()))
            .field("secret", &self.secret)
            .finish()
    }
}

/// Everything one install pass of one certificate needs.
#[derive(Clone, Copy)]
pub struct InstallRequest<'a> {
    pub vault: &'a str,
    pub name: &'a str,
    pub version: &'a str,
    /// The full-chain PEM with the private key last (key-bearing).
    pub full_chain_pem: &'a [u8],
    /// `customSymbolicLinkName`.
    pub link_name: Option<&'a str>,
    /// `None` when `aclEnabled` is false: the certificate's files carry no named ACL entries
    /// (entries a previous pass set are removed). `Some(grants)`: exactly these principals
    /// get read on the key-bearing files; entries for anyone else are removed.
    pub acl: Option<&'a [ResolvedGrant]>,
    /// Extra outputs (certbot layout).
    pub outputs: &'a [Output<'a>],
    /// Keep at most this many version files of this certificate (newest by installation
    /// time); the current version is always kept. `None` keeps everything.
    pub prune_keep: Option<usize>,
}

impl std::fmt::Debug for InstallRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstallRequest")
            .field("vault", &self.vault)
            .field("name", &self.name)
            .field("version", &self.version)
            .field(
                "full_chain_pem",
                &format_args!("<{} bytes>", self.full_chain_pem.len()),
            )
            .field("link_name", &self.link_name)
            .field("acl", &self.acl)
            .field("outputs", &self.outputs)
            .field("prune_keep", &self.prune_keep)
            .finish()
    }
}

/// What an install pass did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// Everything was already as asked; nothing was written.
    Unchanged,
    /// The version file was written and the links point at it. `previous_version` is the
    /// version the link pointed at before (equal to the installed one when the same version
    /// was on disk with different bytes and has been replaced — Key Vault versions are
    /// immutable, so that means a damaged file or a changed conversion; it is logged).
    Installed {
        path: PathBuf,
        previous_version: Option<String>,
    },
    /// The version file was already right; only ACLs, links or extra outputs were fixed.
    Repaired,
}

/// The version a certificate's link points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub version: String,
    /// Path of the version file (`<store>/<vault>.<name>.<version>`).
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
}

/// An open store folder.
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    dir: OwnedFd,
    uid: u32,
    /// The folder's ACL is shared by every certificate and updated read-modify-write;
    /// installs of different certificates may run on different threads.
    folder_acl: std::sync::Mutex<()>,
    /// Between [`Store::begin_batch`] and [`Store::end_batch`]: the folder's version files
    /// by certificate, from one listing kept up to date with this store's own writes.
    batch: std::sync::Mutex<Batch>,
    /// A link was renamed into place in this batch and the folder not synced since: the
    /// batch's end syncs it once (see [`Store::end_batch`]).
    links_unsynced: std::sync::atomic::AtomicBool,
    /// The folders above the store folder (see `reach.rs`).
    ancestors: Vec<reach::Ancestor>,
    /// Whether granted principals get traverse on the folders above that block them.
    traverse_ancestors: std::sync::atomic::AtomicBool,
    /// What the folders above were last brought in line with (on, principals).
    reached: std::sync::Mutex<Option<(bool, BTreeSet<reach::Principal>)>>,
}

/// How long one listing of the folder may stand in for a fresh one in batches of installs.
const LISTING_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(1);

/// Versions by certificate stem, as a listing of the folder shows them.
type Listing = BTreeMap<String, BTreeSet<String>>;

/// A listing of the folder and when it was made.
type Timed = Option<(std::time::Instant, Listing)>;

#[derive(Debug)]
enum Batch {
    /// Between batches: the last batch's listing, kept (and kept up to date) so that the
    /// next batch within [`LISTING_MAX_AGE`] need not list the folder again. Installs
    /// outside a batch do not use it.
    Off(Timed),
    On(Timed),
}

use layout::split_version;

/// Whether the process that made a temporary (`<pid>.<n>` after [`TEMP_PREFIX`]) no longer
/// exists. A name of another form is not one of ours and is left alone. (A pid reused by an
/// unrelated process keeps its left-over until that process ends: harmless.)
fn temp_owner_is_gone(rest: &[u8]) -> bool {
    let Some(pid) = std::str::from_utf8(rest)
        .ok()
        .and_then(|r| r.split_once('.'))
        .and_then(|(pid, _)| pid.parse::<i32>().ok())
        .filter(|pid| *pid > 0)
    else {
        return false;
    };
    matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// Take every write permission but the owner's off an existing store folder: group and
/// other bits, the owning group's and named ACL entries and the mask. Whoever can write the
/// folder can swap the files and links readers rely on. Read and traverse bits an
/// administrator chose are left alone (the key files are 0600 anyway).
fn close_folder(dir: &OwnedFd, path: &Path, mode: u32) -> Result<(), StoreError> {
    let acl_err = |op, source| StoreError::Acl {
        op,
        path: path.to_path_buf(),
        source,
    };
    let have = acl::read(dir, mode & 0o777).map_err(|e| acl_err("read", e))?;
    let mut want = have.clone();
    want.close_writes();
    if want == have && mode & 0o022 == 0 {
        return Ok(());
    }
    tracing::warn!(
        store = %path.display(),
        mode = format_args!("{mode:o}"),
        "store folder could be written by others (mode, owning group or ACL entries); removing those write permissions"
    );
    if want.named.is_empty() && want.mask.is_none() {
        // Keep the set-id and sticky bits: only the write bits go.
        rustix::fs::fchmod(dir, Mode::from_raw_mode(mode & !0o022)).map_err(|e| StoreError::Io {
            op: "chmod store folder",
            path: path.to_path_buf(),
            source: e.into(),
        })
    } else {
        acl::write(dir, &want).map_err(|e| acl_err("write", e))
    }
}

/// A version with its modification time (seconds, nanoseconds), for sorting by age.
type Aged = ((i64, i64), String);

/// A regular file of ours, opened read-only without following links.
struct OurFile {
    fd: OwnedFd,
    stat: Stat,
}

impl Store {
    /// Open the store folder, creating it (mode 0700, missing parents 0755, whatever the
    /// umask) when absent. The path is walked from `/` without following any link, and
    /// every folder on the way must be root's (or the agent user's) and writable by no one
    /// else, a sticky folder such as `/tmp` excepted (see `walk.rs`); otherwise
    /// [`StoreError::UnsafeParent`] names the folder and nothing is created.
    ///
    /// Refused: a store path that is a symbolic link ([`StoreError::StoreIsSymlink`]), not a
    /// folder, or a folder owned by another user ([`StoreError::StoreNotOwned`]: its owner
    /// could change its mode and ACL at any time, so no guarantee below would hold). An
    /// existing folder that others can *write* — group/other bits, the owning group's or a
    /// named ACL entry, the mask — is tightened (that write permission is removed, with a
    /// warning), and no later ACL change gives it back: whoever can write the folder can swap
    /// the files and links readers rely on, while removing write takes no read access away.
    /// Read and traverse permissions an administrator chose are left alone.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let path = path.to_path_buf();
        let uid = nix::unistd::geteuid().as_raw();
        let walk::Walked {
            dir,
            created,
            ancestors,
        } = walk::open(&path, uid, FOLDER_MODE)?;
        let st = rustix::fs::fstat(&dir).map_err(|e| StoreError::Io {
            op: "stat store folder",
            path: path.clone(),
            source: e.into(),
        })?;
        if st.st_uid != uid {
            return Err(StoreError::StoreNotOwned {
                path,
                owner: st.st_uid,
                expected: uid,
            });
        }
        let mode = st.st_mode & 0o7777;
        if created {
            // Whatever the umask.
            if mode != FOLDER_MODE {
                rustix::fs::fchmod(&dir, Mode::from_raw_mode(FOLDER_MODE)).map_err(|e| {
                    StoreError::Io {
                        op: "chmod store folder",
                        path: path.clone(),
                        source: e.into(),
                    }
                })?;
            }
        } else {
            close_folder(&dir, &path, mode)?;
        }
        Ok(Store {
            path,
            dir,
            uid,
            folder_acl: std::sync::Mutex::new(()),
            batch: std::sync::Mutex::new(Batch::Off(None)),
            links_unsynced: std::sync::atomic::AtomicBool::new(false),
            ancestors,
            traverse_ancestors: std::sync::atomic::AtomicBool::new(true),
            reached: std::sync::Mutex::new(None),
        })
    }

    /// Whether principals granted in this store get traverse-only (`--x`) ACL entries on the
    /// folders above it that would keep them out (on by default; `traverseAncestors`). Off,
    /// the entries added earlier are removed and each blocking folder is warned about.
    pub fn set_traverse_ancestors(&self, on: bool) {
        self.traverse_ancestors.store(on, Ordering::Relaxed);
    }

    /// Bring the folders above in line with the principals the store folder lets in; done
    /// again only when those (or the setting) changed.
    fn reach_ancestors(&self, principals: BTreeSet<reach::Principal>) -> Result<(), StoreError> {
        let on = self.traverse_ancestors.load(Ordering::Relaxed);
        let mut reached = self
            .reached
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Some((on, principals));
        if *reached == now {
            return Ok(());
        }
        let (_, principals) = now.as_ref().expect("just set");
        for b in reach::reconcile(&self.path, &self.ancestors, principals, on)? {
            tracing::warn!(
                store = %self.path.display(),
                folder = %b.folder.display(),
                principal = %format_args!("{}:{}", if b.kind == GrantKind::User { "user" } else { "group" }, b.id),
                "a folder above the store keeps a granted principal out (traverseAncestors is off): it cannot read its certificate"
            );
        }
        *reached = now;
        Ok(())
    }

    /// The store folder as given to [`Store::open`].
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Remove the temporary files and links a crash left behind: names starting with
    /// [`TEMP_PREFIX`] whose process id (the part after the prefix) names no running
    /// process. Temporaries of a live process — this one included — are left alone.
    /// Returns how many were removed.
    pub fn clean_temporaries(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self.list()? {
            let Some(rest) = entry.as_bytes().strip_prefix(TEMP_PREFIX.as_bytes()) else {
                continue;
            };
            // `<pid>.<n>`: only a process that no longer exists has left it behind; another
            // process (a `once` beside the daemon, a second store of this one) may be
            // writing it right now.
            if !temp_owner_is_gone(rest) {
                continue;
            }
            match rustix::fs::unlinkat(&self.dir, entry.as_os_str(), AtFlags::empty()) {
                Ok(()) => removed += 1,
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.io_err("remove temporary file", entry.as_os_str(), e)),
            }
        }
        if removed > 0 {
            self.sync_folder()?;
            tracing::info!(store = %self.path.display(), removed, "removed left-over temporary files");
        }
        Ok(removed)
    }

    /// The version the `<vault>.<name>` link points at, if the link exists and its target
    /// is one of this certificate's version files. A dangling link gives `None` (the version
    /// will be installed again); a link pointing anywhere else is
    /// [`StoreError::ForeignLink`] and is not followed; a non-link at that name is
    /// [`StoreError::Planted`].
    pub fn current(&self, vault: &str, name: &str) -> Result<Option<Current>, StoreError> {
        name::check_part(NameKind::Vault, vault)?;
        name::check_part(NameKind::Certificate, name)?;
        let stem = layout::stem(vault, name);
        let Some(version) = self.link_version(&stem)? else {
            return Ok(None);
        };
        let file = layout::version_file(&stem, &version);
        match self.open_ours(&file)? {
            None => Ok(None),
            Some(f) => Ok(Some(Current {
                version,
                path: self.path.join(&file),
                size: f.stat.st_size as u64,
            })),
        }
    }

    /// The versions of this certificate present in the store, oldest installation first
    /// (by file modification time, then name).
    pub fn versions(&self, vault: &str, name: &str) -> Result<Vec<String>, StoreError> {
        name::check_part(NameKind::Vault, vault)?;
        name::check_part(NameKind::Certificate, name)?;
        Ok(self
            .versions_by_age(&layout::stem(vault, name))?
            .into_iter()
            .map(|(_, v)| v)
            .collect())
    }

    /// Start a batch of installs: until [`Store::end_batch`], finding a certificate's earlier
    /// versions reuses one listing of the folder (at most [`LISTING_MAX_AGE`] old, and kept
    /// up to date with this store's own writes) instead of listing the folder per install,
    /// which made an initial sync of N certificates in one folder cost O(N^2). A version
    /// file someone else adds meanwhile is seen by the next listing, as a file added right
    /// after a listing always was.
    pub fn begin_batch(&self) {
        let mut batch = self.batch_lock();
        if let Batch::Off(kept) = &mut *batch {
            *batch = Batch::On(kept.take());
        }
    }

    /// End the batch: link changes made in the batch are made durable with one `fsync` of
    /// the folder. The listing is kept for a next batch that begins within
    /// [`LISTING_MAX_AGE`] of it: a writer ends a batch every few dozen installs, and
    /// listing a folder of 100,000 files that often cost more than the installs.
    ///
    /// Within a batch a link's rename is not followed by its own folder `fsync`: the next
    /// install's `fsync` (after its version file's rename) covers it, and this one covers
    /// the last. The order that matters after a power loss still holds — a version file's
    /// rename is durable before any link to it is renamed — and a batch of N new versions
    /// costs N + 1 folder syncs instead of 2N. The writer answers the batch's installs only
    /// after this returns.
    pub fn end_batch(&self) -> Result<(), StoreError> {
        {
            let mut batch = self.batch_lock();
            if let Batch::On(listing) = &mut *batch {
                *batch = Batch::Off(listing.take());
            }
        }
        if self.links_unsynced.swap(false, Ordering::AcqRel) {
            self.sync_folder().inspect_err(|_| {
                self.links_unsynced.store(true, Ordering::Release);
            })?;
        }
        Ok(())
    }

    fn batch_lock(&self) -> std::sync::MutexGuard<'_, Batch> {
        // A poisoned lock only means an install panicked; the listing is still consistent
        // enough to be dropped or rebuilt.
        self.batch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The version files of certificate `stem` a listing of the folder shows.
    fn version_names(&self, stem: &str) -> Result<Vec<String>, StoreError> {
        let mut batch = self.batch_lock();
        let Batch::On(cached) = &mut *batch else {
            let mut index = Listing::new();
            self.index_into(&mut index, Some(stem))?;
            return Ok(index.remove(stem).map(Vec::from_iter).unwrap_or_default());
        };
        if cached
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() > LISTING_MAX_AGE)
        {
            let mut index = Listing::new();
            self.index_into(&mut index, None)?;
            *cached = Some((std::time::Instant::now(), index));
        }
        let (_, index) = cached.as_ref().expect("listing just made");
        Ok(index
            .get(stem)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// List the folder into `index` (only `stem`'s versions when given).
    fn index_into(&self, index: &mut Listing, only: Option<&str>) -> Result<(), StoreError> {
        for entry in self.list()? {
            let Some((stem, version)) = entry.to_str().and_then(split_version) else {
                continue;
            };
            if only.is_none_or(|o| o == stem) {
                index
                    .entry(stem.to_owned())
                    .or_default()
                    .insert(version.to_owned());
            }
        }
        Ok(())
    }

    /// Keep the batch's listing in step with a file this store added or removed.
    fn note(&self, name: &str, present: bool) {
        if let Batch::On(Some((_, index))) | Batch::Off(Some((_, index))) = &mut *self.batch_lock()
            && let Some((stem, version)) = split_version(name)
        {
            let versions = index.entry(stem.to_owned()).or_default();
            if present {
                versions.insert(version.to_owned());
            } else {
                versions.remove(version);
            }
        }
    }

    /// Install (or confirm) one version of one certificate; see the module documentation
    /// for the guarantees and [`InstallOutcome`] for the result.
    pub fn install(&self, req: &InstallRequest<'_>) -> Result<InstallOutcome, StoreError> {
        name::check_part(NameKind::Vault, req.vault)?;
        name::check_part(NameKind::Certificate, req.name)?;
        name::check_part(NameKind::Version, req.version)?;
        let stem = layout::stem(req.vault, req.name);
        let file = layout::version_file(&stem, req.version);
        if file.len() > 255 {
            return Err(StoreError::UnsafeName {
                kind: NameKind::Version,
                name: req.version.to_owned(),
                reason: "the file name <vault>.<name>.<version> would be longer than 255 bytes",
            });
        }
        if let Some(link) = req.link_name {
            name::check_file_name(NameKind::Link, link, &stem)?;
        }
        let mut seen = BTreeSet::new();
        for out in req.outputs {
            name::check_file_name(NameKind::Output, out.file_name, &stem)?;
            if Some(out.file_name) == req.link_name || !seen.insert(out.file_name) {
                return Err(StoreError::UnsafeName {
                    kind: NameKind::Output,
                    name: out.file_name.to_owned(),
                    reason: "it is used twice (by another output or the custom link)",
                });
            }
        }

        let granted: BTreeSet<(GrantKind, u32)> = req
            .acl
            .unwrap_or_default()
            .iter()
            .map(|g| (g.kind, g.id))
            .collect();
        let key_acl = Acl::with_named(
            KEY_FILE_MODE,
            granted.iter().map(|p| (*p, PERM_READ)).collect(),
        );
        let public_acl = Acl::from_mode(PUBLIC_FILE_MODE);

        let previous = match self.link_version(&stem) {
            Ok(v) => v,
            // A link pointing somewhere else is ours to replace (never followed).
            Err(StoreError::ForeignLink { .. }) => None,
            Err(e) => return Err(e),
        };

        let mut repaired = false;
        let mut revoked = false;
        // Whether the current version file's ACL had to change (then earlier versions may
        // need the same change).
        let mut current_acl_changed = false;

        // 1. The version file.
        let written = match self.open_ours(&file)? {
            None => {
                self.put_file(&file, req.full_chain_pem, &key_acl, false)?;
                true
            }
            Some(existing) => {
                if self.same_content(&existing, &file, req.full_chain_pem)? {
                    let (fixed, rev) = self.fix_acl(&existing, &file, &key_acl)?;
                    repaired |= fixed;
                    revoked |= rev;
                    current_acl_changed = fixed;
                    false
                } else {
                    tracing::warn!(
                        vault = req.vault,
                        certificate = req.name,
                        version = req.version,
                        "version already on disk with different content; replacing it atomically"
                    );
                    self.put_file(&file, req.full_chain_pem, &key_acl, true)?;
                    true
                }
            }
        };

        // 2. Extra outputs.
        for out in req.outputs {
            let want = if out.secret { &key_acl } else { &public_acl };
            match self.open_ours(out.file_name)? {
                None => {
                    self.put_file(out.file_name, out.content, want, false)?;
                    repaired = true;
                }
                Some(existing) => {
                    if self.same_content(&existing, out.file_name, out.content)? {
                        let (fixed, rev) = self.fix_acl(&existing, out.file_name, want)?;
                        repaired |= fixed;
                        revoked |= rev;
                    } else {
                        self.put_file(out.file_name, out.content, want, true)?;
                        repaired = true;
                    }
                }
            }
        }

        // 3. Links, after everything they lead to is in place.
        repaired |= self.put_link(&stem, &file)?;
        if let Some(link) = req.link_name {
            repaired |= self.put_link(link, &file)?;
        }

        // 4. Earlier versions hold earlier keys: same ACL as the current one. Listing the
        //    folder costs O(files in the store), so it is done only when something changed
        //    or pruning is asked for — an unchanged pass stays O(1).
        let by_age = if written || current_acl_changed || req.prune_keep.is_some() {
            self.versions_by_age(&stem)?
        } else {
            Vec::new()
        };
        for (_, version) in &by_age {
            if version == req.version {
                continue;
            }
            let old = layout::version_file(&stem, version);
            if let Some(existing) = self.open_ours(&old)? {
                let (fixed, rev) = self.fix_acl(&existing, &old, &key_acl)?;
                repaired |= fixed;
                revoked |= rev;
            }
        }

        // 5. Traverse on the folder for every granted principal; entries for principals no
        //    file grants any more are removed when something was revoked.
        let (changed, folder_principals) = self.sync_folder_acl(&granted, revoked)?;
        repaired |= changed;
        // 5b. …and on the folders above that would keep them out.
        self.reach_ancestors(folder_principals)?;

        // 6. Opt-in pruning (never the current version).
        if let Some(keep) = req.prune_keep {
            let mut removed = 0usize;
            for (_, version) in by_age.iter().rev().skip(keep) {
                if version == req.version {
                    continue;
                }
                let old = layout::version_file(&stem, version);
                match rustix::fs::unlinkat(&self.dir, old.as_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {
                        self.note(&old, false);
                        removed += 1
                    }
                    Err(e) => return Err(self.io_err("remove pruned version", old.as_ref(), e)),
                }
            }
            if removed > 0 {
                self.sync_folder()?;
                tracing::info!(
                    vault = req.vault,
                    certificate = req.name,
                    removed,
                    "pruned old versions"
                );
            }
        }

        Ok(if written {
            InstallOutcome::Installed {
                path: self.path.join(&file),
                previous_version: previous,
            }
        } else if repaired {
            InstallOutcome::Repaired
        } else {
            InstallOutcome::Unchanged
        })
    }

    // ---- internals -------------------------------------------------------------------------

    fn at(&self, name: impl AsRef<OsStr>) -> PathBuf {
        self.path.join(name.as_ref())
    }

    /// Map an errno to the error variant that says what happened.
    fn io_err(&self, op: &'static str, name: &OsStr, e: Errno) -> StoreError {
        let path = self.at(name);
        if e == Errno::NOSPC || e == Errno::DQUOT {
            return StoreError::NoSpace { path };
        }
        if e == Errno::ROFS {
            return StoreError::ReadOnly {
                folder: self.path.clone(),
            };
        }
        if e == Errno::NOENT && rustix::fs::fstat(&self.dir).is_ok_and(|st| st.st_nlink == 0) {
            return StoreError::StoreVanished {
                path: self.path.clone(),
            };
        }
        StoreError::Io {
            op,
            path,
            source: e.into(),
        }
    }

    fn acl_err(&self, op: &'static str, name: &OsStr, source: std::io::Error) -> StoreError {
        let path = self.at(name);
        match source.raw_os_error() {
            Some(c) if c == Errno::NOSPC.raw_os_error() || c == Errno::DQUOT.raw_os_error() => {
                StoreError::NoSpace { path }
            }
            Some(c) if c == Errno::ROFS.raw_os_error() => StoreError::ReadOnly {
                folder: self.path.clone(),
            },
            _ => StoreError::Acl { op, path, source },
        }
    }

    fn sync_folder(&self) -> Result<(), StoreError> {
        rustix::fs::fsync(&self.dir)
            .map_err(|e| self.io_err("fsync store folder", OsStr::new(""), e))
    }

    /// Names in the folder (without `.` and `..`).
    fn list(&self) -> Result<Vec<std::ffi::OsString>, StoreError> {
        let err = |e| self.io_err("read store folder", OsStr::new(""), e);
        let dir = rustix::fs::Dir::read_from(&self.dir).map_err(err)?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(err)?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_owned());
            }
        }
        Ok(names)
    }

    /// Open `name` if it is a regular file the store could have created (owned by us, one
    /// hard link). Missing → `None`; anything else → [`StoreError::Planted`].
    fn open_ours(&self, name: &str) -> Result<Option<OurFile>, StoreError> {
        let planted = |found| StoreError::Planted {
            path: self.at(name),
            found,
        };
        let classify = |st: &Stat| match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile if st.st_uid == self.uid && st.st_nlink == 1 => None,
            FileType::RegularFile => Some(Found::ForeignFile),
            FileType::Symlink => Some(Found::Symlink),
            FileType::Directory => Some(Found::Directory),
            _ => Some(Found::Special),
        };
        let st = match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.io_err("stat", name.as_ref(), e)),
        };
        if let Some(found) = classify(&st) {
            return Err(planted(found));
        }
        let fd = match rustix::fs::openat(
            &self.dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(Errno::LOOP) => return Err(planted(Found::Symlink)),
            Err(e) => return Err(self.io_err("open", name.as_ref(), e)),
        };
        let stat = rustix::fs::fstat(&fd).map_err(|e| self.io_err("stat", name.as_ref(), e))?;
        if let Some(found) = classify(&stat) {
            return Err(planted(found));
        }
        Ok(Some(OurFile { fd, stat }))
    }

    fn same_content(&self, f: &OurFile, name: &str, want: &[u8]) -> Result<bool, StoreError> {
        if f.stat.st_size as u64 != want.len() as u64 {
            return Ok(false);
        }
        let mut have = Zeroizing::new(Vec::with_capacity(want.len() + 1));
        let mut file = std::fs::File::from(f.fd.try_clone().map_err(|e| StoreError::Io {
            op: "duplicate descriptor",
            path: self.at(name),
            source: e,
        })?);
        // Read one byte more than expected to notice a file that grew since fstat.
        (&mut file)
            .take(want.len() as u64 + 1)
            .read_to_end(&mut have)
            .map_err(|source| StoreError::Io {
                op: "read",
                path: self.at(name),
                source,
            })?;
        Ok(have.as_slice() == want)
    }

    /// Make an existing file's ACL (and so its mode) exactly `want`. Returns (changed,
    /// revoked: some named entry was removed).
    fn fix_acl(&self, f: &OurFile, name: &str, want: &Acl) -> Result<(bool, bool), StoreError> {
        let have = acl::read(&f.fd, f.stat.st_mode & 0o777)
            .map_err(|e| self.acl_err("read", name.as_ref(), e))?;
        if &have == want {
            return Ok((false, false));
        }
        let revoked = have.named.keys().any(|p| !want.named.contains_key(p));
        acl::write(&f.fd, want).map_err(|e| self.acl_err("write", name.as_ref(), e))?;
        Ok((true, revoked))
    }

    fn temp_name() -> String {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{TEMP_PREFIX}{}.{n}", std::process::id())
    }

    /// Write `content` to `name` atomically, with `acl` (and so the mode) in place before
    /// the first byte is written. `replace`: an existing file of ours may be replaced;
    /// otherwise the rename refuses to replace anything.
    fn put_file(
        &self,
        name: &str,
        content: &[u8],
        acl: &Acl,
        replace: bool,
    ) -> Result<(), StoreError> {
        let mut attempts = 0;
        let (tmp, fd) = loop {
            let tmp = Self::temp_name();
            match rustix::fs::openat(
                &self.dir,
                tmp.as_str(),
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(KEY_FILE_MODE),
            ) {
                Ok(fd) => break (tmp, fd),
                // Taken (perhaps by a planted link): never opened, try the next name.
                Err(Errno::EXIST) if attempts < TEMP_ATTEMPTS => attempts += 1,
                Err(e) => return Err(self.io_err("create temporary file", tmp.as_ref(), e)),
            }
        };
        let result = self.fill_and_rename(fd, &tmp, name, content, acl, replace);
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, tmp.as_str(), AtFlags::empty());
        }
        result
    }

    fn fill_and_rename(
        &self,
        fd: OwnedFd,
        tmp: &str,
        name: &str,
        content: &[u8],
        acl: &Acl,
        replace: bool,
    ) -> Result<(), StoreError> {
        // The file is empty and 0600 (or less, by umask) here; set mode and ACL first.
        acl::write(&fd, acl).map_err(|e| self.acl_err("write", tmp.as_ref(), e))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(content)
            .and_then(|()| file.sync_all())
            .map_err(|source| match source.raw_os_error() {
                Some(c) if c == Errno::NOSPC.raw_os_error() || c == Errno::DQUOT.raw_os_error() => {
                    StoreError::NoSpace {
                        path: self.at(name),
                    }
                }
                Some(c) if c == Errno::ROFS.raw_os_error() => StoreError::ReadOnly {
                    folder: self.path.clone(),
                },
                _ => StoreError::Io {
                    op: "write temporary file",
                    path: self.at(tmp),
                    source,
                },
            })?;
        drop(file);
        if replace {
            // Still ours? (checked again right before the rename; a rename never follows a
            // link, so this only decides what is reported.)
            self.open_ours(name)?;
            rustix::fs::renameat(&self.dir, tmp, &self.dir, name)
                .map_err(|e| self.io_err("rename", name.as_ref(), e))?;
        } else {
            match rustix::fs::renameat_with(&self.dir, tmp, &self.dir, name, RenameFlags::NOREPLACE)
            {
                Ok(()) => {}
                Err(Errno::EXIST) => {
                    // Appeared since we looked: report what it is.
                    self.open_ours(name)?;
                    return Err(StoreError::Planted {
                        path: self.at(name),
                        found: Found::RegularFile,
                    });
                }
                // File systems without RENAME_NOREPLACE.
                Err(Errno::INVAL) => rustix::fs::renameat(&self.dir, tmp, &self.dir, name)
                    .map_err(|e| self.io_err("rename", name.as_ref(), e))?,
                Err(e) => return Err(self.io_err("rename", name.as_ref(), e)),
            }
        }
        self.note(name, true);
        // This sync also makes every link renamed before it durable.
        let pending = self.links_unsynced.swap(false, Ordering::AcqRel);
        self.sync_folder().inspect_err(|_| {
            if pending {
                self.links_unsynced.store(true, Ordering::Release);
            }
        })
    }

    /// The target of link `name`, `None` when there is no such link.
    fn read_link(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match rustix::fs::readlinkat(&self.dir, name, Vec::new()) {
            Ok(t) => Ok(Some(t.into_bytes())),
            Err(Errno::NOENT) => Ok(None),
            Err(Errno::INVAL) => {
                // Exists but is not a symlink.
                let found = match rustix::fs::statat(&self.dir, name, AtFlags::SYMLINK_NOFOLLOW)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                {
                    Ok(FileType::Directory) => Found::Directory,
                    Ok(FileType::RegularFile) => Found::RegularFile,
                    _ => Found::Special,
                };
                Err(StoreError::Planted {
                    path: self.at(name),
                    found,
                })
            }
            Err(e) => Err(self.io_err("read link", name.as_ref(), e)),
        }
    }

    /// The version the certificate link `stem` points at, checking it is one of ours.
    fn link_version(&self, stem: &str) -> Result<Option<String>, StoreError> {
        let Some(target) = self.read_link(stem)? else {
            return Ok(None);
        };
        let foreign = || StoreError::ForeignLink {
            path: self.at(stem),
            target: PathBuf::from(OsStr::from_bytes(&target)),
        };
        let version = std::str::from_utf8(&target)
            .ok()
            .and_then(|t| t.strip_prefix(stem))
            .and_then(|t| t.strip_prefix('.'))
            .ok_or_else(foreign)?;
        name::check_part(NameKind::Version, version).map_err(|_| foreign())?;
        Ok(Some(version.to_owned()))
    }

    /// Point link `name` at `target` (a file name in the folder). Returns whether it changed.
    fn put_link(&self, name: &str, target: &str) -> Result<bool, StoreError> {
        if self.read_link(name)?.as_deref() == Some(target.as_bytes()) {
            return Ok(false);
        }
        let mut attempts = 0;
        let tmp = loop {
            let tmp = Self::temp_name();
            match rustix::fs::symlinkat(target, &self.dir, tmp.as_str()) {
                Ok(()) => break tmp,
                Err(Errno::EXIST) if attempts < TEMP_ATTEMPTS => attempts += 1,
                Err(e) => return Err(self.io_err("create temporary link", tmp.as_ref(), e)),
            }
        };
        let result = (|| {
            // Re-check right before the rename so a non-link is reported, not replaced.
            self.read_link(name)?;
            rustix::fs::renameat(&self.dir, tmp.as_str(), &self.dir, name)
                .map_err(|e| self.io_err("rename link", name.as_ref(), e))?;
            if matches!(*self.batch_lock(), Batch::On(_)) {
                self.links_unsynced.store(true, Ordering::Release);
                Ok(())
            } else {
                self.sync_folder()
            }
        })();
        if result.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, tmp.as_str(), AtFlags::empty());
        }
        result.map(|()| true)
    }

    /// This certificate's version files, oldest first: ((mtime s, ns), version).
    fn versions_by_age(&self, stem: &str) -> Result<Vec<Aged>, StoreError> {
        let mut out = Vec::new();
        for version in self.version_names(stem)? {
            let entry = layout::version_file(stem, &version);
            match rustix::fs::statat(&self.dir, entry.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                // The time fields are narrower than i64 on some 32-bit targets.
                #[allow(clippy::unnecessary_cast)]
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile => {
                    out.push(((st.st_mtime as i64, st.st_mtime_nsec as i64), version));
                }
                Ok(_) | Err(Errno::NOENT) => {}
                Err(e) => return Err(self.io_err("stat", entry.as_ref(), e)),
            }
        }
        out.sort();
        Ok(out)
    }

    /// Give every principal in `granted` traverse (`x`) on the folder; when `revoked`,
    /// also drop the traverse-only entries of principals that no file in the folder grants
    /// any more (entries with other permissions are an administrator's and are kept).
    fn sync_folder_acl(
        &self,
        granted: &BTreeSet<(GrantKind, u32)>,
        revoked: bool,
    ) -> Result<(bool, BTreeSet<reach::Principal>), StoreError> {
        // A poisoned lock only means another install panicked; the ACL is re-read anyway.
        let _guard = self
            .folder_acl
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let st = rustix::fs::fstat(&self.dir)
            .map_err(|e| self.io_err("stat store folder", OsStr::new(""), e))?;
        let have = acl::read(&self.dir, st.st_mode & 0o777)
            .map_err(|e| self.acl_err("read", OsStr::new(""), e))?;
        let mut want = have.clone();
        for p in granted {
            *want.named.entry(*p).or_insert(0) |= PERM_EXEC;
        }
        if revoked {
            let in_use = self.principals_in_use()?;
            want.named
                .retain(|p, perm| *perm != PERM_EXEC || granted.contains(p) || in_use.contains(p));
        }
        // No one but the owner writes the folder, whatever was added since it was opened:
        // the mask rebuilt below never gives write back.
        want.close_writes();
        let through = want
            .named
            .iter()
            .filter(|(_, perm)| **perm & PERM_EXEC != 0)
            .map(|(p, _)| *p)
            .collect();
        if want.named == have.named
            && (want.group_obj, want.other) == (have.group_obj, have.other)
            && have.mask_covers_named()
        {
            return Ok((false, through));
        }
        want.fix_mask();
        acl::write(&self.dir, &want).map_err(|e| self.acl_err("write", OsStr::new(""), e))?;
        Ok((true, through))
    }

    /// Every principal named in the ACL of a regular file in the folder.
    fn principals_in_use(&self) -> Result<BTreeSet<(GrantKind, u32)>, StoreError> {
        let mut all = BTreeSet::new();
        for entry in self.list()? {
            let Some(n) = entry.to_str() else { continue };
            if n.starts_with(TEMP_PREFIX) {
                continue;
            }
            // Anything that is not a plain file of ours grants nothing we manage.
            if let Ok(Some(f)) = self.open_ours(n) {
                let acl: BTreeMap<_, _> = acl::read(&f.fd, f.stat.st_mode & 0o777)
                    .map_err(|e| self.acl_err("read", entry.as_os_str(), e))?
                    .named;
                all.extend(acl.into_keys());
            }
        }
        Ok(all)
    }
}
