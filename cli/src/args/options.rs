//! What the global flags select and configure: the store a command runs
//! on and everything it is built with (key space, policy, `WAIT`, the near
//! cache).

use authsession_core::op::{BatchSize, OnLimit, Policy, SessionLimit};
use authsession_core::{KeySpace, Layout};

use super::{GlobalArgs, LayoutArg, OnLimitArg};
use crate::duration;
use crate::error::CliError;
use crate::target::StoreOptions;
use crate::target::StoreTarget;

impl GlobalArgs {
    /// The store a command runs on: `--memory`, else the cluster nodes or
    /// the URL (an explicit flag beats the environment), else
    /// `default_url` (`None`: in memory).
    pub(crate) fn target(&self, default_url: Option<&str>) -> StoreTarget {
        let cluster = !self.cluster_nodes.is_empty()
            && (self.given.cluster_flag || !self.given.redis_url_flag);
        match (&self.redis_url, default_url) {
            _ if self.memory => StoreTarget::Memory,
            _ if cluster => StoreTarget::Cluster(self.cluster_nodes.clone()),
            (Some(url), _) => StoreTarget::Redis(url.clone()),
            (None, Some(url)) => StoreTarget::Redis(url.to_owned()),
            (None, None) => StoreTarget::Memory,
        }
    }

    /// The layout on `target`: `--layout`, else tagged on a cluster and
    /// the reference layout elsewhere.
    pub(crate) fn layout(&self, target: &StoreTarget) -> Result<Layout, CliError> {
        match (self.layout, target) {
            (Some(LayoutArg::Reference), StoreTarget::Cluster(_)) => Err(CliError::usage(
                "--layout reference: a cluster needs the tagged layout",
            )),
            (Some(layout), _) => Ok(layout.into()),
            (None, StoreTarget::Cluster(_)) => Ok(Layout::Tagged),
            (None, _) => Ok(Layout::Reference),
        }
    }

    /// Retention, session limit and batch size from the flags.
    pub(crate) fn policy(&self) -> Result<Policy, CliError> {
        let revoked_retention = self
            .revoked_retention
            .as_deref()
            .map(|text| duration::parse(text, "--revoked-retention"))
            .transpose()?;
        let on_limit = match self.on_limit {
            OnLimitArg::Reject => OnLimit::Reject,
            OnLimitArg::RevokeOldest => OnLimit::RevokeOldest,
        };
        let session_limit = match self.max_active_sessions {
            None if self.given.on_limit => {
                return Err(CliError::usage("--on-limit needs --max-active-sessions"))
            }
            None => None,
            Some(n) => Some(SessionLimit::new(n, on_limit).ok_or_else(|| {
                CliError::new("out_of_range", "--max-active-sessions must be at least 1")
            })?),
        };
        let batch_size = match self.batch_size {
            None => BatchSize::default(),
            Some(n) => BatchSize::new(n).ok_or_else(|| {
                CliError::new(
                    "out_of_range",
                    format!("--batch-size must be within 1..={}", BatchSize::MAX),
                )
            })?,
        };
        let owner_grace = self
            .owner_grace
            .as_deref()
            .map(|text| duration::parse(text, "--owner-grace"))
            .transpose()?
            .unwrap_or(Policy::DEFAULT_OWNER_GRACE);
        Ok(Policy {
            revoked_retention,
            session_limit,
            batch_size,
            owner_grace,
        })
    }

    /// Everything but the location of a store on `target`, under `base`.
    pub(crate) fn options_with_base(
        &self,
        target: &StoreTarget,
        base: &str,
    ) -> Result<StoreOptions, CliError> {
        let keys = KeySpace::with_base_and_layout(base, self.layout(target)?)
            .map_err(|e| CliError::from(e).context("--prefix"))?;
        Ok(StoreOptions {
            keys,
            policy: self.policy()?,
            wait_replicas: self.wait_replicas,
            cache: self.cache_config()?,
        })
    }

    /// `--cache` and its bounds.
    pub(crate) fn cache_config(&self) -> Result<Option<authsession_driver::CacheConfig>, CliError> {
        if !self.cache {
            if self.cache_max_entries.is_some() || self.cache_max_staleness.is_some() {
                return Err(CliError::usage(
                    "--cache-max-entries and --cache-max-staleness need --cache",
                ));
            }
            return Ok(None);
        }
        let mut config = authsession_driver::CacheConfig::default();
        if let Some(n) = self.cache_max_entries {
            if n == 0 {
                return Err(CliError::new(
                    "out_of_range",
                    "--cache-max-entries must be at least 1",
                ));
            }
            config.max_entries = n;
        }
        if let Some(text) = &self.cache_max_staleness {
            config.max_staleness = duration::parse(text, "--cache-max-staleness")?;
        }
        Ok(Some(config))
    }

    /// [`GlobalArgs::options_with_base`] under `--prefix`.
    pub(crate) fn options(&self, target: &StoreTarget) -> Result<StoreOptions, CliError> {
        self.options_with_base(target, &self.prefix)
    }

    /// Whether `create` prints `{"session":…,"evicted":[…]}`: whenever the
    /// limit may evict, so the shape depends on the flags, never the data.
    pub(crate) fn create_reports_evictions(&self) -> bool {
        self.max_active_sessions.is_some() && self.on_limit == OnLimitArg::RevokeOldest
    }
}
