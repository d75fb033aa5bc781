//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it.
//!
//! No maintained crate does this for kube 5, and it is small: read the Lease; take it when it
//! is free, ours, or has not been renewed for `leaseDurationSeconds` *as observed by us* (the
//! holder's clock is never compared with ours); write with `replace`, whose resourceVersion
//! makes concurrent candidates conflict instead of both winning. The leader renews every
//! [`RENEW_PERIOD`]; if it cannot renew for [`RENEW_DEADLINE`] it must assume another replica
//! has taken over, and the controller exits so its Deployment restarts it as a candidate.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Seconds a lease stays valid after its last renewal.
pub const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews.
pub const RENEW_PERIOD: Duration = Duration::from_secs(5);
/// How long the leader keeps working without a successful renewal.
pub const RENEW_DEADLINE: Duration = Duration::from_secs(10);
/// How often a candidate retries.
pub const RETRY_PERIOD: Duration = Duration::from_secs(2);

/// Leader election errors.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// An API call failed.
    #[error("lease {namespace}/{name}: {source}")]
    Api {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// The failure.
        #[source]
        source: kube::Error,
    },
    /// The lease was not renewed in time, or another identity holds it now.
    #[error("lost the lease {namespace}/{name}: {reason}")]
    Lost {
        /// Lease namespace.
        namespace: String,
        /// Lease name.
        name: String,
        /// Why.
        reason: String,
    },
}

/// One candidate for a Lease.
pub struct Elector {
    api: Api<Lease>,
    namespace: String,
    name: String,
    identity: String,
    /// (holder, renewTime) last seen, and when we first saw that pair.
    observed: Option<(Option<String>, Option<Timestamp>, tokio::time::Instant)>,
}

enum Attempt {
    Acquired,
    HeldByOther(String),
}

impl Elector {
    /// A candidate for lease `namespace/name` as `identity`.
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Elector {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            name: name.to_string(),
            identity: identity.to_string(),
            observed: None,
        }
    }

    fn api_err(&self, source: kube::Error) -> LeaderError {
        LeaderError::Api {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            source,
        }
    }

    fn spec(&self, previous: Option<&LeaseSpec>, now: Timestamp) -> LeaseSpec {
        let ours = previous.is_some_and(|p| p.holder_identity.as_deref() == Some(&self.identity));
        let transitions = previous.and_then(|p| p.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(LEASE_DURATION.as_secs() as i32),
            acquire_time: if ours {
                previous.and_then(|p| p.acquire_time.clone())
            } else {
                Some(MicroTime(now))
            },
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(if ours || previous.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..LeaseSpec::default()
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<Attempt, LeaderError> {
        let now = Timestamp::now();
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.api_err(e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    namespace: Some(self.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(None, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Attempt::Acquired),
                Err(kube::Error::Api(e)) if e.code == 409 => {
                    Ok(Attempt::HeldByOther("unknown".into()))
                }
                Err(e) => Err(self.api_err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let renew = spec.renew_time.as_ref().map(|t| t.0);
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(LEASE_DURATION);
        // Expiry is judged by how long the record has stayed unchanged on our clock.
        let unchanged_since = match &self.observed {
            Some((h, r, at)) if *h == holder && *r == renew => *at,
            _ => {
                let at = tokio::time::Instant::now();
                self.observed = Some((holder.clone(), renew, at));
                at
            }
        };
        let free = match &holder {
            None => true,
            Some(h) if *h == self.identity => true,
            Some(_) => unchanged_since.elapsed() >= duration,
        };
        if !free {
            return Ok(Attempt::HeldByOther(holder.unwrap_or_default()));
        }
        lease.spec = Some(self.spec(Some(&spec), now));
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(Attempt::Acquired),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                Ok(Attempt::HeldByOther(holder.unwrap_or_default()))
            }
            Err(e) => Err(self.api_err(e)),
        }
    }

    /// Waits until this candidate holds the lease.
    pub async fn acquire(&mut self) {
        let mut last_holder = String::new();
        loop {
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Acquired) => {
                    tracing::info!(lease = %self.name, identity = %self.identity, "acquired the lease");
                    return;
                }
                Ok(Attempt::HeldByOther(h)) => {
                    if h != last_holder {
                        tracing::info!(lease = %self.name, holder = %h, "standing by: lease held by another replica");
                        last_holder = h;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "lease acquisition failed; retrying"),
            }
            tokio::time::sleep(RETRY_PERIOD).await;
        }
    }

    /// Renews the lease until it is lost; returns why.
    pub async fn hold(&mut self) -> LeaderError {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(RENEW_PERIOD).await;
            match self.try_acquire_or_renew().await {
                Ok(Attempt::Acquired) => last_ok = tokio::time::Instant::now(),
                Ok(Attempt::HeldByOther(h)) => {
                    return LeaderError::Lost {
                        namespace: self.namespace.clone(),
                        name: self.name.clone(),
                        reason: format!("now held by {h:?}"),
                    };
                }
                Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
            }
            if last_ok.elapsed() >= RENEW_DEADLINE {
                return LeaderError::Lost {
                    namespace: self.namespace.clone(),
                    name: self.name.clone(),
                    reason: format!("not renewed for {RENEW_DEADLINE:?}"),
                };
            }
        }
    }

    /// Gives the lease up on a clean shutdown so a standby takes over at once.
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        spec.acquire_time = None;
        if let Err(e) = self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            tracing::warn!(error = %e, "releasing the lease failed; it will expire");
        }
    }
}
