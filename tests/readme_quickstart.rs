//! The README's quick start replays the shipped example; this keeps that command working.

use std::process::Command;

fn replay(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podtrace"))
        .arg("replay")
        .args(args)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/shop-startup.json"
        ))
        .env("NO_COLOR", "1")
        .output()
        .expect("run podtrace");
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn example_replays_to_one_waterfall_per_pod() {
    let (stdout, stderr) = replay(&["--format", "waterfall"]);
    let headers: Vec<&str> = stdout.lines().filter(|l| l.starts_with("shop/")).collect();
    assert_eq!(
        headers.len(),
        9,
        "one trace per pod of the scenario:\n{stdout}"
    );
    for pod in ["bad-pull", "crashy", "needs-gpu", "short-lived"] {
        assert!(
            headers
                .iter()
                .any(|h| h.starts_with(&format!("shop/{pod} "))),
            "{pod} missing"
        );
    }
    assert!(
        stdout.contains("FailedScheduling"),
        "needs-gpu's FailedScheduling event is shown"
    );
    assert!(!stderr.contains("error"), "no input errors: {stderr}");
}

#[test]
fn example_summary_fills_every_clusterloader2_phase() {
    let (stdout, _) = replay(&["--format", "summary"]);
    for phase in [
        "create_to_schedule",
        "schedule_to_run",
        "run_to_watch",
        "schedule_to_watch",
        "pod_startup",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(phase))
            .unwrap_or_else(|| panic!("{phase} missing from summary:\n{stdout}"));
        let count: u32 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        assert!(count > 0, "{phase} has no samples: {line}");
    }
}
