//! Building a Kubernetes client the way other controllers do: in-cluster service account,
//! `KUBECONFIG`/`~/.kube/config`, or an explicit kubeconfig file and context.

use std::path::Path;

use anyhow::Context as _;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// A client from `--kubeconfig`/`--context` when given, otherwise inferred (in-cluster
/// service account first, then the default kubeconfig).
pub async fn make_client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..Default::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &options)
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))?
        }
        None if context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .context("loading the default kubeconfig")?,
        None => kube::Config::infer()
            .await
            .context("inferring Kubernetes client configuration")?,
    };
    kube::Client::try_from(config).context("building the Kubernetes client")
}
