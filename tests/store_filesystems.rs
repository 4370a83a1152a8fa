//! The store on small or limited file systems mounted by the test (root only): a full file
//! system, and one without extended attributes (so without POSIX ACLs).

mod store_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use akv_sync::store::{
    GrantKind, InstallOutcome, InstallRequest, ResolvedGrant, Store, StoreError,
};
use store_support::*;

/// A file system mounted on a scratch folder, unmounted when dropped.
struct Mount {
    at: PathBuf,
    _scratch: Scratch,
}

impl Mount {
    fn new(fstype: &str, options: &str) -> Mount {
        assert_root();
        let scratch = scratch();
        let at = scratch.dir.path().join("mnt");
        std::fs::create_dir(&at).unwrap();
        let out = Command::new("mount")
            .args(["-t", fstype, "-o", options, fstype])
            .arg(&at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount {fstype}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Mount {
            at,
            _scratch: scratch,
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.at).output();
    }
}

fn req<'a>(
    version: &'a str,
    pem: &'a [u8],
    acl: Option<&'a [ResolvedGrant]>,
) -> InstallRequest<'a> {
    InstallRequest {
        vault: "vault1",
        name: "web",
        version,
        full_chain_pem: pem,
        link_name: None,
        acl,
        outputs: &[],
        prune_keep: None,
    }
}

fn temporaries_in(dir: &Path) -> usize {
    temporaries(dir).len()
}

#[test]
fn a_full_file_system_is_reported_as_no_space_and_the_current_version_stays() {
    let m = Mount::new("tmpfs", "size=64k,mode=0755");
    let store_path = m.at.join("store");
    let store = Store::open(&store_path).unwrap();
    store
        .install(&req("000000000000000000000000000000a1", b"small PEM", None))
        .unwrap();
    let big = vec![b'A'; 256 * 1024];
    let err = store
        .install(&req("000000000000000000000000000000a2", &big, None))
        .unwrap_err();
    assert!(matches!(err, StoreError::NoSpace { .. }), "{err:?}");
    assert_eq!(
        temporaries_in(&store_path),
        0,
        "the half-written temporary is removed"
    );
    assert_eq!(
        store.current("vault1", "web").unwrap().unwrap().version,
        "000000000000000000000000000000a1"
    );
    assert_eq!(
        std::fs::read(store_path.join("vault1.web")).unwrap(),
        b"small PEM"
    );
    assert_eq!(
        store.versions("vault1", "web").unwrap(),
        ["000000000000000000000000000000a1"]
    );
}

#[test]
fn without_acl_support_plain_installs_work_and_grants_are_an_acl_error() {
    // ramfs has no extended attributes at all.
    let m = Mount::new("ramfs", "mode=0755");
    let store_path = m.at.join("store");
    let store = Store::open(&store_path).unwrap();
    assert!(matches!(
        store
            .install(&req("000000000000000000000000000000a1", b"PEM", None))
            .unwrap(),
        InstallOutcome::Installed { .. }
    ));
    assert_eq!(
        store
            .install(&req("000000000000000000000000000000a1", b"PEM", None))
            .unwrap(),
        InstallOutcome::Unchanged
    );
    let grant = [ResolvedGrant {
        kind: GrantKind::User,
        id: 0,
        name: "root".into(),
    }];
    let err = store
        .install(&req(
            "000000000000000000000000000000a2",
            b"PEM 2",
            Some(&grant),
        ))
        .unwrap_err();
    assert!(matches!(err, StoreError::Acl { .. }), "{err:?}");
    assert_eq!(temporaries_in(&store_path), 0);
    assert_eq!(
        store.current("vault1", "web").unwrap().unwrap().version,
        "000000000000000000000000000000a1"
    );
}

#[test]
fn a_read_only_store_is_reported_as_read_only_naming_the_folder_and_the_fix() {
    // What a sandbox (ProtectSystem=strict without ReadWritePaths=) does to a store folder:
    // the same EROFS as a read-only mount.
    let m = Mount::new("tmpfs", "size=1m,mode=0755");
    let store_path = m.at.join("store");
    let store = Store::open(&store_path).unwrap();
    store
        .install(&req("000000000000000000000000000000a1", b"PEM v1", None))
        .unwrap();
    let out = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&m.at)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let err = store
        .install(&req("000000000000000000000000000000a2", b"PEM v2", None))
        .unwrap_err();
    match &err {
        StoreError::ReadOnly { folder } => assert_eq!(folder, &store_path),
        other => panic!("expected ReadOnly, got {other:?}"),
    }
    let text = err.to_string();
    assert!(
        text.contains(&store_path.display().to_string()) && text.contains("ReadWritePaths="),
        "{text}"
    );
    assert!(!text.contains("Read-only file system"), "{text}");
    assert_eq!(
        std::fs::read(store_path.join("vault1.web")).unwrap(),
        b"PEM v1",
        "the current version stays"
    );

    // A store folder that does not exist yet cannot be made there either.
    let missing = m.at.join("other");
    match Store::open(&missing) {
        Err(StoreError::ReadOnly { folder }) => assert_eq!(folder, m.at),
        other => panic!("expected ReadOnly, got {:?}", other.err()),
    }
}
