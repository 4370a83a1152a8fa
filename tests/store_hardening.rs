//! The store on a shared host (issue 15, classes 1, 2, 3 and 11): no key reaches another
//! certificate's reader, no store folder stays writable by anyone but root, no ancestor is
//! followed as a link or left writable by others, and no other process's temporaries are
//! removed. Real users (`useradd`), real ACLs (`setfacl`), checked with `runuser`.

mod store_support;

use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::process::Command;

use akv_sync::store::{
    InstallRequest, Output, ParentProblem, Store, StoreError, TEMP_PREFIX, resolve_grants,
};
use akv_sync_config::{AclGrant, Principal};
use store_support::*;

const V1: &str = "0123456789abcdef0123456789abcde1";
const V2: &str = "0123456789abcdef0123456789abcde2";

fn grant(u: &TestUser) -> Vec<akv_sync::store::ResolvedGrant> {
    resolve_grants(&[AclGrant {
        user: Some(Principal::Name(u.name.clone())),
        group: None,
    }])
    .unwrap()
}

fn web<'a>(
    version: &'a str,
    pem: &'a [u8],
    acl: Option<&'a [akv_sync::store::ResolvedGrant]>,
    prune_keep: Option<usize>,
) -> InstallRequest<'a> {
    InstallRequest {
        vault: "myvault",
        name: "web",
        version,
        full_chain_pem: pem,
        link_name: None,
        acl,
        outputs: &[],
        prune_keep,
    }
}

// ---- class 1: another certificate's key through its ACL -----------------------------------

#[test]
fn another_certificates_file_named_like_a_version_gets_no_acl_and_survives_pruning() {
    assert_root();
    let s = scratch();
    let app1 = TestUser::new(&[]);
    let grants = grant(&app1);
    let store = Store::open(&s.store).unwrap();
    // `api` writes its key as `myvault.web.key` (the settings reader refuses this name
    // now; the store must not trust that alone).
    let api_key: &[u8] = b"API PRIVATE KEY";
    let outputs = [Output {
        file_name: "myvault.web.key",
        content: api_key,
        secret: true,
    }];
    store
        .install(&InstallRequest {
            vault: "myvault",
            name: "api",
            version: V1,
            full_chain_pem: b"API PEM",
            link_name: None,
            acl: None,
            outputs: &outputs,
            prune_keep: None,
        })
        .unwrap();
    // An administrator's backup of web's file.
    std::fs::write(s.store.join("myvault.web.bak"), b"admin backup").unwrap();
    std::fs::set_permissions(
        s.store.join("myvault.web.bak"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();

    store
        .install(&web(V1, b"WEB 1", Some(&grants), None))
        .unwrap();
    assert_eq!(
        app1.cat(&s.store.join("myvault.web")).as_deref(),
        Some(&b"WEB 1"[..])
    );
    assert_eq!(app1.cat(&s.store.join("myvault.web.key")), None);
    assert!(!getfacl(&s.store.join("myvault.web.key")).contains(&format!("user:{}:", app1.uid())));
    assert!(!getfacl(&s.store.join("myvault.web.bak")).contains(&format!("user:{}:", app1.uid())));

    // A rotation with pruneKeepVersions 1 removes web's old version only.
    store
        .install(&web(V2, b"WEB 2", Some(&grants), Some(1)))
        .unwrap();
    assert!(!s.store.join(format!("myvault.web.{V1}")).exists());
    assert_eq!(
        std::fs::read(s.store.join("myvault.web.key")).unwrap(),
        api_key
    );
    assert_eq!(
        std::fs::read(s.store.join("myvault.web.bak")).unwrap(),
        b"admin backup"
    );
    assert_eq!(store.versions("myvault", "web").unwrap(), [V2]);
}

// ---- class 2: an open store folder that stays open ----------------------------------------

#[test]
fn a_folder_a_named_user_could_write_is_closed_and_stays_closed_after_installs() {
    assert_root();
    let s = scratch();
    let intruder = TestUser::new(&[]);
    let reader = TestUser::new(&[]);
    std::fs::create_dir(&s.store).unwrap();
    std::fs::set_permissions(&s.store, std::fs::Permissions::from_mode(0o755)).unwrap();
    setfacl(&["-m", &format!("u:{}:rwx", intruder.name)], &s.store);
    assert!(can_create(&intruder, &s.store.join("before")));
    std::fs::remove_file(s.store.join("before")).unwrap();

    let store = Store::open(&s.store).unwrap();
    let grants = grant(&reader);
    store
        .install(&web(V1, b"WEB 1", Some(&grants), None))
        .unwrap();
    store
        .install(&web(V2, b"WEB 2", Some(&grants), None))
        .unwrap();

    assert!(!can_create(&intruder, &s.store.join("planted")));
    assert!(!s.store.join("planted").exists());
    // The reader still gets its key.
    assert_eq!(
        reader.cat(&s.store.join("myvault.web")).as_deref(),
        Some(&b"WEB 2"[..])
    );
    let acl = getfacl(&s.store);
    assert!(
        !acl.lines().any(|l| !l.starts_with("user::")
            && !l.starts_with('#')
            && l.split(':').nth(2).is_some_and(|p| p.contains('w'))),
        "{acl}"
    );
}

#[test]
fn a_group_owned_0775_folder_with_an_acl_entry_is_closed_to_the_group() {
    assert_root();
    let s = scratch();
    let group = TestGroup::new();
    let member = TestUser::new(&[&group]);
    let auditor = TestUser::new(&[]);
    let reader = TestUser::new(&[]);
    std::fs::create_dir(&s.store).unwrap();
    std::os::unix::fs::chown(&s.store, None, Some(group.gid())).unwrap();
    std::fs::set_permissions(&s.store, std::fs::Permissions::from_mode(0o775)).unwrap();
    setfacl(&["-m", &format!("u:{}:r-x", auditor.name)], &s.store);
    assert!(can_create(&member, &s.store.join("before")));
    std::fs::remove_file(s.store.join("before")).unwrap();

    let store = Store::open(&s.store).unwrap();
    let grants = grant(&reader);
    // A new grant makes the store rewrite the folder's ACL (and its mask).
    store
        .install(&web(V1, b"WEB 1", Some(&grants), None))
        .unwrap();

    assert!(!can_create(&member, &s.store.join("planted")));
    assert_eq!(std::fs::metadata(&s.store).unwrap().mode() & 0o022, 0);
}

// ---- class 3: parents followed as links ---------------------------------------------------

#[test]
fn an_ancestor_swapped_for_a_symlink_is_refused_and_nothing_is_written_there() {
    assert_root();
    let s = scratch();
    let secret = s.dir.path().join("root-only");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    // A link another user made (as one who could write the folder would).
    let user = TestUser::new(&[]);
    let swapped = s.dir.path().join("apps");
    symlink(&secret, &swapped).unwrap();
    std::os::unix::fs::lchown(&swapped, Some(user.uid()), None).unwrap();

    let err = Store::open(&swapped.join("app1").join("store")).unwrap_err();
    assert!(
        matches!(&err, StoreError::UnsafeParent { path, problem: ParentProblem::Symlink } if *path == swapped),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(&secret).unwrap().count(), 0);
    // The last component as a link is refused too (as before).
    let err = Store::open(&swapped).unwrap_err();
    assert!(matches!(err, StoreError::StoreIsSymlink { .. }), "{err:?}");
}

#[test]
fn a_link_root_made_in_a_root_only_folder_is_followed_and_its_target_checked() {
    assert_root();
    let s = scratch();
    // As `/var/run -> /run`: root's own link, in a folder only root can write.
    let real = s.dir.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o755)).unwrap();
    symlink("real", s.dir.path().join("alias")).unwrap();
    Store::open(&s.dir.path().join("alias").join("app1").join("store")).unwrap();
    assert!(real.join("app1").join("store").is_dir());

    // Its target is walked like any path: a group-writable one is refused.
    let group = TestGroup::new();
    let open = s.dir.path().join("open");
    std::fs::create_dir(&open).unwrap();
    std::os::unix::fs::chown(&open, None, Some(group.gid())).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o775)).unwrap();
    symlink(&open, s.dir.path().join("to-open")).unwrap();
    let err = Store::open(&s.dir.path().join("to-open").join("store")).unwrap_err();
    assert!(
        matches!(&err, StoreError::UnsafeParent { path, problem: ParentProblem::Writable { .. } } if *path == open),
        "{err:?}"
    );
    // A loop of links ends.
    symlink("loop-b", s.dir.path().join("loop-a")).unwrap();
    symlink("loop-a", s.dir.path().join("loop-b")).unwrap();
    let err = Store::open(&s.dir.path().join("loop-a").join("store")).unwrap_err();
    assert!(
        matches!(
            &err,
            StoreError::UnsafeParent {
                problem: ParentProblem::Symlink,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_store_below_a_group_writable_folder_is_refused_naming_it() {
    assert_root();
    let s = scratch();
    let group = TestGroup::new();
    let shared = s.dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, None, Some(group.gid())).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o775)).unwrap();

    let err = Store::open(&shared.join("app1")).unwrap_err();
    assert!(
        matches!(&err, StoreError::UnsafeParent { path, problem: ParentProblem::Writable { .. } } if *path == shared),
        "{err:?}"
    );
    assert!(err.to_string().contains(&shared.display().to_string()));
    assert!(!shared.join("app1").exists());

    // A folder a named user may write through its ACL is just as open.
    let user = TestUser::new(&[]);
    let acl_open = s.dir.path().join("acl-open");
    std::fs::create_dir(&acl_open).unwrap();
    std::fs::set_permissions(&acl_open, std::fs::Permissions::from_mode(0o755)).unwrap();
    setfacl(&["-m", &format!("u:{}:rwx", user.name)], &acl_open);
    let err = Store::open(&acl_open.join("app1")).unwrap_err();
    assert!(
        matches!(&err, StoreError::UnsafeParent { path, .. } if *path == acl_open),
        "{err:?}"
    );
}

#[test]
fn a_store_in_a_sticky_folder_is_accepted_when_its_parent_is_roots() {
    assert_root();
    let s = scratch();
    let sticky = s.dir.path().join("sticky");
    std::fs::create_dir(&sticky).unwrap();
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).unwrap();
    Store::open(&sticky.join("mine").join("store")).unwrap();

    // …but not below a folder another user made there.
    let other = TestUser::new(&[]);
    let theirs = sticky.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(other.uid()), None).unwrap();
    let err = Store::open(&theirs.join("store")).unwrap_err();
    assert!(
        matches!(&err, StoreError::UnsafeParent { path, .. } if *path == theirs),
        "{err:?}"
    );
}

/// Runs itself in a child process with umask 0077 (the umask is per process and the other
/// tests run in parallel threads).
#[test]
fn missing_parents_are_0755_whatever_the_umask() {
    assert_root();
    if let Ok(target) = std::env::var("AKV_SYNC_TEST_UMASK_STORE") {
        let store = std::path::Path::new(&target);
        Store::open(store).unwrap();
        return;
    }
    let s = scratch();
    let store = s.dir.path().join("a").join("b").join("store");
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "missing_parents_are_0755_whatever_the_umask",
            "--nocapture",
        ])
        .env("AKV_SYNC_TEST_UMASK_STORE", &store)
        .pre_exec_umask()
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().mode() & 0o7777;
    assert_eq!(mode(&s.dir.path().join("a")), 0o755);
    assert_eq!(mode(&s.dir.path().join("a").join("b")), 0o755);
    assert_eq!(mode(&store), 0o700);
}

trait Umask {
    fn pre_exec_umask(&mut self) -> &mut Self;
}

impl Umask for Command {
    fn pre_exec_umask(&mut self) -> &mut Self {
        use std::os::unix::process::CommandExt;
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            self.pre_exec(|| {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
                Ok(())
            })
        }
    }
}

// ---- class 11: temporaries of another process ---------------------------------------------

#[test]
fn only_temporaries_of_processes_that_no_longer_exist_are_removed() {
    assert_root();
    let s = scratch();
    let store = Store::open(&s.store).unwrap();
    let mut live = Command::new("sleep").arg("60").spawn().unwrap();
    let mut dead = Command::new("true").spawn().unwrap();
    let dead_pid = dead.id();
    dead.wait().unwrap();
    let live_tmp = s.store.join(format!("{TEMP_PREFIX}{}.0", live.id()));
    let dead_tmp = s.store.join(format!("{TEMP_PREFIX}{dead_pid}.0"));
    std::fs::write(&live_tmp, b"in flight").unwrap();
    std::fs::write(&dead_tmp, b"left over").unwrap();

    let removed = store.clean_temporaries();
    live.kill().unwrap();
    live.wait().unwrap();
    assert_eq!(removed.unwrap(), 1);
    assert!(live_tmp.exists());
    assert!(!dead_tmp.exists());
}
