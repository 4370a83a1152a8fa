//! `pfxPasswordFile` checks on real files (run as root): who owns it, who may write it,
//! links, and the final newline.

mod store_support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use akv_sync::store::output::{PasswordFault, read_password_file};
use store_support::{TestUser, assert_root};

fn file(dir: &Path, name: &str, content: &[u8], mode: u32) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn fault(path: &Path) -> PasswordFault {
    read_password_file(path).expect_err("refused").fault
}

#[test]
fn the_password_is_the_content_without_one_final_newline() {
    let dir = tempfile::tempdir().unwrap();
    for (content, want) in [
        (&b"s3cret\n"[..], "s3cret"),
        (b"s3cret", "s3cret"),
        (b"s3cret\r\n", "s3cret"),
        (b"two\n\n", "two\n"),
        (b"", ""),
        (b" spaced \n", " spaced "),
    ] {
        let p = file(dir.path(), "pw", content, 0o600);
        assert_eq!(
            read_password_file(&p).unwrap().as_str(),
            want,
            "{content:?}"
        );
    }
}

#[test]
fn a_group_or_other_writable_password_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o620, 0o602, 0o666] {
        let p = file(dir.path(), "pw", b"x\n", mode);
        assert_eq!(fault(&p), PasswordFault::Writable { mode });
        let message = read_password_file(&p).unwrap_err().to_string();
        assert!(message.contains(p.to_str().unwrap()), "{message}");
    }
    // Read bits for others are the administrator's choice; only write matters here.
    let p = file(dir.path(), "pw", b"x\n", 0o644);
    assert!(read_password_file(&p).is_ok());
}

#[test]
fn a_password_file_owned_by_another_user_is_refused() {
    assert_root();
    let dir = tempfile::tempdir().unwrap();
    let user = TestUser::new(&[]);
    let p = file(dir.path(), "pw", b"x\n", 0o600);
    std::os::unix::fs::chown(&p, Some(user.uid()), None).unwrap();
    assert_eq!(fault(&p), PasswordFault::NotRootOwned { owner: user.uid() });
}

#[test]
fn links_missing_files_folders_and_oversized_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = file(dir.path(), "real", b"x\n", 0o600);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert_eq!(fault(&link), PasswordFault::Symlink);
    assert_eq!(fault(&dir.path().join("absent")), PasswordFault::Missing);
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(fault(&sub), PasswordFault::NotRegularFile);
    let big = file(dir.path(), "big", &vec![b'a'; 5000], 0o600);
    assert_eq!(fault(&big), PasswordFault::TooLarge);
    let bad = file(dir.path(), "bad", &[0xff, 0xfe], 0o600);
    assert_eq!(fault(&bad), PasswordFault::NotUtf8);
}
