//! POSIX ACLs with real users and groups (run as root; CI does): who can read a key
//! through the link, what `getfacl` shows, and how grants are revoked.

mod store_support;

use std::os::unix::fs::MetadataExt;

use akv_sync::store::{
    GrantKind, InstallOutcome, InstallRequest, Output, ResolvedGrant, Store, StoreError,
    resolve_grants,
};
use akv_sync_config::{AclGrant, Principal};
use store_support::*;

fn user_grant(u: &TestUser) -> AclGrant {
    AclGrant {
        user: Some(Principal::Name(u.name.clone())),
        group: None,
    }
}

fn grants(list: &[AclGrant]) -> Vec<ResolvedGrant> {
    resolve_grants(list).unwrap()
}

fn req<'a>(
    name: &'a str,
    version: &'a str,
    pem: &'a [u8],
    acl: Option<&'a [ResolvedGrant]>,
) -> InstallRequest<'a> {
    InstallRequest {
        vault: "vault1",
        name,
        version,
        full_chain_pem: pem,
        link_name: None,
        acl,
        outputs: &[],
        prune_keep: None,
    }
}

fn has_entry(acl: &str, entry: &str) -> bool {
    acl.lines()
        .any(|l| l.split('\t').next().unwrap().trim() == entry)
}

#[test]
fn granted_user_reads_the_key_through_the_link_and_an_ungranted_user_cannot() {
    assert_root();
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "leaf");
    let granted = TestUser::new(&[]);
    let other = TestUser::new(&[]);
    let store = Store::open(&s.store).unwrap();
    let g = grants(&[user_grant(&granted)]);
    let mut r = req("web", "000000000000000000000000000000a1", &pem, Some(&g));
    r.link_name = Some("web.pem");
    store.install(&r).unwrap();

    let link = s.store.join("vault1.web");
    assert_eq!(granted.cat(&link).as_deref(), Some(pem.as_slice()));
    assert_eq!(
        granted.cat(&s.store.join("web.pem")).as_deref(),
        Some(pem.as_slice())
    );
    assert_eq!(other.cat(&link), None);

    let file_acl = getfacl(&s.store.join("vault1.web.000000000000000000000000000000a1"));
    assert!(
        has_entry(&file_acl, &format!("user:{}:r--", granted.uid())),
        "{file_acl}"
    );
    assert!(has_entry(&file_acl, "mask::r--"), "{file_acl}");
    assert!(has_entry(&file_acl, "group::---"), "{file_acl}");
    assert!(has_entry(&file_acl, "other::---"), "{file_acl}");
    assert!(!file_acl.contains(&format!("user:{}:", other.uid())));
    let folder_acl = getfacl(&s.store);
    assert!(
        has_entry(&folder_acl, &format!("user:{}:--x", granted.uid())),
        "{folder_acl}"
    );
    assert!(has_entry(&folder_acl, "mask::--x"), "{folder_acl}");
    assert!(has_entry(&folder_acl, "other::---"), "{folder_acl}");

    // libacl (through exacl) decodes the same entries.
    let entries = exacl::getfacl(
        s.store.join("vault1.web.000000000000000000000000000000a1"),
        None,
    )
    .unwrap();
    assert!(entries.iter().any(|e| e.kind == exacl::AclEntryKind::User
        && e.name == granted.name
        && e.perms == exacl::Perm::READ));
}

#[test]
fn group_grant_lets_a_member_read_and_not_a_non_member() {
    assert_root();
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "leaf");
    let group = TestGroup::new();
    let member = TestUser::new(&[&group]);
    let outsider = TestUser::new(&[]);
    let store = Store::open(&s.store).unwrap();
    let g = grants(&[AclGrant {
        user: None,
        group: Some(Principal::Id(group.gid())),
    }]);
    assert_eq!(
        g,
        [ResolvedGrant {
            kind: GrantKind::Group,
            id: group.gid(),
            name: group.name.clone()
        }]
    );
    store
        .install(&req(
            "web",
            "000000000000000000000000000000a1",
            &pem,
            Some(&g),
        ))
        .unwrap();

    let link = s.store.join("vault1.web");
    assert_eq!(member.cat(&link).as_deref(), Some(pem.as_slice()));
    assert_eq!(outsider.cat(&link), None);
    let file_acl = getfacl(&s.store.join("vault1.web.000000000000000000000000000000a1"));
    assert!(
        has_entry(&file_acl, &format!("group:{}:r--", group.gid())),
        "{file_acl}"
    );
}

#[test]
fn removing_a_principal_revokes_its_access_on_the_next_pass_without_rewriting() {
    assert_root();
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "leaf");
    let stays = TestUser::new(&[]);
    let leaves = TestUser::new(&[]);
    let store = Store::open(&s.store).unwrap();
    let both = grants(&[user_grant(&stays), user_grant(&leaves)]);
    store
        .install(&req(
            "web",
            "000000000000000000000000000000a1",
            &pem,
            Some(&both),
        ))
        .unwrap();
    let link = s.store.join("vault1.web");
    let file = s.store.join("vault1.web.000000000000000000000000000000a1");
    assert!(leaves.cat(&link).is_some());
    let ino = std::fs::metadata(&file).unwrap().ino();
    let mtime = std::fs::metadata(&file).unwrap().mtime_nsec();

    let one = grants(&[user_grant(&stays)]);
    assert_eq!(
        store
            .install(&req(
                "web",
                "000000000000000000000000000000a1",
                &pem,
                Some(&one)
            ))
            .unwrap(),
        InstallOutcome::Repaired
    );
    assert_eq!(stays.cat(&link).as_deref(), Some(pem.as_slice()));
    assert_eq!(leaves.cat(&link), None);
    assert!(!getfacl(&file).contains(&format!("user:{}:", leaves.uid())));
    assert!(!getfacl(&s.store).contains(&format!("user:{}:", leaves.uid())));
    assert_eq!(std::fs::metadata(&file).unwrap().ino(), ino);
    assert_eq!(std::fs::metadata(&file).unwrap().mtime_nsec(), mtime);

    // aclEnabled turned off: no named entries remain, the file is plain 0600 again.
    assert_eq!(
        store
            .install(&req("web", "000000000000000000000000000000a1", &pem, None))
            .unwrap(),
        InstallOutcome::Repaired
    );
    assert_eq!(stays.cat(&link), None);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o7777, 0o600);
    let plain = getfacl(&file);
    assert!(
        !plain
            .lines()
            .any(|l| l.starts_with("user:") && !l.starts_with("user::")),
        "{plain}"
    );
    assert!(!plain.lines().any(|l| l.starts_with("mask:")), "{plain}");
    assert!(!getfacl(&s.store).contains(&format!("user:{}:", stays.uid())));
    assert_eq!(
        store
            .install(&req("web", "000000000000000000000000000000a1", &pem, None))
            .unwrap(),
        InstallOutcome::Unchanged
    );
}

#[test]
fn earlier_versions_follow_the_current_grants() {
    assert_root();
    let s = scratch();
    let a = pem_fixture(s.dir.path(), "a");
    let b = pem_fixture(s.dir.path(), "b");
    let user = TestUser::new(&[]);
    let store = Store::open(&s.store).unwrap();
    let g = grants(&[user_grant(&user)]);
    store
        .install(&req(
            "web",
            "000000000000000000000000000000a1",
            &a,
            Some(&g),
        ))
        .unwrap();
    assert!(
        user.cat(&s.store.join("vault1.web.000000000000000000000000000000a1"))
            .is_some()
    );
    store
        .install(&req(
            "web",
            "000000000000000000000000000000a2",
            &b,
            Some(&[]),
        ))
        .unwrap();
    assert_eq!(
        user.cat(&s.store.join("vault1.web.000000000000000000000000000000a1")),
        None
    );
    assert_eq!(
        user.cat(&s.store.join("vault1.web.000000000000000000000000000000a2")),
        None
    );
}

#[test]
fn folder_traverse_stays_while_another_certificate_still_grants_it() {
    assert_root();
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "leaf");
    let shared = TestUser::new(&[]);
    let store = Store::open(&s.store).unwrap();
    let g = grants(&[user_grant(&shared)]);
    store
        .install(&req(
            "one",
            "000000000000000000000000000000a1",
            &pem,
            Some(&g),
        ))
        .unwrap();
    store
        .install(&req(
            "two",
            "000000000000000000000000000000a1",
            &pem,
            Some(&g),
        ))
        .unwrap();
    // Certificate two no longer grants it; certificate one still does.
    store
        .install(&req(
            "two",
            "000000000000000000000000000000a1",
            &pem,
            Some(&[]),
        ))
        .unwrap();
    assert_eq!(
        shared.cat(&s.store.join("vault1.one")).as_deref(),
        Some(pem.as_slice())
    );
    assert_eq!(shared.cat(&s.store.join("vault1.two")), None);
    assert!(getfacl(&s.store).contains(&format!("user:{}:--x", shared.uid())));
    // Now neither does: the folder entry goes too.
    store
        .install(&req(
            "one",
            "000000000000000000000000000000a1",
            &pem,
            Some(&[]),
        ))
        .unwrap();
    assert!(!getfacl(&s.store).contains(&format!("user:{}:", shared.uid())));
}

#[test]
fn secret_outputs_carry_the_grants_and_public_ones_are_reachable_only_through_the_folder() {
    assert_root();
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "leaf");
    let reader = TestUser::new(&[]);
    let stranger = TestUser::new(&[]);
    let store = Store::open(&s.store).unwrap();
    let g = grants(&[user_grant(&reader)]);
    let outputs = [
        Output {
            file_name: "privkey.pem",
            content: b"the key",
            secret: true,
        },
        Output {
            file_name: "cert.pem",
            content: b"the cert",
            secret: false,
        },
    ];
    let mut r = req("web", "000000000000000000000000000000a1", &pem, Some(&g));
    r.outputs = &outputs;
    store.install(&r).unwrap();
    assert_eq!(
        reader.cat(&s.store.join("privkey.pem")).as_deref(),
        Some(&b"the key"[..])
    );
    assert_eq!(
        reader.cat(&s.store.join("cert.pem")).as_deref(),
        Some(&b"the cert"[..])
    );
    assert_eq!(stranger.cat(&s.store.join("privkey.pem")), None);
    assert_eq!(stranger.cat(&s.store.join("cert.pem")), None);
}

#[test]
fn unknown_users_and_groups_are_named_in_the_error() {
    let err = resolve_grants(&[AclGrant {
        user: Some(Principal::Name("akvt-no-such-user".into())),
        group: None,
    }])
    .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser { name } if name == "akvt-no-such-user"));
    let err = resolve_grants(&[AclGrant {
        user: None,
        group: Some(Principal::Name("akvt-no-such-group".into())),
    }])
    .unwrap_err();
    assert!(matches!(err, StoreError::UnknownGroup { name } if name == "akvt-no-such-group"));
    let err = resolve_grants(&[AclGrant {
        user: Some(Principal::Id(4_000_000_000)),
        group: None,
    }])
    .unwrap_err();
    assert!(matches!(err, StoreError::UnknownUser { .. }));
    let root = resolve_grants(&[AclGrant {
        user: Some(Principal::Id(0)),
        group: Some(Principal::Name("root".into())),
    }])
    .unwrap();
    assert_eq!(root.len(), 2);
    assert_eq!(
        root[0],
        ResolvedGrant {
            kind: GrantKind::User,
            id: 0,
            name: "root".into()
        }
    );
}

#[test]
fn concurrent_installs_of_different_certificates_keep_every_folder_grant() {
    assert_root();
    let s = scratch();
    let pem = pem_fixture(s.dir.path(), "leaf");
    let users: Vec<TestUser> = (0..4).map(|_| TestUser::new(&[])).collect();
    let store = Store::open(&s.store).unwrap();
    std::thread::scope(|scope| {
        for (i, user) in users.iter().enumerate() {
            let (store, pem) = (&store, &pem);
            scope.spawn(move || {
                let g = grants(&[user_grant(user)]);
                let name = format!("cert{i}");
                store
                    .install(&req(
                        &name,
                        "000000000000000000000000000000a1",
                        pem,
                        Some(&g),
                    ))
                    .unwrap();
            });
        }
    });
    let folder_acl = getfacl(&s.store);
    for (i, user) in users.iter().enumerate() {
        assert!(
            has_entry(&folder_acl, &format!("user:{}:--x", user.uid())),
            "{folder_acl}"
        );
        assert_eq!(
            user.cat(&s.store.join(format!("vault1.cert{i}")))
                .as_deref(),
            Some(pem.as_slice())
        );
    }
}
