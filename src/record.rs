//! `podtrace record`: capture Pod/Event/Node watch streams in the replay format.

/// Arguments of `podtrace record`.
#[derive(clap::Args, Debug)]
pub struct RecordArgs {}

/// Records until interrupted.
pub async fn run(_args: RecordArgs) -> anyhow::Result<()> {
    anyhow::bail!("record is not implemented yet")
}
