//! What one attempt of any channel comes to, as the retry loop needs it.

use std::time::Duration;

/// An attempt's result: what the receiver answered when it took the message, or why not.
pub type Sent = Result<String, Failure>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// A status line or an error, never a message body.
    pub detail: String,
    /// Retrying cannot help (a 4xx refusal, a mailbox that does not exist).
    pub permanent: bool,
    /// What the receiver asked us to wait (`Retry-After`).
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub fn transient(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: false,
            retry_after: None,
        }
    }

    pub fn permanent(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: true,
            retry_after: None,
        }
    }
}
