//! `podtrace run`: the live controller.

/// Arguments of `podtrace run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {}

/// Runs the controller until shutdown.
pub async fn run(_args: RunArgs) -> anyhow::Result<()> {
    anyhow::bail!("run is not implemented yet")
}
