//! Re-check a validator's whole stored chain from genesis (`vigil ledger verify DIR`):
//! every block present from height 1 to the last, hash links and heights, transaction roots,
//! every transaction signature, state replay with the state root of every header, and every
//! stored finalization certificate against the genesis validator set; the chain must be covered
//! by certificates (a certified block vouches for its ancestors through the hash links) up to
//! its tail. A crash between storing a finalized block and its certificate leaves the last
//! blocks uncovered: they are replayed and checked like the others and reported as the
//! uncertified tail (the next certified block the validator stores covers them), never as
//! verified by a certificate.
//!
//! The store is copied to a scratch directory first and the copy is opened, so verification
//! never modifies the validator's files (opening a store may repair a torn tail).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use commonware_consensus::simplex::{scheme::ed25519::Scheme, types::Finalization};
use commonware_cryptography::{certificate::Verifier as _, sha256::Digest};
use commonware_parallel::Sequential;
use commonware_runtime::{Clock, Metrics, Runner as _, Spawner, Storage, Supervisor as _, tokio};
use commonware_storage::archive::{Archive as _, Identifier as ArchiveId, immutable};
use rand_core::CryptoRng;

use crate::block::Block;
use crate::node::{BLOCKS_ARCHIVE, CERTIFICATES_ARCHIVE, Genesis, archive_config};
use crate::state::{Rejection, execute_block};
use crate::tx::{Hash, verify_batch};

/// What a successful verification saw.
#[derive(Clone, Debug)]
pub struct VerifyReport {
    pub chain_id: Hash,
    pub validators: usize,
    pub blocks: u64,
    pub transactions: u64,
    pub certificates: u64,
    pub tip_digest: Option<Digest>,
    pub state_root: Hash,
    /// The highest block a stored certificate vouches for (itself and its ancestors).
    pub certified_height: u64,
    /// Blocks above [`VerifyReport::certified_height`], stored without a certificate yet:
    /// `(first, last)`.
    pub uncertified_tail: Option<(u64, u64)>,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    #[error("storage: {0}")]
    Storage(String),
    #[error("the stored genesis block differs from the genesis")]
    Genesis,
    #[error("block {height} is missing (blocks stored up to {last})")]
    Missing { height: u64, last: u64 },
    #[error("block {height} cannot be read: {reason}")]
    Unreadable { height: u64, reason: String },
    #[error("block stored at {height} claims height {claimed}")]
    Height { height: u64, claimed: u64 },
    #[error("block {height} does not link to block {}", height - 1)]
    Link { height: u64 },
    #[error("block {height}: timestamp before its parent's")]
    Timestamp { height: u64 },
    #[error("block {height}: transactions do not match the header's root")]
    Body { height: u64 },
    #[error("block {height}: transaction {index} has an invalid signature")]
    Signature { height: u64, index: usize },
    #[error("block {height}: transaction {index} rejected on replay: {rejection}")]
    Rejected {
        height: u64,
        index: usize,
        rejection: Rejection,
    },
    #[error("block {height}: state root differs from the replayed state")]
    StateRoot { height: u64 },
    #[error("certificate at {height} cannot be read: {reason}")]
    CertificateUnreadable { height: u64, reason: String },
    #[error("certificate at {height} is for another block")]
    CertificateBlock { height: u64 },
    #[error("certificate at {height} does not verify against the genesis validator set")]
    Certificate { height: u64 },
    #[error("certificate at {height} has no block")]
    CertificateWithoutBlock { height: u64 },
    #[error("blocks {from}..={to} are not covered by any finalization certificate")]
    Uncertified { from: u64, to: u64 },
}

/// Verify the chain stored in `store` (a tokio storage directory) under partition `prefix`.
pub fn verify_dir(
    store: &Path,
    genesis: &Genesis,
    prefix: &str,
) -> Result<VerifyReport, VerifyError> {
    if !store.is_dir() {
        return Err(VerifyError::Storage(format!(
            "{} is not a directory",
            store.display()
        )));
    }
    let scratch = std::env::temp_dir().join(format!(
        "vigil-ledger-verify-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    copy_dir(store, &scratch)
        .map_err(|e| VerifyError::Storage(format!("copying the store: {e}")))?;
    let genesis = genesis.clone();
    let prefix = prefix.to_owned();
    let runtime = tokio::Config::new()
        .with_worker_threads(1)
        .with_storage_directory(&scratch);
    let result = tokio::Runner::new(runtime).start(|context| async move {
        verify_store(context.child("verify"), &genesis, &prefix).await
    });
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn copy_dir(from: &Path, to: &PathBuf) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Verify the chain stored under `prefix` in `context`'s storage.
pub async fn verify_store<E>(
    context: E,
    genesis: &Genesis,
    prefix: &str,
) -> Result<VerifyReport, VerifyError>
where
    E: Clock + CryptoRng + Spawner + Storage + Metrics,
{
    let mut rng = context.child("rng");
    let storage = |e: commonware_storage::archive::Error| VerifyError::Storage(e.to_string());
    let finalizations: immutable::Archive<E, Digest, Finalization<Scheme, Digest>> =
        immutable::Archive::init(
            context.child("finalizations"),
            archive_config(
                prefix,
                CERTIFICATES_ARCHIVE,
                Scheme::certificate_codec_config_unbounded(),
            ),
        )
        .await
        .map_err(storage)?;
    let blocks: immutable::Archive<E, Digest, Arc<Block>> = immutable::Archive::init(
        context.child("blocks"),
        archive_config(prefix, BLOCKS_ARCHIVE, ()),
    )
    .await
    .map_err(storage)?;
    let verifier = genesis.certificate_verifier();
    let last = blocks.last_index().unwrap_or(0);
    if let Some(last_certificate) = finalizations.last_index()
        && last_certificate > last
    {
        return Err(VerifyError::CertificateWithoutBlock {
            height: last_certificate,
        });
    }
    // The store keeps its own copy of the genesis block (height 0), which it may serve to
    // peers: it must be the genesis this chain is verified against.
    match blocks.get(ArchiveId::Index(0)).await {
        Ok(None) => {}
        Ok(Some(stored)) if stored.digest() == genesis.block.digest() => {}
        Ok(Some(_)) => return Err(VerifyError::Genesis),
        Err(e) => {
            return Err(VerifyError::Unreadable {
                height: 0,
                reason: e.to_string(),
            });
        }
    }
    let mut state = genesis.state.clone();
    let mut parent = Arc::new(genesis.block.clone());
    let mut transactions = 0u64;
    let mut certificates = 0u64;
    let mut covered = 0u64;
    for height in 1..=last {
        let block = match blocks.get(ArchiveId::Index(height)).await {
            Ok(Some(block)) => block,
            Ok(None) => return Err(VerifyError::Missing { height, last }),
            Err(e) => {
                return Err(VerifyError::Unreadable {
                    height,
                    reason: e.to_string(),
                });
            }
        };
        let header = block.header();
        if header.height != height {
            return Err(VerifyError::Height {
                height,
                claimed: header.height,
            });
        }
        if header.parent != parent.digest() {
            return Err(VerifyError::Link { height });
        }
        if header.timestamp_ms < parent.header().timestamp_ms {
            return Err(VerifyError::Timestamp { height });
        }
        if !block.body_matches() {
            return Err(VerifyError::Body { height });
        }
        let refs: Vec<_> = block.txs().iter().collect();
        if let Some(index) = verify_batch(&mut rng, &genesis.chain_id, &refs).first() {
            return Err(VerifyError::Signature {
                height,
                index: *index,
            });
        }
        let layer = execute_block(&state, &[], height, block.time_ms(), block.txs()).map_err(
            |(index, rejection)| VerifyError::Rejected {
                height,
                index,
                rejection,
            },
        )?;
        if layer.root != header.state_root {
            return Err(VerifyError::StateRoot { height });
        }
        state.merge(&layer);
        transactions += block.txs().len() as u64;
        match finalizations.get(ArchiveId::Index(height)).await {
            Ok(None) => {}
            Ok(Some(finalization)) => {
                if finalization.proposal.payload != block.digest() {
                    return Err(VerifyError::CertificateBlock { height });
                }
                if !finalization.verify(&mut rng, &verifier, &Sequential) {
                    return Err(VerifyError::Certificate { height });
                }
                certificates += 1;
                covered = height;
            }
            Err(e) => {
                return Err(VerifyError::CertificateUnreadable {
                    height,
                    reason: e.to_string(),
                });
            }
        }
        parent = block;
    }
    if covered == 0 && last > 0 {
        return Err(VerifyError::Uncertified { from: 1, to: last });
    }
    Ok(VerifyReport {
        chain_id: genesis.chain_id,
        validators: genesis.validators.len(),
        blocks: last,
        transactions,
        certificates,
        tip_digest: (last > 0).then(|| parent.digest()),
        state_root: state.root(),
        certified_height: covered,
        uncertified_tail: (covered < last).then_some((covered + 1, last)),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use commonware_cryptography::Signer as _;
    use commonware_runtime::Clock as _;
    use vigil_core::PersonId;

    use super::*;
    use crate::local::{LocalConfig, start_local};
    use crate::sim::Keys;
    use crate::tx::{Tx, TxBody};

    /// Blocks to finalize before stopping.
    const HEIGHT_MIN: u64 = 8;
    /// Wall-clock bound on reaching [`HEIGHT_MIN`].
    const RUN_TIMEOUT: Duration = Duration::from_secs(30);

    /// A chain written by a running cluster (4 validators on tokio), stopped abruptly.
    fn written_chain(dir: &Path) -> Genesis {
        let _ = std::fs::remove_dir_all(dir);
        let runtime = tokio::Config::new()
            .with_worker_threads(2)
            .with_storage_directory(dir);
        tokio::Runner::new(runtime).start(|mut context| async move {
            let cluster =
                start_local(context.child("cluster"), LocalConfig::new(Keys::new(4, 1))).await;
            let ledger = &cluster.ledgers[0];
            let operator = &cluster.keys.operator;
            for i in 0..5u8 {
                let tx = Tx::sign(
                    operator,
                    &ledger.chain_id(),
                    u64::from(i),
                    TxBody::RegisterPerson {
                        person: PersonId::from_bytes([i; 16]),
                    },
                );
                ledger.submit(&mut context, tx).expect("admitted");
            }
            let start = context.current();
            while ledger.next_nonce(&operator.public_key()) < 5 || ledger.finalized().0 < HEIGHT_MIN
            {
                assert!(
                    context.current().duration_since(start).unwrap_or_default() < RUN_TIMEOUT,
                    "cluster made no progress"
                );
                context.sleep(Duration::from_millis(50)).await;
            }
            cluster.genesis.clone()
        })
    }

    /// The encoded records the verifier reads: blocks and certificates at heights `1..=last`, by
    /// archive, read through the archives themselves from a copy of `dir` (opening may repair).
    fn committed_records(dir: &Path, last: u64) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        use commonware_codec::Encode as _;

        let copy = dir.with_extension("records");
        let _ = std::fs::remove_dir_all(&copy);
        copy_dir(dir, &copy).expect("copy the store");
        let runtime = tokio::Config::new()
            .with_worker_threads(1)
            .with_storage_directory(&copy);
        let records = tokio::Runner::new(runtime).start(|context| async move {
            let finalizations: immutable::Archive<_, Digest, Finalization<Scheme, Digest>> =
                immutable::Archive::init(
                    context.child("finalizations"),
                    archive_config(
                        "ledger-0",
                        CERTIFICATES_ARCHIVE,
                        Scheme::certificate_codec_config_unbounded(),
                    ),
                )
                .await
                .expect("open the certificates");
            let blocks: immutable::Archive<_, Digest, Arc<Block>> = immutable::Archive::init(
                context.child("blocks"),
                archive_config("ledger-0", BLOCKS_ARCHIVE, ()),
            )
            .await
            .expect("open the blocks");
            let (mut block_records, mut certificate_records) = (Vec::new(), Vec::new());
            for height in 1..=last {
                let block = blocks
                    .get(ArchiveId::Index(height))
                    .await
                    .expect("read a block");
                block_records.push(
                    block
                        .expect("a verified height has its block")
                        .encode()
                        .to_vec(),
                );
                if let Some(f) = finalizations
                    .get(ArchiveId::Index(height))
                    .await
                    .expect("read a certificate")
                {
                    certificate_records.push(f.encode().to_vec());
                }
            }
            (block_records, certificate_records)
        });
        let _ = std::fs::remove_dir_all(&copy);
        records
    }

    /// Where each record lies in a value file: its encoding followed by its CRC32 (values are
    /// stored uncompressed, see `archive_config`).
    fn record_spans(file: &[u8], records: &[Vec<u8>]) -> Vec<std::ops::Range<usize>> {
        const CRC_BYTES: usize = 4;
        records
            .iter()
            .map(|record| {
                let start = file
                    .windows(record.len())
                    .position(|w| w == record.as_slice())
                    .expect("a record the verifier reads is stored in its value file");
                start..start + record.len() + CRC_BYTES
            })
            .collect()
    }

    /// The value file of `archive` (one section: the section target size is far above a test
    /// chain's size).
    fn value_file(dir: &Path, archive: &str) -> PathBuf {
        dir.join(format!("ledger-0-{archive}-freezer-value"))
            .join("0000000000000000")
    }

    /// The bytes to flip in an archive's value file: its header, the first byte of the first
    /// record the verifier reads, the middle of the middle one, and the last byte of the last
    /// one (its CRC); each flip costs a whole verification. Bytes past the last read record are
    /// not targeted: a crash between the value journal's sync and the archive's commit leaves
    /// values there (certificates for heights past the tip) that reopening discards, and how
    /// many depends on the timing.
    fn value_offsets(file: &[u8], records: &[Vec<u8>]) -> Vec<usize> {
        let spans = record_spans(file, records);
        let mut offsets = vec![0];
        offsets.extend(spans.first().map(|s| s.start));
        offsets.extend(spans.get(spans.len() / 2).map(|s| s.start + s.len() / 2));
        offsets.extend(spans.last().map(|s| s.end - 1));
        offsets
    }

    /// A flipped byte in any stored block or certificate the verifier reads (start, middle, end
    /// of the values, the stored genesis copy), in the value files' headers, or in the height
    /// index's header is reported.
    #[test]
    fn verify_accepts_a_written_chain_and_reports_a_flipped_byte() {
        use commonware_codec::Encode as _;

        let dir =
            std::env::temp_dir().join(format!("vigil-ledger-verify-test-{}", std::process::id()));
        let genesis = written_chain(&dir);
        let report = verify_dir(&dir, &genesis, "ledger-0").expect("an untouched chain verifies");
        assert!(report.blocks >= HEIGHT_MIN, "{report:?}");
        assert_eq!(report.transactions, 5);
        assert!(report.certificates >= 1);

        let (block_records, certificate_records) = committed_records(&dir, report.blocks);
        assert_eq!(block_records.len() as u64, report.blocks);
        assert_eq!(certificate_records.len() as u64, report.certificates);
        let mut targets: Vec<(PathBuf, Vec<usize>)> = Vec::new();
        for (archive, records) in [
            (BLOCKS_ARCHIVE, &block_records),
            (CERTIFICATES_ARCHIVE, &certificate_records),
        ] {
            let path = value_file(&dir, archive);
            let file = std::fs::read(&path).expect("read a value file");
            let mut offsets = value_offsets(&file, records);
            if archive == BLOCKS_ARCHIVE {
                let stored_genesis = Arc::new(genesis.block.clone()).encode().to_vec();
                let span = &record_spans(&file, &[stored_genesis])[0];
                offsets.push(span.start + span.len() / 2);
            }
            targets.push((path, offsets));
            // The height index: its header only. It keeps a slot per height, and whether a flip
            // in an empty slot, or in the slot of a block stored past the last certificate the
            // check follows, is noticed depends on the chain's length at the crash.
            targets.push((
                dir.join(format!("ledger-0-{archive}-ordinal"))
                    .join("0000000000000000"),
                vec![0],
            ));
        }
        for (target, offsets) in &targets {
            let original = std::fs::read(target).expect("read");
            for &offset in offsets {
                let mut tampered = original.clone();
                tampered[offset] ^= 0x01;
                std::fs::write(target, &tampered).expect("write");
                let result = verify_dir(&dir, &genesis, "ledger-0");
                assert!(
                    result.is_err(),
                    "flipping byte {offset} of {} went unnoticed: {result:?}",
                    target.display()
                );
                std::fs::write(target, &original).expect("restore");
            }
        }
        verify_dir(&dir, &genesis, "ledger-0").expect("restored chain verifies");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
