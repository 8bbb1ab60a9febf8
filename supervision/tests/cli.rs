//! The `hoard` binary's command line. (Also makes `cargo test` build the binary that `it/` drives.)

use std::process::Command;

#[test]
fn version_prints_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_hoard")).arg("version").output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("hoard {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn serve_refuses_fewer_disks_than_the_stripe_is_wide() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_hoard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .arg("--disk")
        .arg(dir.path().join("a"))
        .arg("--disk")
        .arg(dir.path().join("b"))
        .env_remove("HOARD_ROOT_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 disks configured but 4+2 coding needs at least 6"), "{err}");
}
