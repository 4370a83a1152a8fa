//! The store's layout, modes, idempotence, rotation, links, outputs and pruning.

mod store_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use akv_sync::store::{InstallOutcome, InstallRequest, Output, Store};
use store_support::*;

fn req<'a>(version: &'a str, pem: &'a [u8]) -> InstallRequest<'a> {
    InstallRequest {
        vault: "exampleVault",
        name: "myCertificate",
        version,
        full_chain_pem: pem,
        link_name: None,
        acl: None,
        outputs: &[],
        prune_keep: None,
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn first_install_creates_a_0700_folder_a_0600_file_and_a_relative_link() {
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "a");
    let store = Store::open(&s.store).unwrap();
    assert_eq!(mode(&s.store), 0o700);

    let outcome = store
        .install(&req("000000000000000000000000000000a1", &pem))
        .unwrap();
    let file = s
        .store
        .join("exampleVault.myCertificate.000000000000000000000000000000a1");
    assert_eq!(
        outcome,
        InstallOutcome::Installed {
            path: file.clone(),
            previous_version: None
        }
    );
    assert_eq!(mode(&file), 0o600);
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), 0);
    let link = s.store.join("exampleVault.myCertificate");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("exampleVault.myCertificate.000000000000000000000000000000a1")
    );
    assert_eq!(std::fs::read(&link).unwrap(), pem);

    let current = store
        .current("exampleVault", "myCertificate")
        .unwrap()
        .unwrap();
    assert_eq!(current.version, "000000000000000000000000000000a1");
    assert_eq!(current.path, file);
    assert_eq!(current.size, pem.len() as u64);
    assert!(temporaries(&s.store).is_empty());
}

#[test]
fn unchanged_install_writes_nothing() {
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "a");
    let store = Store::open(&s.store).unwrap();
    let mut r = req("000000000000000000000000000000a1", &pem);
    r.link_name = Some("custom.pem");
    let outputs = [Output {
        file_name: "cert.pem",
        content: b"public",
        secret: false,
    }];
    r.outputs = &outputs;
    store.install(&r).unwrap();

    let names = [
        "exampleVault.myCertificate.000000000000000000000000000000a1",
        "exampleVault.myCertificate",
        "custom.pem",
        "cert.pem",
    ];
    let before: Vec<_> = names
        .iter()
        .map(|n| {
            let m = std::fs::symlink_metadata(s.store.join(n)).unwrap();
            (
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )
        })
        .collect();
    let folder_before = std::fs::metadata(&s.store).unwrap();

    assert_eq!(store.install(&r).unwrap(), InstallOutcome::Unchanged);

    let after: Vec<_> = names
        .iter()
        .map(|n| {
            let m = std::fs::symlink_metadata(s.store.join(n)).unwrap();
            (
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )
        })
        .collect();
    assert_eq!(before, after);
    let folder_after = std::fs::metadata(&s.store).unwrap();
    assert_eq!(folder_before.mtime_nsec(), folder_after.mtime_nsec());
    assert_eq!(folder_before.mtime(), folder_after.mtime());
}

#[test]
fn rotation_moves_the_link_and_keeps_the_earlier_version() {
    let s = scratch();
    let a = pem_fixture(s.dir.path(), "a");
    let b = pem_fixture(s.dir.path(), "b");
    let store = Store::open(&s.store).unwrap();
    store
        .install(&req("000000000000000000000000000000a1", &a))
        .unwrap();
    let outcome = store
        .install(&req("000000000000000000000000000000a2", &b))
        .unwrap();
    assert_eq!(
        outcome,
        InstallOutcome::Installed {
            path: s
                .store
                .join("exampleVault.myCertificate.000000000000000000000000000000a2"),
            previous_version: Some("000000000000000000000000000000a1".into())
        }
    );
    assert_eq!(
        std::fs::read(s.store.join("exampleVault.myCertificate")).unwrap(),
        b
    );
    assert_eq!(
        std::fs::read(
            s.store
                .join("exampleVault.myCertificate.000000000000000000000000000000a1")
        )
        .unwrap(),
        a
    );
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        [
            "000000000000000000000000000000a1",
            "000000000000000000000000000000a2"
        ]
    );
    assert_eq!(
        store
            .current("exampleVault", "myCertificate")
            .unwrap()
            .unwrap()
            .version,
        "000000000000000000000000000000a2"
    );
}

#[test]
fn custom_link_points_at_the_current_version_and_follows_rotation() {
    let s = scratch();
    let a = pem_fixture(s.dir.path(), "a");
    let b = pem_fixture(s.dir.path(), "b");
    let store = Store::open(&s.store).unwrap();
    let mut r = req("000000000000000000000000000000a1", &a);
    r.link_name = Some("nginx.pem");
    store.install(&r).unwrap();
    assert_eq!(
        std::fs::read_link(s.store.join("nginx.pem")).unwrap(),
        Path::new("exampleVault.myCertificate.000000000000000000000000000000a1")
    );
    let mut r = req("000000000000000000000000000000a2", &b);
    r.link_name = Some("nginx.pem");
    store.install(&r).unwrap();
    assert_eq!(
        std::fs::read_link(s.store.join("nginx.pem")).unwrap(),
        Path::new("exampleVault.myCertificate.000000000000000000000000000000a2")
    );
    assert_eq!(std::fs::read(s.store.join("nginx.pem")).unwrap(), b);
}

#[test]
fn a_link_changed_by_hand_is_repaired_without_rewriting_the_file() {
    let s = scratch();
    let a = pem_fixture(s.dir.path(), "a");
    let store = Store::open(&s.store).unwrap();
    store
        .install(&req("000000000000000000000000000000a1", &a))
        .unwrap();
    let file = s
        .store
        .join("exampleVault.myCertificate.000000000000000000000000000000a1");
    let ino = std::fs::metadata(&file).unwrap().ino();
    let link = s.store.join("exampleVault.myCertificate");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("elsewhere", &link).unwrap();
    assert_eq!(
        store
            .install(&req("000000000000000000000000000000a1", &a))
            .unwrap(),
        InstallOutcome::Repaired
    );
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("exampleVault.myCertificate.000000000000000000000000000000a1")
    );
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino);
}

#[test]
fn extra_outputs_are_written_with_key_and_public_modes_and_refreshed_on_rotation() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    let make = |v: &'static str| {
        [
            Output {
                file_name: "cert.pem",
                content: format!("cert {v}").into_bytes().leak(),
                secret: false,
            },
            Output {
                file_name: "fullchain.pem",
                content: format!("full {v}").into_bytes().leak(),
                secret: false,
            },
            Output {
                file_name: "privkey.pem",
                content: format!("key {v}").into_bytes().leak(),
                secret: true,
            },
        ]
    };
    let o1 = make("1");
    let mut r = req("000000000000000000000000000000a1", b"pem 1");
    r.outputs = &o1;
    store.install(&r).unwrap();
    assert_eq!(mode(&s.store.join("cert.pem")), 0o644);
    assert_eq!(mode(&s.store.join("fullchain.pem")), 0o644);
    assert_eq!(mode(&s.store.join("privkey.pem")), 0o600);
    assert_eq!(
        std::fs::read(s.store.join("privkey.pem")).unwrap(),
        b"key 1"
    );

    let o2 = make("2");
    let mut r = req("000000000000000000000000000000a2", b"pem 2");
    r.outputs = &o2;
    assert!(matches!(
        store.install(&r).unwrap(),
        InstallOutcome::Installed { .. }
    ));
    assert_eq!(std::fs::read(s.store.join("cert.pem")).unwrap(), b"cert 2");
    assert_eq!(
        std::fs::read(s.store.join("privkey.pem")).unwrap(),
        b"key 2"
    );

    // An output edited by hand is put back (atomically) on the next pass.
    std::fs::write(s.store.join("cert.pem"), b"tampered").unwrap();
    assert_eq!(store.install(&r).unwrap(), InstallOutcome::Repaired);
    assert_eq!(std::fs::read(s.store.join("cert.pem")).unwrap(), b"cert 2");
    assert!(temporaries(&s.store).is_empty());
}

#[test]
fn pruning_keeps_the_newest_versions_and_never_the_current_one() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    for v in [
        "000000000000000000000000000000a1",
        "000000000000000000000000000000a2",
        "000000000000000000000000000000a3",
        "000000000000000000000000000000a4",
    ] {
        store.install(&req(v, v.as_bytes())).unwrap();
    }
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        [
            "000000000000000000000000000000a1",
            "000000000000000000000000000000a2",
            "000000000000000000000000000000a3",
            "000000000000000000000000000000a4"
        ]
    );
    let mut r = req(
        "000000000000000000000000000000a5",
        b"000000000000000000000000000000a5",
    );
    r.prune_keep = Some(2);
    store.install(&r).unwrap();
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        [
            "000000000000000000000000000000a4",
            "000000000000000000000000000000a5"
        ]
    );

    // Going back to an old pinned version: it stays even though it is not among the newest.
    let mut r = req(
        "000000000000000000000000000000a0",
        b"000000000000000000000000000000a0",
    );
    r.prune_keep = Some(0);
    store.install(&r).unwrap();
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        ["000000000000000000000000000000a0"]
    );
    assert_eq!(
        store
            .current("exampleVault", "myCertificate")
            .unwrap()
            .unwrap()
            .version,
        "000000000000000000000000000000a0"
    );
}

#[test]
fn without_pruning_every_version_stays() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    for v in [
        "000000000000000000000000000000a1",
        "000000000000000000000000000000a2",
        "000000000000000000000000000000a3",
    ] {
        store.install(&req(v, v.as_bytes())).unwrap();
    }
    assert_eq!(
        store
            .versions("exampleVault", "myCertificate")
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn same_version_with_different_bytes_is_replaced_atomically() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    store
        .install(&req("000000000000000000000000000000a1", b"old bytes"))
        .unwrap();
    let outcome = store
        .install(&req("000000000000000000000000000000a1", b"new bytes"))
        .unwrap();
    assert_eq!(
        outcome,
        InstallOutcome::Installed {
            path: s
                .store
                .join("exampleVault.myCertificate.000000000000000000000000000000a1"),
            previous_version: Some("000000000000000000000000000000a1".into())
        }
    );
    assert_eq!(
        std::fs::read(s.store.join("exampleVault.myCertificate")).unwrap(),
        b"new bytes"
    );
    assert_eq!(
        mode(
            &s.store
                .join("exampleVault.myCertificate.000000000000000000000000000000a1")
        ),
        0o600
    );
}

#[test]
fn left_over_temporaries_are_cleaned_on_start() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    // Left by a writer that has ended.
    let mut gone = std::process::Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(
        s.store.join(format!(".akv-sync.tmp.{pid}.1")),
        b"half a key",
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "/etc/passwd",
        s.store.join(format!(".akv-sync.tmp.{pid}.2")),
    )
    .unwrap();
    std::fs::write(s.store.join("unrelated"), b"kept").unwrap();
    drop(store);
    let store = Store::open(&s.store).unwrap();
    assert_eq!(store.clean_temporaries().unwrap(), 2);
    assert!(temporaries(&s.store).is_empty());
    assert!(s.store.join("unrelated").exists());
    assert!(Path::new("/etc/passwd").exists());
    assert_eq!(store.clean_temporaries().unwrap(), 0);
}

#[test]
fn missing_parents_are_created_0755_and_the_store_folder_0700() {
    let s = scratch();
    let deep = s.dir.path().join("a/b/store");
    let store = Store::open(&deep).unwrap();
    assert_eq!(mode(&s.dir.path().join("a")), 0o755);
    assert_eq!(mode(&deep), 0o700);
    store
        .install(&req("000000000000000000000000000000a1", b"x"))
        .unwrap();
    assert_eq!(
        mode(&deep.join("exampleVault.myCertificate.000000000000000000000000000000a1")),
        0o600
    );
}

#[test]
fn a_group_writable_existing_store_folder_is_tightened() {
    let s = scratch();
    std::fs::create_dir(&s.store).unwrap();
    std::fs::set_permissions(&s.store, std::fs::Permissions::from_mode(0o777)).unwrap();
    Store::open(&s.store).unwrap();
    assert_eq!(mode(&s.store), 0o755);
}

#[test]
fn current_is_none_before_any_install_and_for_a_dangling_link() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    assert_eq!(
        store.current("exampleVault", "myCertificate").unwrap(),
        None
    );
    std::os::unix::fs::symlink(
        "exampleVault.myCertificate.gone",
        s.store.join("exampleVault.myCertificate"),
    )
    .unwrap();
    assert_eq!(
        store.current("exampleVault", "myCertificate").unwrap(),
        None
    );
    assert!(matches!(
        store.install(&req("000000000000000000000000000000a1", b"x")).unwrap(),
        InstallOutcome::Installed { previous_version: Some(v), .. } if v == "gone"
    ));
}

#[test]
fn a_batch_of_installs_sees_its_own_new_and_pruned_versions() {
    let s = scratch();
    let pems: Vec<Vec<u8>> = (0..4)
        .map(|i| pem_fixture(s.dir.path(), &format!("p{i}")))
        .collect();
    let store = Store::open(&s.store).unwrap();
    store.begin_batch();
    // Another certificate in the folder, so that the listing is not just ours.
    let mut other = req("000000000000000000000000000000b1", &pems[0]);
    other.name = "otherCertificate";
    store.install(&other).unwrap();
    store
        .install(&req("000000000000000000000000000000a1", &pems[1]))
        .unwrap();
    store
        .install(&req("000000000000000000000000000000a2", &pems[2]))
        .unwrap();
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        [
            "000000000000000000000000000000a1",
            "000000000000000000000000000000a2"
        ]
    );
    let mut keep_one = req("000000000000000000000000000000a3", &pems[3]);
    keep_one.prune_keep = Some(1);
    store.install(&keep_one).unwrap();
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        ["000000000000000000000000000000a3"]
    );
    store.end_batch().unwrap();
    // After the batch, a fresh listing agrees.
    assert_eq!(
        store.versions("exampleVault", "myCertificate").unwrap(),
        ["000000000000000000000000000000a3"]
    );
    assert_eq!(
        store.versions("exampleVault", "otherCertificate").unwrap(),
        ["000000000000000000000000000000b1"]
    );

    // The listing kept for the next batch follows installs made between batches.
    let mut between = req("000000000000000000000000000000b2", &pems[1]);
    between.name = "otherCertificate";
    store.install(&between).unwrap();
    store.begin_batch();
    assert_eq!(
        store.versions("exampleVault", "otherCertificate").unwrap(),
        [
            "000000000000000000000000000000b1",
            "000000000000000000000000000000b2"
        ]
    );
    store.end_batch().unwrap();
}
