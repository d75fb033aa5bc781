//! `podtrace replay`: the engine over recorded watch streams.

/// Arguments of `podtrace replay`.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {}

/// Runs `podtrace replay`.
pub fn run(_args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::bail!("replay is not implemented yet")
}
