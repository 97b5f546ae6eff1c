//! One query through a whole deployment in this process, ledger included: what `vigil query`
//! runs. A consortium of [`VALIDATORS`] validators on loopback (`vigil_ledger::local`, storage
//! under the caller's directory), the consortium admin, a doctor, the servers, the DPs and the
//! verifying nodes of a [`StatsService`]. The query is the doctor's `StatsQuery` transaction,
//! every verifying node's verdict a `ProofVerdict` transaction, and the result is accepted only
//! on finalized verdicts (the acceptance rule of [`crate::ledger`]), exactly as through the
//! node's API.
//!
//! The identities (validators, admin, doctor, verifying nodes) come from fixed seeds: fine for a
//! command-line run on one machine, never for a deployment.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use commonware_cryptography::Signer as _;
use commonware_cryptography::ed25519::{PrivateKey, PublicKey};
use commonware_runtime::{Runner as _, Supervisor as _, tokio};
use vigil_ledger::local::{LocalConfig, start_local};
use vigil_ledger::signer::Signer;
use vigil_ledger::sim::Keys;
use vigil_ledger::tx::{QueryId, Role, TxBody};

use crate::error::{Error, Result};
#[cfg(feature = "fault-injection")]
use crate::fault::Fault;
use crate::ledger::{DataSource, QueryRequest, QueryStatus, StatsConfig, StatsService};
use vigil_privstats::query::Query;

/// Validators of the local consortium (tolerates one fault).
pub const VALIDATORS: usize = 4;
/// Seed of the local doctor's identity.
pub const DOCTOR_SEED: u64 = 4242;
/// Finalized blocks the whole run (setup, then the query) may take at most.
pub const BLOCKS_MAX: u64 = 600;

/// What to run.
pub struct LocalRun {
    pub request: QueryRequest,
    pub config: StatsConfig,
    pub data: Box<dyn DataSource>,
    /// The ledger's storage directory (created if missing; reuse it and the chain grows).
    pub storage: PathBuf,
    /// Runtime worker threads: the query's proofs run on one of them (at least 2).
    pub workers: usize,
}

/// What came out, with the ledger's own record of the query.
#[derive(Debug)]
pub struct LocalOutcome {
    /// The `StatsQuery` transaction's id.
    pub id: QueryId,
    pub query: Query,
    /// Accepted (verified, decrypted) or rejected, decided on finalized verdicts only.
    pub status: QueryStatus,
    /// The doctor who signed the query.
    pub doctor: PublicKey,
    /// The finalized ledger record: who asked, and the verdicts counted on the chain.
    pub record_querier: PublicKey,
    pub record_verdicts: u32,
    pub record_valid_verdicts: u32,
    /// Finalized height when the query was decided.
    pub height: u64,
    /// Consortium start, key generation and publication.
    pub setup: Duration,
    /// Submission to decision.
    pub query_time: Duration,
}

/// Starts the consortium, grants the doctor its role, sets the statistics deployment up (DKG,
/// collective key and verifying nodes' roles on the ledger), runs the query and stops.
pub fn run(run: LocalRun) -> Result<LocalOutcome> {
    run_prepared(run, Box::new(|_| {}))
}

/// [`run`] with a fault injected into the query's computation (tests of the acceptance rule).
#[cfg(feature = "fault-injection")]
pub fn run_with_fault(run: LocalRun, fault: Fault) -> Result<LocalOutcome> {
    run_prepared(run, Box::new(move |service| service.inject(fault)))
}

/// [`run`], with `prepare` applied to the service once it is ready, before the query.
fn run_prepared(
    run: LocalRun,
    prepare: Box<dyn FnOnce(&StatsService) + Send>,
) -> Result<LocalOutcome> {
    std::fs::create_dir_all(&run.storage)
        .map_err(|e| Error::Param(format!("{}: {e}", run.storage.display())))?;
    let runner = tokio::Runner::new(
        tokio::Config::new()
            .with_worker_threads(run.workers.max(2))
            .with_storage_directory(&run.storage),
    );
    runner.start(|context| async move {
        let started = Instant::now();
        let cluster = start_local(
            context.child("ledger"),
            LocalConfig::new(Keys::new(VALIDATORS, 1)),
        )
        .await;
        let outcome = async {
            let ledger = cluster
                .ledgers
                .first()
                .cloned()
                .ok_or_else(|| Error::Ledger("no validator started".into()))?;
            let admin = Signer::new(cluster.keys.admin.clone());
            let doctor = Signer::new(PrivateKey::from_seed(DOCTOR_SEED));
            let has_role = ledger
                .snapshot()
                .view()
                .has_role(doctor.public(), Role::Doctor);
            if !has_role {
                admin
                    .submit(
                        &ledger,
                        TxBody::GrantRole {
                            identity: doctor.public().clone(),
                            role: Role::Doctor,
                        },
                    )
                    .map_err(|e| Error::Ledger(format!("granting the doctor its role: {e}")))?;
            }
            let service = StatsService::setup(ledger.clone(), &admin, run.config, run.data)?;
            service.wait_ready(&admin, BLOCKS_MAX).await?;
            // Nonces do not chain: the setup's later transactions may be finalized before the
            // grant, and a query without the role is refused at once, so wait for the role.
            StatsService::wait_for_role(&ledger, doctor.public(), Role::Doctor, BLOCKS_MAX).await?;
            prepare(&service);
            let setup = started.elapsed();
            let start = Instant::now();
            let (id, status) = service.run_query(&doctor, &run.request, BLOCKS_MAX).await?;
            let query_time = start.elapsed();
            let query = service
                .query(&id)
                .ok_or_else(|| Error::Ledger("the query is no longer tracked".into()))?;
            let snapshot = ledger.snapshot();
            let (record, height) = (snapshot.query(&id).cloned(), snapshot.height());
            let record =
                record.ok_or_else(|| Error::Ledger("the query is not on the ledger".into()))?;
            Ok(LocalOutcome {
                id,
                query,
                status,
                doctor: doctor.public().clone(),
                record_querier: record.querier,
                record_verdicts: record.verdicts,
                record_valid_verdicts: record.valid_verdicts,
                height,
                setup,
                query_time,
            })
        }
        .await;
        cluster.shutdown();
        outcome
    })
}
