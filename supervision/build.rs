//! Stamps the binary: the commit it was built from and the build date, for `hoard version`.
//!
//! `HOARD_BUILD_COMMIT` overrides the commit (a build outside a git checkout); `SOURCE_DATE_EPOCH` fixes
//! the date, so that a release built twice from one commit is the same binary.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=HOARD_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    for git_file in ["../.git/HEAD", "../.git/refs/heads", "../.git/packed-refs"] {
        if std::path::Path::new(git_file).exists() {
            println!("cargo:rerun-if-changed={git_file}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");

    let commit = std::env::var("HOARD_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    let commit = if dirty { format!("{commit}+changes") } else { commit };
    let epoch =
        std::env::var("SOURCE_DATE_EPOCH").ok().and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or_else(now_secs);
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    let profile = std::env::var("PROFILE").unwrap_or_default();
    println!("cargo:rustc-env=HOARD_COMMIT={commit}");
    println!("cargo:rustc-env=HOARD_BUILD_DATE={}", date(epoch));
    println!("cargo:rustc-env=HOARD_TARGET={}", std::env::var("TARGET").unwrap_or_default());
    // Compiled-in choices an operator may need to know of a binary.
    let mut features = vec!["simd-erasure-coding"];
    if static_crt {
        features.push("crt-static");
    }
    println!("cargo:rustc-env=HOARD_FEATURES={}", features.join(", "));
    println!("cargo:rustc-env=HOARD_PROFILE={profile}");
}

/// The wall clock. A build script is not a node: the Env seam (simulated time) has nothing to say here.
#[allow(clippy::disallowed_methods)]
fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn date(epoch: u64) -> String {
    // Days to civil date, after Howard Hinnant's `civil_from_days`.
    let z = (epoch / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}
