//! The documented layout works for ACL readers (issue 16, point 3): a store below a 0700
//! root folder, as `/var/lib/waagent/Microsoft.Azure.KeyVault/app1`, is reached by the
//! principals it grants through traverse-only entries on the folders above — which they
//! still cannot list — and those entries go again with the grant.

mod store_support;

use std::os::unix::fs::PermissionsExt;

use akv_sync::store::{InstallRequest, ResolvedGrant, Store, resolve_grants};
use akv_sync_config::{AclGrant, Principal};
use store_support::*;

const V1: &str = "0123456789abcdef0123456789abcde1";

fn req<'a>(acl: Option<&'a [ResolvedGrant]>) -> InstallRequest<'a> {
    InstallRequest {
        vault: "myvault",
        name: "web",
        version: V1,
        full_chain_pem: b"WEB PEM",
        link_name: None,
        acl,
        outputs: &[],
        prune_keep: None,
    }
}

fn grant(u: &TestUser) -> Vec<ResolvedGrant> {
    resolve_grants(&[AclGrant {
        user: Some(Principal::Name(u.name.clone())),
        group: None,
    }])
    .unwrap()
}

/// `<scratch>/waagent` (0700 root) `/Microsoft.Azure.KeyVault/app1`.
fn layout(s: &Scratch) -> (std::path::PathBuf, std::path::PathBuf) {
    let waagent = s.dir.path().join("waagent");
    std::fs::create_dir(&waagent).unwrap();
    std::fs::set_permissions(&waagent, std::fs::Permissions::from_mode(0o700)).unwrap();
    let store = waagent.join("Microsoft.Azure.KeyVault").join("app1");
    (waagent, store)
}

#[test]
fn a_granted_user_reaches_a_store_below_a_0700_folder_and_cannot_list_it() {
    assert_root();
    let s = scratch();
    let (waagent, store_path) = layout(&s);
    let app1 = TestUser::new(&[]);
    let other = TestUser::new(&[]);
    let grants = grant(&app1);
    let store = Store::open(&store_path).unwrap();
    store.install(&req(Some(&grants))).unwrap();

    let link = store_path.join("myvault.web");
    assert_eq!(app1.cat(&link).as_deref(), Some(&b"WEB PEM"[..]));
    assert!(!can_list(&app1, &waagent));
    assert!(!can_list(&app1, &store_path));
    assert_eq!(other.cat(&link), None);
    let acl = getfacl(&waagent);
    assert!(acl.contains(&format!("user:{}:--x", app1.uid())), "{acl}");
    // Nothing else about the folder changed: still no read, no write for anyone but root.
    assert!(acl.contains("group::---"), "{acl}");
    assert!(acl.contains("other::---"), "{acl}");

    // The grant goes: so does the traverse entry.
    store.install(&req(Some(&[]))).unwrap();
    assert_eq!(app1.cat(&link), None);
    let acl = getfacl(&waagent);
    assert!(!acl.contains(&format!("user:{}:", app1.uid())), "{acl}");
}

#[test]
fn an_administrators_entry_on_a_folder_above_is_kept_when_the_grant_goes() {
    assert_root();
    let s = scratch();
    let (waagent, store_path) = layout(&s);
    let app1 = TestUser::new(&[]);
    let admin_choice = TestUser::new(&[]);
    setfacl(&["-m", &format!("u:{}:--x", admin_choice.name)], &waagent);
    let grants = grant(&app1);
    let store = Store::open(&store_path).unwrap();
    store.install(&req(Some(&grants))).unwrap();
    store.install(&req(None)).unwrap();
    let acl = getfacl(&waagent);
    assert!(
        acl.contains(&format!("user:{}:--x", admin_choice.uid())),
        "{acl}"
    );
    assert!(!acl.contains(&format!("user:{}:", app1.uid())), "{acl}");
}

#[test]
fn turned_off_nothing_is_added_above_the_store() {
    assert_root();
    let s = scratch();
    let (waagent, store_path) = layout(&s);
    let app1 = TestUser::new(&[]);
    let grants = grant(&app1);
    let store = Store::open(&store_path).unwrap();
    store.set_traverse_ancestors(false);
    store.install(&req(Some(&grants))).unwrap();
    assert_eq!(app1.cat(&store_path.join("myvault.web")), None);
    assert!(!getfacl(&waagent).contains(&format!("user:{}:", app1.uid())));
}

#[test]
fn a_second_store_below_the_same_folder_keeps_its_readers_way_when_the_first_drops_them() {
    assert_root();
    let s = scratch();
    let (waagent, store_a) = layout(&s);
    let store_b = store_a.with_file_name("app2");
    let app1 = TestUser::new(&[]);
    let grants = grant(&app1);
    let a = Store::open(&store_a).unwrap();
    let b = Store::open(&store_b).unwrap();
    a.install(&req(Some(&grants))).unwrap();
    b.install(&req(Some(&grants))).unwrap();
    // `a` drops the grant; `b` still needs the way through `waagent`.
    a.install(&req(Some(&[]))).unwrap();
    assert_eq!(app1.cat(&store_a.join("myvault.web")), None);
    assert_eq!(
        app1.cat(&store_b.join("myvault.web")).as_deref(),
        Some(&b"WEB PEM"[..])
    );
    b.install(&req(Some(&[]))).unwrap();
    assert!(!getfacl(&waagent).contains(&format!("user:{}:", app1.uid())));
}
