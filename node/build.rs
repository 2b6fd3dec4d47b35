//! Names the commit a release build was made from, for `tether_build_info{commit}`:
//! `TETHER_GIT_COMMIT` when set (the Docker build passes it, having no `.git`), else, in
//! release builds, `git rev-parse` of the checkout. Debug builds do not ask git: every
//! commit would otherwise rebuild the node crate and everything that links it.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=TETHER_GIT_COMMIT");
    if std::env::var_os("TETHER_GIT_COMMIT").is_some()
        || std::env::var("PROFILE").as_deref() != Ok("release")
    {
        return;
    }
    let Some(commit) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return;
    };
    println!("cargo:rustc-env=TETHER_GIT_COMMIT={commit}");
    // Build again when HEAD moves: HEAD itself (a checkout), the branch it names (a commit),
    // or packed refs.
    if let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]).map(PathBuf::from) {
        let mut watch = vec![dir.join("HEAD"), dir.join("packed-refs")];
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            watch.push(dir.join(branch));
        }
        for path in watch.iter().filter(|p| p.exists()) {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
