//! The extra outputs of one certificate (`akvSync.outputs`), rendered from its material:
//! certbot's PEM files, the leaf as DER (`certDer`) and PKCS#12 (`pfx`), with the PKCS#12
//! password read from `pfxPasswordFile`.
//!
//! The password file must be a regular file owned by root (or by the user akv-sync runs as),
//! writable by nobody else: whoever can write it chooses the password that protects the key.
//! It is opened without following a symbolic link and read whole (at most
//! [`MAX_PASSWORD_BYTES`]); one final newline (`\n` or `\r\n`), which editors and `echo`
//! add, is not part of the password. Errors name the file and never its content.

use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use akv_sync_config::ObservedCertificate;
use zeroize::Zeroizing;

use akv_sync_material::Material;

/// Largest password file read.
pub const MAX_PASSWORD_BYTES: u64 = 4096;

/// Why a password file was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordFault {
    /// No such file.
    Missing,
    /// A symbolic link (not followed).
    Symlink,
    /// A folder, FIFO, socket or device.
    NotRegularFile,
    /// Owned by someone other than root (and the agent's own user).
    NotRootOwned { owner: u32 },
    /// Writable by its group or by others (a POSIX ACL granting write shows as group write).
    Writable { mode: u32 },
    /// Larger than [`MAX_PASSWORD_BYTES`].
    TooLarge,
    /// Not UTF-8 text (the password is text; PBKDF2 takes its UTF-8 bytes).
    NotUtf8,
    /// Could not be opened or read for another reason.
    Unreadable,
}

/// A refused `pfxPasswordFile`: which file, and why.
#[derive(Debug, thiserror::Error)]
#[error("pfxPasswordFile {}: {}", path.display(), describe(*fault))]
pub struct PasswordFileError {
    pub path: PathBuf,
    pub fault: PasswordFault,
    #[source]
    pub source: Option<std::io::Error>,
}

fn describe(fault: PasswordFault) -> String {
    match fault {
        PasswordFault::Missing => "does not exist; create it (root-owned, mode 0600) or remove `pfxPasswordFile` for an empty password".into(),
        PasswordFault::Symlink => "is a symbolic link, which is not followed; point `pfxPasswordFile` at the file itself".into(),
        PasswordFault::NotRegularFile => "is not a regular file".into(),
        PasswordFault::NotRootOwned { owner } => format!("is owned by uid {owner}; expected a file owned by root (chown root: it)"),
        PasswordFault::Writable { mode } => format!("has mode {mode:04o}: writable by its group or others, who could choose the password that protects the key; expected mode 0600 or 0400 (chmod go-w it)"),
        PasswordFault::TooLarge => format!("is larger than {MAX_PASSWORD_BYTES} bytes; expected the password alone"),
        PasswordFault::NotUtf8 => "is not UTF-8 text".into(),
        PasswordFault::Unreadable => "cannot be read".into(),
    }
}

/// The password held by `path`, checked as the module documentation says.
pub fn read_password_file(path: &Path) -> Result<Zeroizing<String>, PasswordFileError> {
    let err = |fault, source| PasswordFileError {
        path: path.to_owned(),
        fault,
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(c) if c == rustix::io::Errno::NOENT.raw_os_error() => {
                err(PasswordFault::Missing, None)
            }
            Some(c) if c == rustix::io::Errno::LOOP.raw_os_error() => {
                err(PasswordFault::Symlink, None)
            }
            _ => err(PasswordFault::Unreadable, Some(e)),
        })?;
    let meta = file
        .metadata()
        .map_err(|e| err(PasswordFault::Unreadable, Some(e)))?;
    if !meta.file_type().is_file() {
        return Err(err(PasswordFault::NotRegularFile, None));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(err(PasswordFault::NotRootOwned { owner: meta.uid() }, None));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(err(
            PasswordFault::Writable {
                mode: meta.mode() & 0o7777,
            },
            None,
        ));
    }
    let mut raw = Zeroizing::new(Vec::new());
    (&file)
        .take(MAX_PASSWORD_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(|e| err(PasswordFault::Unreadable, Some(e)))?;
    if raw.len() as u64 > MAX_PASSWORD_BYTES {
        return Err(err(PasswordFault::TooLarge, None));
    }
    let text = std::str::from_utf8(&raw).map_err(|_| err(PasswordFault::NotUtf8, None))?;
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    Ok(Zeroizing::new(text.to_owned()))
}

/// `O_NOFOLLOW | O_NONBLOCK`: a link is refused, and a FIFO planted there does not block.
fn libc_flags() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

/// One rendered output: file name, content, and whether it holds the key (then it gets the
/// key's mode and ACL).
pub type Rendered = (String, Zeroizing<Vec<u8>>, bool);

/// The extra outputs `cert` asks for, rendered from `m`, with the fingerprint (see
/// [`PasswordWatch`]) of the PFX password when it comes from a file. Fails only on the
/// password file.
pub fn render(
    cert: &ObservedCertificate,
    m: &Material,
    watch: &PasswordWatch,
) -> Result<(Vec<Rendered>, Option<[u8; 32]>), PasswordFileError> {
    let o = &cert.outputs;
    let mut outputs = Vec::new();
    if let Some(name) = &o.cert {
        outputs.push((name.clone(), Zeroizing::new(m.cert_pem()), false));
    }
    if let Some(name) = &o.chain {
        outputs.push((name.clone(), Zeroizing::new(m.chain_pem()), false));
    }
    if let Some(name) = &o.fullchain {
        outputs.push((name.clone(), Zeroizing::new(m.fullchain_pem()), false));
    }
    if let Some(name) = &o.privkey {
        outputs.push((name.clone(), m.key_pem(), true));
    }
    if let Some(name) = &o.cert_der {
        outputs.push((name.clone(), Zeroizing::new(m.cert_der()), false));
    }
    let mut fingerprint = None;
    if let Some(pfx) = &o.pfx {
        let password = match &pfx.password_file {
            Some(path) => {
                let password = read_password_file(path)?;
                fingerprint = Some(watch.fingerprint(&password));
                password
            }
            None => Zeroizing::new(String::new()),
        };
        let friendly_name = pfx.friendly_name.as_deref().unwrap_or(&cert.url.name);
        outputs.push((pfx.file_name.clone(), m.pfx(&password, friendly_name), true));
    }
    Ok((outputs, fingerprint))
}

/// Notices a changed `pfxPasswordFile` while the certificate's version stays the same (a
/// new version rewrites the PFX anyway, and so does every start: the first check of each
/// certificate installs what it downloads).
///
/// It keeps, per (store, certificate), a fingerprint of the password the installed PFX was
/// made with — an HMAC-SHA256 under a key drawn at start, so that not even a hash of the
/// password that could be tested offline is kept — and compares it with the file's current
/// content when the installer is asked which version is on disk.
pub struct PasswordWatch {
    key: ring::hmac::Key,
    installed: std::sync::Mutex<std::collections::HashMap<(PathBuf, String), [u8; 32]>>,
}

impl Default for PasswordWatch {
    fn default() -> Self {
        PasswordWatch {
            key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &rand::random::<[u8; 32]>()),
            installed: Default::default(),
        }
    }
}

impl PasswordWatch {
    fn fingerprint(&self, password: &str) -> [u8; 32] {
        ring::hmac::sign(&self.key, password.as_bytes())
            .as_ref()
            .try_into()
            .expect("HMAC-SHA256 gives 32 bytes")
    }

    fn id(cert: &ObservedCertificate) -> (PathBuf, String) {
        (cert.store.clone(), cert.url.stem())
    }

    /// The certificate's outputs were installed with this password fingerprint.
    pub fn installed(&self, cert: &ObservedCertificate, fingerprint: Option<[u8; 32]>) {
        let mut map = self.lock();
        match fingerprint {
            Some(f) => {
                map.insert(Self::id(cert), f);
            }
            None => {
                map.remove(&Self::id(cert));
            }
        }
    }

    /// Whether the password file now holds another password than the installed PFX's (or
    /// can no longer be read: installing again then reports why).
    pub fn changed(&self, cert: &ObservedCertificate) -> bool {
        let Some(path) = cert
            .outputs
            .pfx
            .as_ref()
            .and_then(|p| p.password_file.as_ref())
        else {
            return false;
        };
        let Some(known) = self.lock().get(&Self::id(cert)).copied() else {
            return false;
        };
        match read_password_file(path) {
            Ok(password) => self.fingerprint(&password) != known,
            Err(_) => true,
        }
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<(PathBuf, String), [u8; 32]>> {
        // Only whole values are stored: a poisoned lock still holds a consistent map.
        self.installed.lock().unwrap_or_else(|e| e.into_inner())
    }
}
