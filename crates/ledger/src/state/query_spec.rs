//! What the state machine reads of a statistics query's specification: its cohort.
//!
//! The specification is the statistics protocol's canonical `Query` encoding
//! (`vigil_privstats::query::Query`, big-endian, length-prefixed): a fixed header of
//! `nonce u64, querier point [32], key id [32], metric u8, statistic u8, quantile u32,
//! from i64, to i64`, then the cohort as a `u32` count of `u32`-length-prefixed pseudonyms,
//! then the data providers and the bin edges. The ledger knows no statistics protocol (see
//! ARCHITECTURE.md), so it reads only this prefix; `crates/stats-service/tests/ledger_spec.rs`
//! pins the layout against the real encoder.
//!
//! Why here and not only in the API: the ledger is what every validator and auditor checks, so
//! a doctor's identity cannot ask for one person's statistic through another client.

/// Fewest distinct pseudonyms in a non-empty cohort: below it, a statistic comes close to one
/// person's values. (An empty cohort means every patient of the data providers asked.)
pub const COHORT_MIN: usize = 10;
/// Most pseudonyms in a cohort (the statistics protocol's own bound).
pub const COHORT_MAX: usize = 4096;
/// Longest pseudonym, in bytes.
pub const PSEUDONYM_BYTES_MAX: usize = 64;
/// Bytes before the cohort.
const HEADER_BYTES: usize = 8 + 32 + 32 + 1 + 1 + 4 + 8 + 8;

/// Why a query's specification was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuerySpecError {
    #[error("the specification ends before its cohort does")]
    Truncated,
    #[error("a cohort of {0} pseudonyms is more than {COHORT_MAX}")]
    CohortTooLarge(usize),
    #[error(
        "cohort member {0} is not a pseudonym (1..={PSEUDONYM_BYTES_MAX} of A-Z a-z 0-9 . _ -)"
    )]
    BadPseudonym(usize),
    #[error("cohort member {0} repeats an earlier one")]
    DuplicatePseudonym(usize),
    #[error("a cohort of {size} people is fewer than {COHORT_MIN}: it would reveal individuals")]
    CohortTooSmall { size: usize },
}

/// The cohort a specification names (empty: every patient), checked: well-formed, distinct
/// pseudonyms, none or at least [`COHORT_MIN`] of them.
pub fn query_cohort(spec: &[u8]) -> Result<Vec<&str>, QuerySpecError> {
    let mut rest = spec.get(HEADER_BYTES..).ok_or(QuerySpecError::Truncated)?;
    let count = take_u32(&mut rest)? as usize;
    if count > COHORT_MAX {
        return Err(QuerySpecError::CohortTooLarge(count));
    }
    let mut cohort: Vec<&str> = Vec::with_capacity(count);
    let mut seen = std::collections::HashSet::with_capacity(count);
    for i in 0..count {
        let len = take_u32(&mut rest)? as usize;
        let bytes = rest.get(..len).ok_or(QuerySpecError::Truncated)?;
        rest = &rest[len..];
        let name = std::str::from_utf8(bytes)
            .ok()
            .filter(|n| is_pseudonym(n))
            .ok_or(QuerySpecError::BadPseudonym(i))?;
        if !seen.insert(name) {
            return Err(QuerySpecError::DuplicatePseudonym(i));
        }
        cohort.push(name);
    }
    if !cohort.is_empty() && cohort.len() < COHORT_MIN {
        return Err(QuerySpecError::CohortTooSmall { size: cohort.len() });
    }
    Ok(cohort)
}

fn is_pseudonym(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    !name.is_empty() && name.len() <= PSEUDONYM_BYTES_MAX && name.chars().all(allowed)
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, QuerySpecError> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(QuerySpecError::Truncated)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

/// A specification with this cohort and an arbitrary header, as the statistics protocol lays
/// it out (for tests).
#[cfg(test)]
pub(crate) fn spec_with_cohort(cohort: &[&str], tag: u8) -> bytes::Bytes {
    let mut spec = vec![tag; HEADER_BYTES];
    spec.extend_from_slice(&(cohort.len() as u32).to_be_bytes());
    for name in cohort {
        spec.extend_from_slice(&(name.len() as u32).to_be_bytes());
        spec.extend_from_slice(name.as_bytes());
    }
    // No data providers, no edges: the ledger does not read them.
    spec.extend_from_slice(&[0; 8]);
    bytes::Bytes::from(spec)
}
