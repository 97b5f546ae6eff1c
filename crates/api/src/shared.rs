//! What every resource of the API shares: the router's state ([`Api`]), [`ApiError`], the
//! authenticated [`Caller`], the role sets each route admits, and the one way blocking work
//! (the health record's SQLite and decryption) leaves the async executor. Every route names
//! the roles it admits; staff roles are read from the ledger's finalized state on each
//! request, so a revoked role takes effect at the next block. Writes become ledger
//! transactions signed by the caller's identity, and the ledger's permission table has the
//! last word (its refusals come back as 403 / 409 with the reason).

use std::ops::Deref;
use std::sync::Arc;

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::Semaphore;
use vigil_core::PersonId;
use vigil_ehr::Ehr;
use vigil_ledger::node::SubmitError;
use vigil_ledger::read::{self, Answer, Query as LedgerQuery};
use vigil_ledger::signer::Signer;
use vigil_ledger::state::Rejection as LedgerRejection;
use vigil_ledger::tx::Role;
use vigil_node::Node;
use vigil_node::users::Principal;

/// Health-record reads running at once on blocking threads. They run on the record's read
/// handle, never on the lock ingestion takes; queueing the rest here (asynchronously, off
/// every thread) keeps a read storm to one thread.
pub const EHR_READS_MAX: usize = 1;

/// After a read, its slot stays taken for as long as the read took: reads are not urgent,
/// alerts are, and on a small machine (two cores) a storm of large reads back to back would
/// otherwise keep a core busy that consensus and ingestion need (measured: with back-to-back
/// reads the alert p99 tripled; `vigil bench alerts`).
const EHR_READ_REST_PER_READ: u32 = 1;

/// Health-record requests (readings, identities, record verification) one caller may make
/// per second on average, and [`EHR_REQUESTS_BURST`] at once; beyond them 429 with
/// `Retry-After`. The read gate already bounds what all readers together cost; this keeps one
/// caller from holding it against the others (issue 13: a patient's read storm).
pub const EHR_REQUESTS_PER_S: u32 = 5;
pub const EHR_REQUESTS_BURST: u32 = 20;

/// The router's state: the node, the gate in front of its health record, and each caller's
/// allowance of health-record requests (keyed by principal name: one per user, so the key set
/// is bounded by the users file and the demo's logins).
pub struct Api {
    node: Arc<Node>,
    /// The dashboard's Content-Security-Policy ([`dashboard_policy`]).
    dashboard_policy: String,
    ehr_reads: Arc<Semaphore>,
    ehr_requests: governor::DefaultKeyedRateLimiter<String>,
}

impl Api {
    pub fn new(node: Arc<Node>) -> Self {
        let quota = governor::Quota::per_second(
            std::num::NonZeroU32::new(EHR_REQUESTS_PER_S).expect("not zero"),
        )
        .allow_burst(std::num::NonZeroU32::new(EHR_REQUESTS_BURST).expect("not zero"));
        Self {
            dashboard_policy: dashboard_policy(node.map_tiles()),
            node,
            ehr_reads: Arc::new(Semaphore::new(EHR_READS_MAX)),
            ehr_requests: governor::RateLimiter::keyed(quota),
        }
    }

    /// Counts one health-record request of `caller` against their allowance, or refuses it
    /// (429) with how long to wait.
    pub(crate) fn charge_ehr_request(&self, caller: &Caller) -> ApiResult<()> {
        use governor::clock::Clock as _;
        self.ehr_requests
            .check_key(&caller.0.name().to_owned())
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
                ApiError::too_many_requests(wait)
            })
    }

    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// The Content-Security-Policy every dashboard file is served with.
    pub fn dashboard_policy(&self) -> &str {
        &self.dashboard_policy
    }

    /// Runs `read` on the health record's read handle on a blocking thread, never on the
    /// async executor, after waiting (asynchronously) for one of the [`EHR_READS_MAX`] slots,
    /// which then rests ([`EHR_READ_REST_PER_READ`]).
    pub(crate) async fn ehr_read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Node, &mut Ehr) -> T + Send + 'static,
    ) -> ApiResult<T> {
        let slot = self
            .ehr_reads
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| ApiError::internal("the health record is closed"))?;
        let node = self.node.clone();
        // The slot travels with the read, not with this future: a caller that disconnects
        // mid-read drops the future, and the slot must stay taken until the read and its
        // rest are over, or dropped requests would let reads run side by side.
        let reading = tokio::task::spawn_blocking(move || {
            let started = std::time::Instant::now();
            let answer = node.with_ehr_reader(|ehr| read(&node, ehr));
            let rest = started.elapsed() * EHR_READ_REST_PER_READ;
            // The caller gets its answer now; the next read waits out the rest.
            tokio::runtime::Handle::current().spawn(async move {
                tokio::time::sleep(rest).await;
                drop(slot);
            });
            answer
        });
        reading
            .await
            .map_err(|_| ApiError::internal("health record task failed"))
    }

    /// Runs `write` on the health record (under the lock ingestion takes) on a blocking thread.
    pub(crate) async fn ehr_write<T: Send + 'static>(
        &self,
        write: impl FnOnce(&mut Ehr) -> T + Send + 'static,
    ) -> ApiResult<T> {
        let node = self.node.clone();
        tokio::task::spawn_blocking(move || node.with_ehr(write))
            .await
            .map_err(|_| ApiError::internal("health record task failed"))
    }
}

/// The dashboard's Content-Security-Policy: everything from the node itself, and images also
/// from the configured tile server's origin, nothing else (no inline script, no other host).
/// The origin was checked when the configuration was read ([`vigil_node::MapTiles`]): a host,
/// a port, no separator.
pub fn dashboard_policy(tiles: Option<&vigil_node::MapTiles>) -> String {
    let tile_source = tiles
        .map(|t| format!(" {}", t.origin()))
        .unwrap_or_default();
    format!("default-src 'self'; img-src 'self' data:{tile_source}; frame-ancestors 'none'")
}

impl Deref for Api {
    type Target = Node;
    fn deref(&self) -> &Node {
        &self.node
    }
}

pub type Shared = Arc<Api>;

/// An API error: a status and a JSON body `{"error": code, "message": ...}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// Whole seconds for `Retry-After` (429).
    retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }
    pub(crate) fn too_many_requests(wait: std::time::Duration) -> Self {
        // Rounded up: a client that waits what it is told is let through.
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Self {
            retry_after_s: Some(seconds.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "over {EHR_REQUESTS_PER_S} health-record requests a second \
                     ({EHR_REQUESTS_BURST} at once); wait {} ms",
                    wait.as_millis()
                ),
            )
        }
    }
    pub(crate) fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "a valid bearer token is required",
        )
    }
    pub fn forbidden(needed: &[Role]) -> Self {
        let names: Vec<_> = needed.iter().map(|r| r.name()).collect();
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this needs one of the roles: {}", names.join(", ")),
        )
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }
}

impl ApiError {
    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response();
        // RFC 7235 §3.1: a 401 names the scheme that would authenticate.
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"vigil\""),
            );
        }
        if let Some(seconds) = self.retry_after_s {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<SubmitError> for ApiError {
    fn from(error: SubmitError) -> Self {
        match &error {
            SubmitError::Rejected(LedgerRejection::Unauthorized { .. }) => {
                Self::new(StatusCode::FORBIDDEN, "forbidden", error.to_string())
            }
            SubmitError::Rejected(_) => {
                Self::new(StatusCode::CONFLICT, "rejected", error.to_string())
            }
            _ => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_submitted",
                error.to_string(),
            ),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The one route that also reads `?token=`: browsers' EventSource cannot set headers. On
/// every other route a token in the URL is ignored (URLs end up in proxies' logs and browser
/// history), so a caller with only that gets 401.
pub const QUERY_TOKEN_ROUTE: &str = "/api/alerts/stream";

/// The authenticated caller: `Authorization: Bearer <token>` (the scheme in any case, as
/// RFC 7235 has it), or `?token=` on [`QUERY_TOKEN_ROUTE`] only.
pub struct Caller(pub Principal);

impl FromRequestParts<Shared> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, node: &Shared) -> Result<Self, ApiError> {
        let header_token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .map(str::to_owned);
        let query_token = (parts.uri.path() == QUERY_TOKEN_ROUTE)
            .then(|| parts.uri.query())
            .flatten()
            .and_then(|q| {
                q.split('&')
                    .find_map(|pair| pair.strip_prefix("token=").map(str::to_owned))
            });
        let token = header_token
            .or(query_token)
            .ok_or_else(ApiError::unauthorized)?;
        node.authenticate(&token)
            .map(Caller)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The token of an `Authorization` value of scheme `Bearer`, in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl Caller {
    pub(crate) fn has_role(&self, node: &Node, role: Role) -> bool {
        match &self.0 {
            Principal::Staff { signer, .. } => node
                .ledger()
                .snapshot()
                .view()
                .has_role(signer.public(), role),
            Principal::Patient { .. } => false,
        }
    }

    /// Staff holding one of `roles`.
    pub(crate) fn require(&self, node: &Node, roles: &'static [Role]) -> ApiResult<()> {
        if roles.iter().any(|r| self.has_role(node, *r)) {
            Ok(())
        } else {
            Err(ApiError::forbidden(roles))
        }
    }

    /// Staff holding one of `roles`, or the patient `person` themself.
    pub(crate) fn require_or_self(
        &self,
        node: &Node,
        roles: &'static [Role],
        person: PersonId,
    ) -> ApiResult<()> {
        match &self.0 {
            Principal::Patient { person: own, .. } if *own == person => Ok(()),
            _ => self.require(node, roles),
        }
    }

    pub(crate) fn signer(&self) -> ApiResult<&Arc<Signer>> {
        match &self.0 {
            Principal::Staff { signer, .. } => Ok(signer),
            Principal::Patient { .. } => Err(ApiError::forbidden(&[])),
        }
    }

    pub(crate) fn reader_key(&self, node: &Node) -> commonware_cryptography::ed25519::PublicKey {
        match &self.0 {
            Principal::Staff { signer, .. } => signer.public().clone(),
            Principal::Patient { .. } => node.gateway_identity().public().clone(),
        }
    }
}

/// Who registers people: the ledger's permission table for the transaction, so that the
/// route never admits a caller the ledger would refuse after the identity is written.
pub const OPERATORS: &[Role] = vigil_ledger::tx::TxKind::RegisterPerson.allowed_roles();
/// Who reads alerts and their stream.
pub const ALERT_READERS: &[Role] = &[Role::CdcpOperator, Role::Auditor, Role::Admin];
/// Who lists people.
pub const PEOPLE_READERS: &[Role] = &[Role::CdcpOperator, Role::Doctor, Role::Auditor, Role::Admin];
/// Who reads a person's identity and readings (besides the person).
pub const RECORD_READERS: &[Role] = &[Role::CdcpOperator, Role::Doctor];
/// Who reads, and re-checks, blocks and records (the block explorer).
pub const LEDGER_READERS: &[Role] = &[Role::CdcpOperator, Role::Auditor, Role::Admin, Role::Doctor];
/// Who sees positions and zones: those who act on geofence alerts.
pub const MAP_READERS: &[Role] = &[Role::CdcpOperator, Role::Admin];
/// Who reads the notification channels and their delivery log.
pub const NOTIFICATION_READERS: &[Role] = &[Role::Admin];
/// Who asks private-statistics queries.
pub const QUERIERS: &[Role] = &[Role::Doctor];

pub fn ehr_error(error: vigil_ehr::EhrError) -> ApiError {
    use vigil_ehr::EhrError::*;
    match error {
        UnknownPerson(_) => ApiError::not_found(error.to_string()),
        Erased(_) => ApiError::new(StatusCode::GONE, "erased", error.to_string()),
        LimitTooLarge(_) => ApiError::bad_request(error.to_string()),
        AccessNotLogged(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_logged",
            error.to_string(),
        ),
        _ => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "ehr", error.to_string()),
    }
}

/// A role-checked read of the ledger's finalized state, as `caller`.
pub(crate) fn ledger_read(node: &Node, caller: &Caller, query: LedgerQuery) -> ApiResult<Answer> {
    let reader = caller.reader_key(node);
    read::read(&node.ledger().snapshot(), &reader, &query).map_err(|error| match error {
        read::ReadError::Forbidden(roles) => ApiError::forbidden(roles),
        other => ApiError::new(StatusCode::BAD_REQUEST, "read", other.to_string()),
    })
}
