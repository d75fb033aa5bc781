//! Finds the tools `tests/env/build.sh` builds into the cache (helm, prometheus,
//! dashboard-check), asking the script itself so versions live in one place. A missing
//! tool fails the test with the command that builds it: CI builds them all, so a skip
//! would only hide a broken build.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of `binary` in the cache entry of build.sh component `component`.
pub fn tool(component: &str, binary: &str) -> PathBuf {
    let script = root().join("tests/env/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .args(["--path", component])
        .output()
        .unwrap_or_else(|e| panic!("running {} --path {component}: {e}", script.display()));
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let path = Path::new(&dir).join(binary);
    assert!(
        out.status.success() && path.is_file(),
        "{binary} is not built ({} missing): run `tests/env/build.sh {component}` \
         (tests/run.sh and CI build every component){}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// `helm` with its config, cache and data directories inside `home`, so tests never read
/// or write the user's Helm setup (repositories, plugins, registry logins).
pub fn helm(home: &Path) -> Command {
    let mut cmd = Command::new(tool("helm", "helm"));
    for (var, sub) in [
        ("HELM_CONFIG_HOME", "config"),
        ("HELM_CACHE_HOME", "cache"),
        ("HELM_DATA_HOME", "data"),
    ] {
        cmd.env(var, home.join(sub));
    }
    cmd.env_remove("KUBECONFIG").env_remove("HELM_NAMESPACE");
    cmd
}
