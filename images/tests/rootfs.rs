//! Container root filesystems: overlay and the copy fallback, mounted in a child's own mount
//! namespace (as the runtime does), then removed.

mod common;

use std::fs;
use std::path::Path;

use caps::{CapSet, Capability};
use common::{import, Tar};
use minibox_images::{rootfs, Store};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};

/// Forks; the child enters a mount namespace of its own (private, as the runtime's) and exits
/// with whether `check` held there. Returns that.
fn in_own_mount_ns(check: impl FnOnce() -> bool) -> bool {
    // SAFETY: the child only makes system calls and exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let ok = unshare(CloneFlags::CLONE_NEWNS).is_ok()
                && mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .is_ok()
                && check();
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            matches!(waitpid(child, None).unwrap(), WaitStatus::Exited(_, 0))
        }
    }
}

/// In a child's own mount namespace: mounts the rootfs on `target` and checks that `file` reads
/// `expect` there (and that `absent` is absent). Returns whether all held.
fn check_in_child(
    fs: &rootfs::Rootfs,
    target: &Path,
    file: &Path,
    expect: &str,
    absent: &Path,
) -> bool {
    in_own_mount_ns(|| {
        fs.mount(target).is_ok()
            && fs::read_to_string(target.join(file)).is_ok_and(|s| s == expect)
            && !target.join(absent).exists()
            && fs::write(target.join("written"), "x").is_ok()
    })
}

fn run(driver: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let tar = Tar::new()
        .dir("etc/", 0o755)
        .file("etc/hello", "hi\n")
        .build();
    let image = import(&store, &tar, "one").unwrap();
    if let Some(d) = driver {
        fs::write(tmp.path().join("images").join(rootfs::DRIVER_FILE), d).unwrap();
    }
    let cdir = tmp.path().join("containers/c1");
    let target = tmp.path().join("containers/c1/rootfs");
    fs::create_dir_all(&target).unwrap();
    let fs1 = rootfs::prepare(&image, &cdir).unwrap();
    assert_eq!(fs1.is_overlay(), driver != Some("copy"));
    assert!(check_in_child(
        &fs1,
        &target,
        Path::new("etc/hello"),
        "hi\n",
        Path::new("nope")
    ));
    // Nothing leaked into this namespace; the write landed in the container's own layer.
    assert!(!target.join("etc").exists());
    assert!(!image.layers[0].join("written").exists());
    rootfs::remove(&cdir).unwrap();
    rootfs::remove(&cdir).unwrap();
    assert!(!cdir.join("fs").exists());
}

#[test]
fn overlay_rootfs_mounts_and_is_removed() {
    run(None);
}

#[test]
fn copy_fallback_mounts_and_is_removed() {
    run(Some("copy"));
}

/// 120 layers: their absolute paths alone would overflow overlay's one-page option data.
#[test]
fn a_lowerdir_list_longer_than_a_page_mounts() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let layers: Vec<Vec<u8>> = (0..120)
        .map(|i| {
            Tar::new()
                .file(&format!("layer{i}"), &i.to_string())
                .file("top", &i.to_string())
                .build()
        })
        .collect();
    common::load(&store, &common::docker_archive(&layers, "tall")).unwrap();
    let image = store.image("tall").unwrap();
    let abs: usize = image.layers.iter().map(|l| l.as_os_str().len() + 1).sum();
    assert!(abs > 4096, "the test needs a long list ({abs} bytes)");
    let cdir = tmp.path().join("c");
    let fs1 = rootfs::prepare(&image, &cdir).unwrap();
    assert!(fs1.is_overlay());
    let target = tmp.path().join("mnt");
    fs::create_dir(&target).unwrap();
    assert!(check_in_child(
        &fs1,
        &target,
        Path::new("top"),
        "119",
        Path::new("nope")
    ));
    assert!(check_in_child(
        &fs1,
        &target,
        Path::new("layer0"),
        "0",
        Path::new("nope")
    ));
    rootfs::remove(&cdir).unwrap();
}

/// `remove` unmounts what is still mounted under the container dir before deleting anything
/// (never deleting through a mount), and is idempotent.
#[test]
fn remove_unmounts_first() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let image = import(&store, &Tar::new().file("f", "1").build(), "one").unwrap();
    let cdir = tmp.path().join("c");
    let fs1 = rootfs::prepare(&image, &cdir).unwrap();
    let target = cdir.join("fs/merged");
    fs::create_dir_all(&target).unwrap();
    // SAFETY: the child only makes system calls and exits.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let ok = unshare(CloneFlags::CLONE_NEWNS).is_ok()
                && mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .is_ok()
                && fs1.mount(&target).is_ok()
                && target.join("f").exists()
                && rootfs::remove(&cdir).is_ok()
                && !cdir.join("fs").exists()
                && !fs::read_to_string("/proc/self/mountinfo")
                    .unwrap_or_default()
                    .contains(cdir.to_str().unwrap());
            unsafe { libc::_exit(if ok { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            assert!(matches!(
                waitpid(child, None).unwrap(),
                WaitStatus::Exited(_, 0)
            ));
        }
    }
    // The layer itself was not touched through the mount.
    assert_eq!(fs::read_to_string(image.layers[0].join("f")).unwrap(), "1");
    rootfs::remove(&cdir).unwrap();
}

/// The attack the check defends against: a host directory bound under a container's root
/// filesystem, in a process that cannot unmount it (no CAP_SYS_ADMIN). `remove` finds the mount
/// without mountinfo, refuses with an error naming it, and deletes nothing: neither the bound
/// directory's files nor the container's own.
#[test]
fn remove_refuses_while_something_stays_mounted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(&tmp.path().join("images")).unwrap();
    let image = import(&store, &Tar::new().file("f", "1").build(), "one").unwrap();
    let cdir = tmp.path().join("c");
    rootfs::prepare(&image, &cdir).unwrap();
    let victim = tmp.path().join("host-data");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join("precious"), "keep").unwrap();
    let target = cdir.join("fs/upper/deep/x");
    fs::create_dir_all(&target).unwrap();
    fs::write(cdir.join("fs/upper/mine"), "c").unwrap();
    assert!(in_own_mount_ns(|| {
        mount(
            Some(&victim),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .is_ok()
            && caps::drop(None, CapSet::Effective, Capability::CAP_SYS_ADMIN).is_ok()
            && rootfs::remove(&cdir).is_err_and(|e| {
                e.to_string().contains("still mounted")
                    && e.to_string().contains(target.to_str().unwrap())
            })
            && fs::read_to_string(target.join("precious")).is_ok_and(|s| s == "keep")
            && cdir.join("fs/upper/mine").exists()
    }));
    assert_eq!(fs::read_to_string(victim.join("precious")).unwrap(), "keep");
    // Here, where nothing is mounted, it goes.
    rootfs::remove(&cdir).unwrap();
    assert!(!cdir.join("fs").exists());
}
