use std::os::unix::fs::symlink;
use std::path::Path;

use portcullis_policy::normalize::path::{PathResolver, Resolution};

use super::FsResolver;

fn exists(path: &str) -> bool {
    Path::new(path).exists()
}

/// A temp dir with its canonical path (on macOS `/tmp` is itself a link; resolve it up front).
fn temp() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(dir.path())
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (dir, root)
}

fn resolve(path: &str) -> Resolution {
    FsResolver::new().resolve(path)
}

fn resolved(path: impl AsRef<Path>) -> Resolution {
    Resolution::Resolved(path.as_ref().to_str().unwrap().to_owned())
}

#[test]
fn leaves_a_path_without_links_unchanged() {
    let (_dir, root) = temp();
    std::fs::create_dir(format!("{root}/ws")).unwrap();
    std::fs::write(format!("{root}/ws/a.txt"), "a").unwrap();
    assert_eq!(
        resolve(&format!("{root}/ws/a.txt")),
        resolved(format!("{root}/ws/a.txt"))
    );
    assert_eq!(resolve("/"), resolved("/"));
}

#[test]
fn follows_a_link_to_outside_the_workspace() {
    let (_dir, root) = temp();
    std::fs::create_dir_all(format!("{root}/ws")).unwrap();
    std::fs::create_dir_all(format!("{root}/secret")).unwrap();
    std::fs::write(format!("{root}/secret/key"), "k").unwrap();
    symlink(format!("{root}/secret"), format!("{root}/ws/link")).unwrap();
    assert_eq!(
        resolve(&format!("{root}/ws/link/key")),
        resolved(format!("{root}/secret/key"))
    );
}

#[test]
fn follows_chains_of_relative_and_absolute_links() {
    let (_dir, root) = temp();
    std::fs::create_dir_all(format!("{root}/a/b")).unwrap();
    std::fs::create_dir_all(format!("{root}/target")).unwrap();
    // a/b/l1 -> ../l2 (relative, read from a/b), a/l2 -> /root/target (absolute)
    symlink("../l2", format!("{root}/a/b/l1")).unwrap();
    symlink(format!("{root}/target"), format!("{root}/a/l2")).unwrap();
    assert_eq!(
        resolve(&format!("{root}/a/b/l1/file")),
        resolved(format!("{root}/target/file"))
    );
}

#[test]
fn a_loop_is_uncertain() {
    let (_dir, root) = temp();
    symlink(format!("{root}/y"), format!("{root}/x")).unwrap();
    symlink(format!("{root}/x"), format!("{root}/y")).unwrap();
    let Resolution::Uncertain(why) = resolve(&format!("{root}/x/file")) else {
        panic!("a loop must be uncertain");
    };
    assert!(why.contains("more than 40 symlinks"), "{why}");
}

#[test]
fn a_dangling_link_resolves_to_its_target() {
    let (_dir, root) = temp();
    std::fs::create_dir_all(format!("{root}/ws")).unwrap();
    symlink(
        format!("{root}/outside/new.txt"),
        format!("{root}/ws/dangling"),
    )
    .unwrap();
    assert!(!exists(&format!("{root}/outside")));
    assert_eq!(
        resolve(&format!("{root}/ws/dangling")),
        resolved(format!("{root}/outside/new.txt"))
    );
}

#[test]
fn a_new_file_under_a_linked_directory_resolves_through_the_link() {
    let (_dir, root) = temp();
    std::fs::create_dir_all(format!("{root}/ws")).unwrap();
    std::fs::create_dir_all(format!("{root}/etc")).unwrap();
    symlink(format!("{root}/etc"), format!("{root}/ws/cfg")).unwrap();
    assert_eq!(
        resolve(&format!("{root}/ws/cfg/new/deeper.txt")),
        resolved(format!("{root}/etc/new/deeper.txt"))
    );
}

#[test]
fn dot_dot_in_a_link_target_is_applied_after_the_link() {
    let (_dir, root) = temp();
    std::fs::create_dir_all(format!("{root}/ws/sub")).unwrap();
    std::fs::create_dir_all(format!("{root}/other")).unwrap();
    // ws/up -> sub/../../other : climbs out of ws.
    symlink("sub/../../other", format!("{root}/ws/up")).unwrap();
    assert_eq!(
        resolve(&format!("{root}/ws/up/f")),
        resolved(format!("{root}/other/f"))
    );
}

#[test]
fn a_component_under_a_file_is_kept_lexically() {
    let (_dir, root) = temp();
    std::fs::write(format!("{root}/file"), "x").unwrap();
    assert_eq!(
        resolve(&format!("{root}/file/below")),
        resolved(format!("{root}/file/below"))
    );
}

#[test]
fn an_unreadable_directory_is_uncertain() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, root) = temp();
    std::fs::create_dir_all(format!("{root}/locked/inner")).unwrap();
    std::fs::set_permissions(
        format!("{root}/locked"),
        std::fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    let result = resolve(&format!("{root}/locked/inner/x"));
    std::fs::set_permissions(
        format!("{root}/locked"),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    // root can search any directory; only an unprivileged user sees the permission error.
    if !matches!(result, Resolution::Resolved(_)) {
        let Resolution::Uncertain(why) = result else {
            unreachable!()
        };
        assert!(why.contains("cannot inspect"), "{why}");
    }
}

#[test]
fn a_relative_path_is_uncertain() {
    assert!(matches!(resolve("ws/a"), Resolution::Uncertain(_)));
}
