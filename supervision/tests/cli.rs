//! The `hoard` binary's command line. (Also makes `cargo test` build the binary that `it/` drives.)

use std::process::Command;

/// `hoard version` names the build: version, commit, date, target and compiled-in features.
#[test]
fn version_names_the_build() {
    let out = Command::new(env!("CARGO_BIN_EXE_hoard")).arg("version").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name)).map(str::trim).unwrap_or_default();
    assert!(text.starts_with(&format!("hoard {}\n", env!("CARGO_PKG_VERSION"))), "{text}");
    let commit = field("commit:");
    assert!(commit.len() >= 7 && commit != "unknown", "{text}");
    let built = field("built:").as_bytes();
    assert!(built.len() == 10 && built[4] == b'-' && built[7] == b'-', "{text}");
    assert!(field("target:").contains("linux"), "{text}");
    assert!(field("features:").contains("simd-erasure-coding"), "{text}");
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
