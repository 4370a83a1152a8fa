//! Symlinks planted at the store's temporary names are never followed. Its own test binary,
//! so that the temporary-name counter of this process starts at 0 and the planted names are
//! exactly the ones the store will try first.

mod store_support;

use std::os::unix::fs::symlink;

use akv_sync::store::{InstallRequest, Store, TEMP_PREFIX};
use store_support::*;

#[test]
fn symlinks_planted_at_temporary_names_are_skipped_not_followed() {
    let s = scratch();
    let outside = s.dir.path().join("outside.txt");
    std::fs::write(&outside, b"precious").unwrap();
    let store = Store::open(&s.store).unwrap();
    let pid = std::process::id();
    for n in 0..50 {
        symlink(&outside, s.store.join(format!("{TEMP_PREFIX}{pid}.{n}"))).unwrap();
    }
    let r = InstallRequest {
        vault: "vault1",
        name: "web",
        version: "v1",
        full_chain_pem: b"PEM",
        link_name: Some("custom.pem"),
        acl: None,
        outputs: &[],
        prune_keep: None,
    };
    store.install(&r).unwrap();
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    assert_eq!(std::fs::read(s.store.join("vault1.web")).unwrap(), b"PEM");
    assert_eq!(std::fs::read(s.store.join("custom.pem")).unwrap(), b"PEM");
    // The planted links are still links to the outside file, untouched.
    assert_eq!(temporaries(&s.store).len(), 50);
    // They carry this (live) process's id: cleaning leaves them to their writer.
    assert_eq!(store.clean_temporaries().unwrap(), 0);
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
}
