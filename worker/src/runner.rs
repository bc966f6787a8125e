//! Running syncs: claiming due tenants, running one sync with its bookkeeping (the run record, the connection's state,
//! the lease), and the loop around it that any number of worker processes can run side by side.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use common::token_cipher::TokenKeys;
use entity::TenantTxn;
use entity::audit::{self, Actor, AuditAction, Event, Origin};
use entity::audit_logs::Outcome as AuditOutcome;
use entity::sync::schedule::{self, Claimed};
use entity::sync_runs::{self, SyncStatus, SyncTrigger};
use entity::tenants::Plan;
use entity::testio_connections::{self, ConnectionStatus};
use sea_orm::DatabaseConnection;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::sync::{Job, Source, SyncError, SyncSettings};
use testio::allowlist::AllowedBaseUrls;
use testio::client::{Endpoint, TestioClient, normalize_base_url};

/// Sync intervals by plan.
#[derive(Debug, Clone, Copy)]
pub struct Intervals {
    pub free: Duration,
    pub pro: Duration,
    pub enterprise: Duration,
}

impl Intervals {
    pub fn of(&self, plan: Plan) -> Duration {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Enterprise => self.enterprise,
        }
    }
}

/// Everything a sync needs, shared by the loop's tasks.
pub struct Runner {
    pub db: DatabaseConnection,
    pub client: TestioClient,
    pub keys: TokenKeys,
    /// Where a stored connection may send its token: checked before every sync, since the list may have changed
    /// since the connection was saved, or differ from the API's.
    pub allowlist: AllowedBaseUrls,
    pub settings: SyncSettings,
    pub intervals: Intervals,
    /// The plans: which one is in force for a tenant (a lapsed past-due subscription falls to `free`), and its limits.
    pub plans: entity::plans::Catalog,
    /// This process's name in leases and run records.
    pub name: String,
    pub shutdown: CancellationToken,
}

/// What to do with the lease after a sync.
enum Release {
    /// Hand the tenant back, due again at this time.
    DueAt(chrono::DateTime<Utc>),
    /// Hand it back off the schedule (no usable connection).
    Unscheduled,
    /// Nothing: another worker holds the tenant now.
    NotOurs,
}

/// How a tenant's sync ended, for the caller (the CLI prints it).
#[derive(Debug, Clone)]
pub struct Finished {
    pub run: Option<sync_runs::Model>,
    pub note: String,
}

impl Runner {
    /// Syncs a tenant this process has claimed, then releases it with its next due time.
    #[tracing::instrument(skip_all, fields(tenant_id = %claimed.tenant_id))]
    pub async fn sync_claimed(&self, claimed: Claimed, trigger: SyncTrigger, full: bool) -> anyhow::Result<Finished> {
        let tenant = claimed.tenant_id;
        let (finished, release) = match self.sync(claimed, trigger, full).await {
            Ok(done) => done,
            Err(e) => {
                // The database failed: try again later; the lease expires by itself if the release fails too.
                let next = Utc::now() + chrono::Duration::seconds(60);
                let _ = schedule::release(&self.db, tenant, &self.name, claimed.due_at, Some(next)).await;
                return Err(e);
            }
        };
        if let Some(run) = &finished.run {
            let outcome = run.status.as_str();
            metrics::counter!("sync_runs_total", "outcome" => outcome).increment(1);
            if let (Some(started), Some(ended)) = (run.started_at, run.finished_at) {
                let seconds = (ended - started).num_milliseconds().max(0) as f64 / 1000.0;
                metrics::histogram!("sync_run_duration_seconds", "outcome" => outcome).record(seconds);
            }
        }
        let next = match release {
            Release::DueAt(at) => Some(at),
            Release::Unscheduled => None,
            Release::NotOurs => return Ok(finished),
        };
        schedule::release(&self.db, tenant, &self.name, claimed.due_at, next)
            .await
            .context("Failed to release the tenant's lease")?;
        Ok(finished)
    }

    /// The sync and its bookkeeping, and what to do with the lease afterwards.
    async fn sync(&self, claimed: Claimed, trigger: SyncTrigger, full: bool) -> anyhow::Result<(Finished, Release)> {
        let tenant = claimed.tenant_id;
        let txn = TenantTxn::begin(&self.db, tenant).await.context("Failed to begin the tenant transaction")?;
        let connection = testio_connections::find(&txn).await.context("Failed to load the TestIO connection")?;
        let asked = connection.as_ref().and_then(|c| c.sync_interval_secs).and_then(|s| u64::try_from(s).ok());
        let plan = match entity::tenants::find(&txn, tenant).await.context("Failed to load the tenant")? {
            Some(t) => self.plans.in_force_for(&t, Utc::now()),
            None => claimed.plan,
        };
        // The tenant's own interval, never shorter than its plan's.
        let interval = self.intervals.of(plan).max(std::time::Duration::from_secs(asked.unwrap_or(0)));
        let Some(connection) = connection.filter(|c| c.status == ConnectionStatus::Active) else {
            txn.commit().await.context("Failed to commit")?;
            let note = "no active TestIO connection: taken off the schedule".to_owned();
            return Ok((Finished { run: None, note }, Release::Unscheduled));
        };
        // Before the token is even opened: a base URL outside the list gets no request at all.
        let base_url = match self.allowed_base_url(&connection.base_url) {
            Ok(base_url) => base_url,
            Err(reason) => return self.refuse_base_url(txn, connection, &reason, trigger, full).await,
        };
        let token = match self.keys.open(tenant, &connection.sealed_token()) {
            Ok(token) => token,
            Err(e) => {
                tracing::error!(error = %e, "cannot decrypt the tenant's TestIO token; check TESTIO_TOKEN_KEYS");
                let run = sync_runs::start(&txn, trigger, full, &self.name).await.context("Failed to start the run")?;
                let run = sync_runs::finish(&txn, run, SyncStatus::Failed, Default::default(), Some(&e.to_string()))
                    .await
                    .context("Failed to record the run")?;
                txn.commit().await.context("Failed to commit")?;
                let next = Utc::now() + chrono_of(interval);
                return Ok((Finished { run: Some(run), note: e.to_string() }, Release::DueAt(next)));
            }
        };
        if self.keys.is_stale(&connection.sealed_token()) {
            let resealed = self.keys.seal(tenant, &token).context("Failed to re-seal the token")?;
            testio_connections::reseal(&txn, &connection.token_ciphertext, resealed)
                .await
                .context("Failed to re-seal the token")?;
        }
        let run = sync_runs::start(&txn, trigger, full, &self.name).await.context("Failed to start the run")?;
        txn.commit().await.context("Failed to commit the run start")?;

        let source = Source::new(self.client.clone(), Endpoint { base_url, token });
        let mut job = Job::new(&self.db, source, tenant, &self.name, &self.settings, run.id)
            .with_product_limit(self.plans.limits(plan).products);
        // Writes renew the lease, but a long stretch of requests (retries, a page shrunk item by item, many bug
        // batches) could outlast it: a heartbeat keeps it while the job runs. Writes stay fenced by their own renewal.
        let beat = tokio_util::sync::CancellationToken::new();
        let heartbeat = {
            let (db, name, beat) = (self.db.clone(), self.name.clone(), beat.clone());
            let lease = self.settings.lease_secs;
            tokio::spawn(async move {
                let every = std::time::Duration::from_secs((lease as u64 / 3).max(1));
                loop {
                    tokio::select! {
                        _ = beat.cancelled() => break,
                        _ = tokio::time::sleep(every) => {
                            if !matches!(schedule::heartbeat(&db, tenant, &name, lease).await, Ok(true)) {
                                break;
                            }
                        }
                    }
                }
            })
        };
        let result = job.run(run.full_sync, interval).await;
        beat.cancel();
        let _ = heartbeat.await;
        let counts = job.counts();
        let now = Utc::now();
        let (status, error, release) = match &result {
            Ok(outcome) => {
                let status = if outcome.open_gaps > 0 { SyncStatus::Partial } else { SyncStatus::Succeeded };
                let next = if outcome.backfill_pending { now } else { now + chrono_of(interval) };
                (status, None, Release::DueAt(next))
            }
            Err(e @ SyncError::Unauthorized) => (SyncStatus::Failed, Some(e.to_string()), Release::Unscheduled),
            Err(e @ SyncError::LeaseLost) => (SyncStatus::Interrupted, Some(e.to_string()), Release::NotOurs),
            Err(e @ SyncError::Cancelled) => (SyncStatus::Interrupted, Some(e.to_string()), Release::DueAt(now)),
            Err(e) => (SyncStatus::Failed, Some(e.to_string()), Release::DueAt(now + chrono::Duration::seconds(60))),
        };
        if matches!(result, Err(SyncError::LeaseLost)) {
            // Another worker owns the tenant and will close this run as interrupted when it starts its own.
            tracing::warn!("lost the lease on the tenant; stopping without writing");
            return Ok((Finished { run: None, note: "lost the lease".to_owned() }, Release::NotOurs));
        }
        let txn = TenantTxn::begin(&self.db, tenant).await.context("Failed to begin the tenant transaction")?;
        let run = sync_runs::find(&txn, run.id).await.context("Failed to load the run")?.unwrap_or(run);
        let run =
            sync_runs::finish(&txn, run, status, counts, error.as_deref()).await.context("Failed to record the run")?;
        sync_runs::record_skipped_products(&txn, run.id, job.skipped_products())
            .await
            .context("Failed to record the skipped products")?;
        // A token saved while this run used the old one is not the token TestIO refused.
        let current = testio_connections::find(&txn).await.context("Failed to load the connection")?;
        // Whatever the outcome, the run shows how far the mirror was verified when it ended.
        sync_runs::record_verified_through(&txn, run.id, current.as_ref().and_then(|c| c.verified_through))
            .await
            .context("Failed to record the run")?;
        let same_token = current.as_ref().is_some_and(|c| c.token_ciphertext == connection.token_ciphertext);
        if matches!(result, Err(SyncError::Unauthorized)) && same_token {
            if let Some(current) = current {
                testio_connections::mark_needs_token(&txn, current, "TestIO answered 401 to the saved token")
                    .await
                    .context("Failed to mark the connection")?;
            }
            let event = Event::new(AuditAction::TestioConnectionNeedsToken, Actor::worker())
                .on(tenant)
                .outcome(AuditOutcome::Failure)
                .metadata(serde_json::json!({ "sync_run_id": run.id }));
            audit::record(&txn, event, &Origin::default()).await.context("Failed to audit the refused token")?;
            schedule::unschedule(&txn).await.context("Failed to unschedule")?;
        }
        txn.commit().await.context("Failed to commit the run end")?;
        tracing::info!(status = ?run.status, requests = run.requests, tests_new = run.tests_new,
                       bugs_new = run.bugs_new, "sync finished");
        let note = error.unwrap_or_else(|| format!("{:?}", run.status).to_lowercase());
        Ok((Finished { run: Some(run), note }, release))
    }

    /// The stored base URL, parsed, if the allowlist admits it; otherwise why not, for the connection's
    /// `status_reason` and the run's error.
    fn allowed_base_url(&self, stored: &str) -> Result<url::Url, String> {
        let fix = "save the connection again with an allowed base_url";
        match normalize_base_url(stored) {
            Ok(url) if self.allowlist.permits(&url) => Ok(url),
            Ok(url) => Err(format!("the base URL {url} is not in TESTIO_ALLOWED_BASE_URLS; {fix}")),
            Err(e) => Err(format!("the stored base URL {stored:?} {e}; {fix}")),
        }
    }

    /// Stops syncing a connection aimed outside the allowlist, without a request: the run fails with `reason`, the
    /// connection is marked `base_url_not_allowed` (saving it again revives it), the refusal is audited, and the
    /// tenant leaves the schedule, as after a 401.
    async fn refuse_base_url(
        &self,
        txn: TenantTxn,
        connection: testio_connections::Model,
        reason: &str,
        trigger: SyncTrigger,
        full: bool,
    ) -> anyhow::Result<(Finished, Release)> {
        let tenant = txn.tenant_id();
        let base_url = connection.base_url.clone();
        let marked = testio_connections::mark_base_url_not_allowed(&txn, connection, reason)
            .await
            .context("Failed to mark the connection")?;
        if marked.is_none() {
            // Saved again since it was read: the new connection is checked by a sync due at once.
            txn.commit().await.context("Failed to commit")?;
            let note = "the connection was saved again while being checked".to_owned();
            return Ok((Finished { run: None, note }, Release::DueAt(Utc::now())));
        }
        tracing::warn!(base_url = %base_url, "the stored TestIO base URL is not allowed; the tenant is not synced");
        let run = sync_runs::start(&txn, trigger, full, &self.name).await.context("Failed to start the run")?;
        let run = sync_runs::finish(&txn, run, SyncStatus::Failed, Default::default(), Some(reason))
            .await
            .context("Failed to record the run")?;
        let event = Event::new(AuditAction::TestioConnectionBaseUrlNotAllowed, Actor::worker())
            .on(tenant)
            .outcome(AuditOutcome::Failure)
            .metadata(serde_json::json!({ "sync_run_id": run.id, "base_url": base_url }));
        audit::record(&txn, event, &Origin::default()).await.context("Failed to audit the refused base URL")?;
        schedule::unschedule(&txn).await.context("Failed to unschedule")?;
        txn.commit().await.context("Failed to commit the refused run")?;
        Ok((Finished { run: Some(run), note: reason.to_owned() }, Release::Unscheduled))
    }

    /// The worker loop: claims due tenants up to `concurrency` at a time until `shutdown`, then lets running syncs
    /// stop at their next request (they record an interrupted run and hand the tenant back as due now).
    pub async fn run_loop(self: Arc<Self>, concurrency: usize, poll: Duration) -> anyhow::Result<()> {
        let mut tasks: JoinSet<()> = JoinSet::new();
        let lease = self.settings.lease_secs;
        loop {
            while tasks.try_join_next().is_some() {}
            let free = concurrency.saturating_sub(tasks.len());
            if free > 0 && !self.shutdown.is_cancelled() {
                match schedule::claim_due(&self.db, &self.name, lease, free as u64).await {
                    Ok(claimed) => {
                        for claimed in claimed {
                            let runner = self.clone();
                            tasks.spawn(async move {
                                match runner.sync_claimed(claimed, SyncTrigger::Schedule, false).await {
                                    Ok(finished) => tracing::debug!(note = %finished.note, "tenant done"),
                                    Err(e) => tracing::error!(tenant_id = %claimed.tenant_id, error = format!("{e:#}"),
                                                              "sync failed"),
                                }
                            });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "Failed to claim due tenants"),
                }
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(poll) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::hours(1))
}

/// A unique name for this process: host and pid, plus a random suffix (pids repeat across containers).
pub fn default_worker_name() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}-{}", std::process::id(), &uuid::Uuid::new_v4().simple().to_string()[..6])
}
