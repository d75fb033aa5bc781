//! Building a Kubernetes client the way other controllers do: in-cluster service account,
//! `KUBECONFIG`/`~/.kube/config`, or an explicit kubeconfig file and context.

use std::path::PathBuf;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// Where to find the cluster: the flags `run` and `record` share.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: in-cluster service account, then KUBECONFIG / ~/.kube/config).
    // No `env = "KUBECONFIG"`: kube reads that variable itself, including colon-separated
    // lists, and taking it here would also skip the in-cluster config.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
}

impl ClusterArgs {
    /// A client from `--kubeconfig`/`--context` when given, otherwise inferred (in-cluster
    /// service account first, then the default kubeconfig).
    pub async fn client(&self) -> anyhow::Result<kube::Client> {
        let options = KubeConfigOptions {
            context: self.context.clone(),
            ..Default::default()
        };
        let config = match &self.kubeconfig {
            Some(path) => {
                let kc = Kubeconfig::read_from(path)
                    .with_context(|| format!("reading kubeconfig {}", path.display()))?;
                kube::Config::from_custom_kubeconfig(kc, &options)
                    .await
                    .with_context(|| format!("loading kubeconfig {}", path.display()))?
            }
            None if self.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .context("loading the default kubeconfig")?,
            None => kube::Config::infer()
                .await
                .context("inferring Kubernetes client configuration")?,
        };
        kube::Client::try_from(config).context("building the Kubernetes client")
    }
}
