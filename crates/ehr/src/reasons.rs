//! Why each alert fired, kept as health data: the contract's reason (which names the values
//! that crossed a band, or the silence of a device) sealed under its person's data key, one
//! row per alert, never on the ledger. A listing of many alerts is released once its access is
//! logged as one event (one ledger transaction per listing, not per row).

use std::collections::HashMap;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use vigil_core::{PersonId, TimestampMs};

use crate::{AccessLog, Ehr, EhrError, aad, seal};

const REASON_DOMAIN: &[u8] = b"vigil/ehr/alert-reason/v1";
/// Most alerts whose reasons one listing releases.
pub const REASONS_PER_LISTING_MAX: usize = 10_000;
/// Most bytes of one stored reason (the contract's reason and its text are far smaller).
pub const REASON_BYTES_MAX: usize = 16 * 1024;

/// One listing's read of alert reasons, logged before they are released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListingAccess {
    pub accessor: String,
    /// The alerts whose reasons the listing released, in the order asked.
    pub alerts: Vec<[u8; 32]>,
    pub time_ms: TimestampMs,
}

impl Ehr {
    /// Stores the reasons of finalized alerts (JSON as the node renders them), in one
    /// transaction. An alert already stored
    /// keeps its first reason (a node that saw the block twice writes nothing new); a person
    /// without a data key (unknown or erased) has nothing stored and is skipped alone.
    pub fn store_alert_reasons(
        &mut self,
        reasons: &[(PersonId, [u8; 32], serde_json::Value)],
    ) -> Result<usize, EhrError> {
        let mut sealed = Vec::with_capacity(reasons.len());
        for (person, alert, reason) in reasons {
            let Ok(key) = self.data_key(*person) else {
                continue;
            };
            let plaintext = serde_json::to_vec(reason).unwrap_or_default();
            if plaintext.len() > REASON_BYTES_MAX {
                continue;
            }
            let (nonce, ciphertext) =
                seal::seal(&key, &aad(REASON_DOMAIN, *person, alert), &plaintext);
            sealed.push((*person, *alert, nonce, ciphertext));
        }
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stored = 0;
        {
            let mut insert = tx.prepare_cached(
                "INSERT OR IGNORE INTO alert_reasons (alert, person, nonce, ciphertext)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (person, alert, nonce, ciphertext) in &sealed {
                stored += insert.execute(params![
                    alert.as_slice(),
                    person.as_bytes(),
                    nonce.as_slice(),
                    ciphertext
                ])?;
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    /// The stored reasons of `alerts` (each with the person the ledger says it concerns),
    /// released only once the listing is logged, as one access. Alerts without a stored
    /// reason, or whose person was erased, or whose row does not open under that person (a
    /// row moved to another alert or person), are left out alone.
    pub fn read_alert_reasons(
        &mut self,
        accessor: &str,
        alerts: &[([u8; 32], PersonId)],
        time_ms: TimestampMs,
        log: &mut dyn AccessLog,
    ) -> Result<HashMap<[u8; 32], serde_json::Value>, EhrError> {
        if alerts.len() > REASONS_PER_LISTING_MAX {
            return Err(EhrError::ListingTooLarge(alerts.len()));
        }
        let mut found = HashMap::new();
        let mut persons = Vec::new();
        for (alert, person) in alerts {
            let row: Option<(Vec<u8>, Vec<u8>)> = self
                .db
                .prepare_cached(
                    "SELECT nonce, ciphertext FROM alert_reasons WHERE alert = ?1 AND person = ?2",
                )?
                .query_row(params![alert.as_slice(), person.as_bytes()], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?;
            let Some((nonce, ciphertext)) = row else {
                continue;
            };
            let Ok(key) = self.data_key(*person) else {
                continue;
            };
            let opened = seal::open(
                &key,
                &nonce,
                &aad(REASON_DOMAIN, *person, alert),
                &ciphertext,
            )
            .and_then(|plaintext| serde_json::from_slice::<serde_json::Value>(&plaintext).ok());
            if let Some(reason) = opened {
                found.insert(*alert, reason);
                persons.push(*person);
            }
        }
        if found.is_empty() {
            return Ok(found);
        }
        let listing = ListingAccess {
            accessor: accessor.to_owned(),
            alerts: alerts
                .iter()
                .map(|(alert, _)| *alert)
                .filter(|alert| found.contains_key(alert))
                .collect(),
            time_ms,
        };
        log.record_listing(&listing)
            .map_err(EhrError::AccessNotLogged)?;
        // The local log keeps whose reasons were read, which the ledger's one record does not.
        persons.sort_unstable();
        persons.dedup();
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached("INSERT INTO access_log VALUES (?1, ?2, ?3, ?4)")?;
            for person in &persons {
                insert.execute(params![
                    accessor,
                    person.as_bytes(),
                    "alert-reasons",
                    time_ms
                ])?;
            }
        }
        tx.commit()?;
        Ok(found)
    }
}
