//! Private statistics on this node: a `vigil_stats_service::ledger` deployment attached to it,
//! advanced in the background, and who asked which query (only the doctor who asked reads the
//! result). The HTTP side (`/api/queries`) is `vigil_api`'s.

use std::collections::HashMap;
use std::sync::Arc;

use commonware_cryptography::ed25519::PublicKey;
use parking_lot::Mutex;
use vigil_ledger::node::Ledger;
use vigil_ledger::signer::Signer;
use vigil_ledger::tx::QueryId;
use vigil_stats_service::ledger::{Databases, StatsConfig, StatsService};
use vigil_stats_service::store::QueryStore;

use crate::Node;

/// Query owners remembered before forgotten queries are pruned.
const OWNERS_MAX: usize = 2 * vigil_stats_service::ledger::TRACKED_QUERIES_MAX;

/// The node's statistics deployment and who asked which query.
pub struct Stats {
    service: Arc<StatsService>,
    owners: Mutex<HashMap<QueryId, PublicKey>>,
}

impl Stats {
    /// The deployment's service: submit, list and read queries.
    pub fn service(&self) -> &Arc<StatsService> {
        &self.service
    }

    /// Remembers that `querier` asked `id`.
    pub fn remember_owner(&self, id: QueryId, querier: PublicKey) {
        let mut owners = self.owners.lock();
        if owners.len() >= OWNERS_MAX {
            // The service forgets its oldest queries; so do we.
            owners.retain(|id, _| self.service.query(id).is_some());
        }
        owners.insert(id, querier);
    }

    /// Who asked a query this node tracks: remembered at submission, or, for a query the
    /// service brought back from its store after a restart, the signer the ledger recorded.
    pub fn owner(&self, ledger: &Ledger, id: &QueryId) -> Option<PublicKey> {
        if let Some(o) = self.owners.lock().get(id) {
            return Some(o.clone());
        }
        self.service.query(id)?;
        ledger.snapshot().query(id).map(|r| r.querier.clone())
    }
}

impl Node {
    /// Attaches a statistics deployment to this node (once) and advances its queries in the
    /// background. Returns false if one was attached already.
    pub fn enable_stats(self: &Arc<Self>, service: Arc<StatsService>) -> bool {
        let stats = Arc::new(Stats {
            service: service.clone(),
            owners: Mutex::new(HashMap::new()),
        });
        if self.stats.set(stats).is_err() {
            return false;
        }
        // Queries advance only when the finalized state does: step after each finalized
        // block (a step that runs long sees the latest block next, not every one missed).
        let mut snapshots = self.ledger.snapshots();
        tokio::spawn(async move {
            while snapshots.changed().await.is_ok() {
                let service = service.clone();
                // Encryption and proofs are CPU-bound: keep them off the async workers.
                let _ = tokio::task::spawn_blocking(move || service.step()).await;
            }
        });
        true
    }
}

/// Why the demo's statistics deployment did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StatsError {
    #[error("private statistics: {0}")]
    Privstats(#[from] vigil_stats_service::Error),
    #[error("private statistics: setup task failed")]
    Task,
    #[error("private statistics are already enabled on this node")]
    AlreadyEnabled,
}

/// The demo's deployment: 3 servers (t = 2), `dps` data providers with `rows` synthetic rows
/// each (in memory, the week from [`vigil_stats_service::runner::DATA_START_S`]), 2 verifying nodes (keys from fixed
/// seeds), the collective key published by `admin`. Returns once the key and the verifying
/// nodes' roles are finalized; then doctors can query through the API. Queries live in memory
/// only: [`start_demo_stats_stored`] keeps them across restarts.
pub async fn start_demo_stats(
    node: &Arc<Node>,
    admin: Arc<Signer>,
    dps: u32,
    rows: usize,
) -> Result<(), StatsError> {
    start_demo_stats_stored(node, admin, dps, rows, None).await
}

/// [`start_demo_stats`] with the deployment's keys and every query (the querier's secret, the
/// evidence received, the result) in the SQLite file `store`: after a node restart on the same
/// ledger, a doctor's pending query goes on and a decided one still shows its result
/// (`vigil_stats_service::store`).
pub async fn start_demo_stats_stored(
    node: &Arc<Node>,
    admin: Arc<Signer>,
    dps: u32,
    rows: usize,
    store: Option<std::path::PathBuf>,
) -> Result<(), StatsError> {
    let ledger = node.ledger().clone();
    let setup_admin = admin.clone();
    let service = tokio::task::spawn_blocking(move || {
        let data = Databases::synthetic(dps, rows)?;
        let store = store.as_deref().map(QueryStore::open).transpose()?;
        StatsService::setup_with_store(
            ledger,
            setup_admin.as_ref(),
            StatsConfig::demo(2),
            Box::new(data),
            store,
        )
    })
    .await
    .map_err(|_| StatsError::Task)??;
    service.wait_ready(admin.as_ref(), 600).await?;
    if node.enable_stats(Arc::new(service)) {
        Ok(())
    } else {
        Err(StatsError::AlreadyEnabled)
    }
}
