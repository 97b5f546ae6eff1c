//! Cheating parties, for the tests of the acceptance rule only (feature `fault-injection`, which
//! only this crate's tests enable): each [`Fault`] tampers with the honest computation of a
//! query at the point where that party would cheat, so the tests can check that the verifying
//! nodes name it and the querier rejects the result.

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore};
use vigil_privstats::dp::{DpResponse, PlainAnswer};
use vigil_privstats::elgamal::Ciphertext;
use vigil_privstats::network::Network;
use vigil_privstats::query::{DpId, Query};
use vigil_privstats::server::{KeySwitchShare, ServerAggregate};
use vigil_privstats::{Result, ServerId};

/// Faults a test injects into the next query's computation.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The DP encrypts a first digit of 2^16 + 5 (outside the proven range).
    DpOutOfRange(DpId),
    /// The DP sends a ciphertext whose K does not carry its C's randomness.
    MalformedCiphertext(DpId),
    /// The server leaves the DP's response out of its sum.
    ServerDropsDp(DpId),
    /// The server adds an encryption of 1,000 to the DP's contribution in its sum.
    ServerAltersDp(DpId),
    /// The server's key-switch share is off by G in its first digit.
    WrongKeySwitch(ServerId),
}

/// The DPs' cheating: `responses` are the honest responses to `answers`, in the same order.
pub(crate) fn tamper_responses(
    fault: Option<&Fault>,
    query: &Query,
    net: &Network,
    threads: usize,
    answers: &[(DpId, PlainAnswer)],
    responses: &mut [DpResponse],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<()> {
    match fault {
        Some(Fault::DpOutOfRange(d)) => {
            let answer = answers.iter().find(|(dp, _)| dp == d).map(|(_, a)| a);
            let response = responses.iter_mut().find(|r| r.dp == *d);
            if let (Some(answer), Some(response)) = (answer, response) {
                out_of_range(query, net, threads, answer, response, rng)?;
            }
        }
        Some(Fault::MalformedCiphertext(d)) => {
            if let Some(ct) = responses
                .iter_mut()
                .find(|r| r.dp == *d)
                .and_then(|r| r.ciphertexts.get_mut(0))
            {
                ct.k += G;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces `response` with one whose first digit is 2^16 + 5.
fn out_of_range(
    query: &Query,
    net: &Network,
    threads: usize,
    answer: &PlainAnswer,
    response: &mut DpResponse,
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<()> {
    let mut digits = answer.digits(query)?;
    if let Some(first) = digits.first_mut() {
        *first = (1 << 16) + 5;
    }
    let (dp, server) = (response.dp, response.server);
    match DpResponse::encrypt_digits(query, &net.key, dp, server, &digits, threads, rng) {
        Ok(cheat) => *response = cheat,
        // Bulletproofs may refuse to prove it; then the DP sends the honest proofs of another
        // value, which fail just the same.
        Err(_) => {
            if let Some(ct) = response.ciphertexts.first_mut() {
                *ct += Ciphertext::encrypt_with(&net.key.key, 1 << 16, &Scalar::ZERO);
            }
        }
    }
    Ok(())
}

/// The servers' cheating: `aggregates` are the online servers' honest sums of `responses`.
pub(crate) fn tamper_aggregates(
    fault: Option<&Fault>,
    query: &Query,
    net: &Network,
    responses: &[DpResponse],
    aggregates: &mut [ServerAggregate],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<()> {
    let (drops, d) = match fault {
        Some(Fault::ServerDropsDp(d)) => (true, *d),
        Some(Fault::ServerAltersDp(d)) => (false, *d),
        _ => return Ok(()),
    };
    let Some(victim) = responses.iter().find(|r| r.dp == d) else {
        return Ok(());
    };
    let Some(agg) = aggregates.iter_mut().find(|a| a.server == victim.server) else {
        return Ok(());
    };
    if drops {
        let Some(server) = net.servers.iter().find(|s| s.id() == agg.server) else {
            return Ok(());
        };
        let kept: Vec<&DpResponse> = responses
            .iter()
            .filter(|r| r.server == agg.server && r.dp != d)
            .collect();
        // The server claims the full list of DPs but left one out of the sum.
        let claimed = std::mem::take(&mut agg.dps);
        *agg = server.aggregate(query, &kept)?;
        agg.dps = claimed;
    } else if let Some(ct) = agg.sum.last_mut() {
        *ct += Ciphertext::encrypt(&net.key.key, 1000, rng).0;
    }
    Ok(())
}

/// A server's cheating in the key switch.
pub(crate) fn tamper_shares(fault: Option<&Fault>, shares: &mut [KeySwitchShare]) {
    if let Some(Fault::WrongKeySwitch(bad)) = fault
        && let Some(ct) = shares
            .iter_mut()
            .find(|s| s.server == *bad)
            .and_then(|s| s.share.get_mut(0))
    {
        ct.c += G;
    }
}
