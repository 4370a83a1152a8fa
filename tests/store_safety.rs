//! Hostile names and planted links are refused, and nothing is written outside the store.

mod store_support;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};

use akv_sync::store::{Found, InstallRequest, NameKind, Output, Store, StoreError};
use store_support::*;

fn req<'a>(version: &'a str, pem: &'a [u8]) -> InstallRequest<'a> {
    InstallRequest {
        vault: "vault1",
        name: "web",
        version,
        full_chain_pem: pem,
        link_name: None,
        acl: None,
        outputs: &[],
        prune_keep: None,
    }
}

/// Every path under `root` except `skip`, with (inode, size, mtime ns, mode, content for files).
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, (u64, u64, i64, u32, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p == skip {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_file() {
                std::fs::read(&p).unwrap()
            } else {
                Vec::new()
            };
            if m.is_dir() {
                stack.push(p.clone());
            }
            out.insert(
                p,
                (
                    m.ino(),
                    m.size(),
                    m.mtime_nsec() + m.mtime() * 1_000_000_000,
                    m.mode(),
                    content,
                ),
            );
        }
    }
    out
}

#[test]
fn hostile_names_are_refused_and_nothing_is_written() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    let before = snapshot(s.dir.path(), Path::new("/nonexistent"));
    let pem = b"PEM";
    let cases: Vec<(InstallRequest<'_>, NameKind)> = vec![
        (
            InstallRequest {
                vault: "..",
                ..req("v1", pem)
            },
            NameKind::Vault,
        ),
        (
            InstallRequest {
                vault: ".",
                ..req("v1", pem)
            },
            NameKind::Vault,
        ),
        (
            InstallRequest {
                vault: "",
                ..req("v1", pem)
            },
            NameKind::Vault,
        ),
        (
            InstallRequest {
                vault: "../../etc",
                ..req("v1", pem)
            },
            NameKind::Vault,
        ),
        (
            InstallRequest {
                vault: "a\0b",
                ..req("v1", pem)
            },
            NameKind::Vault,
        ),
        (
            InstallRequest {
                name: "../../tmp/x",
                ..req("v1", pem)
            },
            NameKind::Certificate,
        ),
        (
            InstallRequest {
                name: "we.b",
                ..req("v1", pem)
            },
            NameKind::Certificate,
        ),
        (req("../../../evil", pem), NameKind::Version),
        (req("/etc/passwd", pem), NameKind::Version),
        (req(".akv-sync.tmp.1", pem), NameKind::Version),
        (req("", pem), NameKind::Version),
        (
            InstallRequest {
                link_name: Some("../escape"),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
        (
            InstallRequest {
                link_name: Some("/tmp/escape"),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
        (
            InstallRequest {
                link_name: Some(".."),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
        (
            InstallRequest {
                link_name: Some(""),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
        (
            InstallRequest {
                link_name: Some("vault1.web"),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
        (
            InstallRequest {
                link_name: Some("vault1.web.v0"),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
        (
            InstallRequest {
                link_name: Some(".akv-sync.tmp.x"),
                ..req("v1", pem)
            },
            NameKind::Link,
        ),
    ];
    for (r, kind) in &cases {
        match store.install(r) {
            Err(StoreError::UnsafeName { kind: k, .. }) => assert_eq!(k, *kind, "{r:?}"),
            other => panic!("{r:?} gave {other:?}"),
        }
    }
    let escaping = [Output {
        file_name: "../out.pem",
        content: b"x",
        secret: true,
    }];
    let nested = [Output {
        file_name: "sub/out.pem",
        content: b"x",
        secret: true,
    }];
    let twice = [
        Output {
            file_name: "a.pem",
            content: b"x",
            secret: true,
        },
        Output {
            file_name: "a.pem",
            content: b"y",
            secret: false,
        },
    ];
    for outputs in [&escaping[..], &nested[..], &twice[..]] {
        let r = InstallRequest {
            outputs,
            ..req("v1", pem)
        };
        assert!(matches!(
            store.install(&r),
            Err(StoreError::UnsafeName {
                kind: NameKind::Output,
                ..
            })
        ));
    }
    assert!(matches!(
        store.current("..", "web"),
        Err(StoreError::UnsafeName { .. })
    ));
    assert!(matches!(
        store.versions("v", "a/b"),
        Err(StoreError::UnsafeName { .. })
    ));
    assert_eq!(snapshot(s.dir.path(), Path::new("/nonexistent")), before);
}

#[test]
fn planted_symlink_at_the_version_file_is_refused_and_its_target_untouched() {
    let s = scratch();
    let outside = s.dir.path().join("outside.txt");
    std::fs::write(&outside, b"precious").unwrap();
    let store = Store::open(&s.store).unwrap();
    symlink(&outside, s.store.join("vault1.web.v1")).unwrap();
    let before = snapshot(s.dir.path(), &s.store);

    let err = store.install(&req("v1", b"PEM")).unwrap_err();
    assert!(
        matches!(&err, StoreError::Planted { found: Found::Symlink, path } if path == &s.store.join("vault1.web.v1")),
        "{err:?}"
    );
    assert_eq!(snapshot(s.dir.path(), &s.store), before);
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    assert!(
        std::fs::symlink_metadata(s.store.join("vault1.web")).is_err(),
        "no link to a refused file"
    );
    assert!(temporaries(&s.store).is_empty());
}

#[test]
fn planted_directory_or_fifo_at_the_version_file_is_refused() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    std::fs::create_dir(s.store.join("vault1.web.v1")).unwrap();
    assert!(matches!(
        store.install(&req("v1", b"PEM")),
        Err(StoreError::Planted {
            found: Found::Directory,
            ..
        })
    ));
    nix::unistd::mkfifo(
        &s.store.join("vault1.web.v2"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    assert!(matches!(
        store.install(&req("v2", b"PEM")),
        Err(StoreError::Planted {
            found: Found::Special,
            ..
        })
    ));
}

#[test]
fn a_hard_link_to_an_outside_file_is_neither_rewritten_nor_given_acls() {
    let s = scratch();
    let outside = s.dir.path().join("outside.txt");
    std::fs::write(&outside, b"PEM").unwrap();
    let store = Store::open(&s.store).unwrap();
    std::fs::hard_link(&outside, s.store.join("vault1.web.v1")).unwrap();
    let acl_before = getfacl(&outside);
    assert!(matches!(
        store.install(&req("v1", b"PEM")),
        Err(StoreError::Planted {
            found: Found::ForeignFile,
            ..
        })
    ));
    assert_eq!(getfacl(&outside), acl_before);
    assert_eq!(std::fs::read(&outside).unwrap(), b"PEM");
}

#[test]
fn a_regular_file_where_the_link_goes_is_refused_and_kept() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    std::fs::write(s.store.join("vault1.web"), b"someone's file").unwrap();
    assert!(matches!(
        store.install(&req("v1", b"PEM")),
        Err(StoreError::Planted {
            found: Found::RegularFile,
            ..
        })
    ));
    assert_eq!(
        std::fs::read(s.store.join("vault1.web")).unwrap(),
        b"someone's file"
    );
    std::fs::write(s.store.join("custom.pem"), b"mine").unwrap();
    std::fs::remove_file(s.store.join("vault1.web")).unwrap();
    let r = InstallRequest {
        link_name: Some("custom.pem"),
        ..req("v1", b"PEM")
    };
    assert!(matches!(
        store.install(&r),
        Err(StoreError::Planted {
            found: Found::RegularFile,
            ..
        })
    ));
    assert_eq!(std::fs::read(s.store.join("custom.pem")).unwrap(), b"mine");
}

#[test]
fn a_link_pointing_outside_is_never_followed_and_is_replaced_on_install() {
    let s = scratch();
    let outside = s.dir.path().join("outside.txt");
    std::fs::write(&outside, b"precious").unwrap();
    let store = Store::open(&s.store).unwrap();
    symlink(&outside, s.store.join("vault1.web")).unwrap();
    symlink(&outside, s.store.join("custom.pem")).unwrap();
    assert!(matches!(
        store.current("vault1", "web"),
        Err(StoreError::ForeignLink { .. })
    ));
    let before = snapshot(s.dir.path(), &s.store);
    let r = InstallRequest {
        link_name: Some("custom.pem"),
        ..req("v1", b"PEM")
    };
    store.install(&r).unwrap();
    assert_eq!(snapshot(s.dir.path(), &s.store), before);
    assert_eq!(
        std::fs::read_link(s.store.join("vault1.web")).unwrap(),
        Path::new("vault1.web.v1")
    );
    assert_eq!(
        std::fs::read_link(s.store.join("custom.pem")).unwrap(),
        Path::new("vault1.web.v1")
    );
}

#[test]
fn a_symlinked_store_folder_is_refused() {
    let s = scratch();
    let elsewhere = s.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    symlink(&elsewhere, &s.store).unwrap();
    assert!(matches!(
        Store::open(&s.store),
        Err(StoreError::StoreIsSymlink { .. })
    ));
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
    assert_eq!(
        std::fs::symlink_metadata(&elsewhere).unwrap().mode() & 0o777,
        0o755
    );
}

#[test]
fn a_store_path_that_is_a_file_or_owned_by_someone_else_is_refused() {
    let s = scratch();
    std::fs::write(&s.store, b"not a folder").unwrap();
    assert!(matches!(
        Store::open(&s.store),
        Err(StoreError::StoreNotDirectory { .. })
    ));
    std::fs::remove_file(&s.store).unwrap();
    std::fs::create_dir(&s.store).unwrap();
    nix::unistd::chown(&s.store, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    assert!(matches!(
        Store::open(&s.store),
        Err(StoreError::StoreNotOwned { owner: 65534, .. })
    ));
}

#[test]
fn a_store_folder_removed_while_open_is_reported_as_vanished() {
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    std::fs::remove_dir(&s.store).unwrap();
    assert!(matches!(
        store.install(&req("v1", b"PEM")),
        Err(StoreError::StoreVanished { .. })
    ));
    assert!(!s.store.exists());
}

#[test]
fn debug_output_of_a_request_never_shows_key_material() {
    let outputs = [Output {
        file_name: "privkey.pem",
        content: b"SECRET-KEY-BYTES",
        secret: true,
    }];
    let r = InstallRequest {
        outputs: &outputs,
        ..req("v1", b"-----BEGIN PRIVATE KEY-----SECRET")
    };
    let shown = format!("{r:?}");
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(shown.contains("privkey.pem"));
}
