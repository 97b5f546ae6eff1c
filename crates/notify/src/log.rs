//! The delivery log: one SQLite row per attempt (channel, event, attempt, status, detail,
//! time), for operators to see what reached whom, and what did not and why.
//!
//! It never holds a message: no body, no subject, no health value; a detail is a status
//! line (`HTTP 503`, the SMTP reply code and text) or an error, cut to
//! [`DETAIL_BYTES_MAX`]. The file is created readable by its owner only (0600), as the health
//! record is: who was alerted when is still about people. It keeps the last
//! [`ROWS_MAX`] attempts.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;

use crate::event::EventKind;

/// Attempts kept; older ones are deleted as new ones are written.
pub const ROWS_MAX: u64 = 100_000;
/// Longest detail stored.
pub const DETAIL_BYTES_MAX: usize = 300;
/// Rows one read returns at most.
pub const PAGE_MAX: u32 = 500;
/// Deletions run once every this many inserts, not on each.
const PRUNE_EVERY: u64 = 512;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    #[error("delivery log {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("delivery log: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// What became of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// The receiver took it (HTTP 2xx, SMTP 250).
    Delivered,
    /// It failed and will be tried again.
    Retrying,
    /// It failed for good: a permanent refusal, or the last attempt.
    Failed,
    /// Never attempted: the channel's queue was full (a receiver slower than the alerts).
    Dropped,
}

impl Status {
    pub const ALL: [Status; 4] = [
        Status::Delivered,
        Status::Retrying,
        Status::Failed,
        Status::Dropped,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Status::Delivered => "delivered",
            Status::Retrying => "retrying",
            Status::Failed => "failed",
            Status::Dropped => "dropped",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One attempt, to be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt<'a> {
    pub time_ms: i64,
    pub channel: &'a str,
    pub event: EventKind,
    pub event_id: &'a str,
    /// 1 for the first; 0 for an event dropped before any attempt.
    pub attempt: u32,
    pub status: Status,
    pub detail: &'a str,
}

/// One attempt, as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Rising with every attempt written: `before` in a read pages back from here.
    pub seq: u64,
    pub time_ms: i64,
    pub channel: String,
    pub event: String,
    pub event_id: String,
    pub attempt: u32,
    pub status: Status,
    pub detail: String,
}

/// Which attempts a read returns, newest first.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub channel: Option<String>,
    pub event_id: Option<String>,
    pub status: Option<Status>,
    /// Only attempts with a `seq` below this one (the previous page's last).
    pub before: Option<u64>,
    /// At most this many (capped at [`PAGE_MAX`]).
    pub limit: u32,
}

pub struct DeliveryLog {
    db: Mutex<Connection>,
    inserts: std::sync::atomic::AtomicU64,
}

impl DeliveryLog {
    /// Opens (or creates, mode 0600) the log at `path`. Blocking: SQLite.
    pub fn open(path: &Path) -> Result<Self, LogError> {
        create_private(path).map_err(|source| LogError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Self::init(Connection::open(path)?)
    }

    /// A log in memory, for tests and tools.
    pub fn in_memory() -> Result<Self, LogError> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(db: Connection) -> Result<Self, LogError> {
        // WAL: the API's reads never wait for a delivery being written.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS deliveries (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                time_ms INTEGER NOT NULL,
                channel TEXT NOT NULL,
                event TEXT NOT NULL,
                event_id TEXT NOT NULL,
                attempt INTEGER NOT NULL,
                status TEXT NOT NULL,
                detail TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS deliveries_by_channel ON deliveries (channel, seq);
            CREATE INDEX IF NOT EXISTS deliveries_by_event ON deliveries (event_id, seq);",
        )?;
        Ok(Self {
            db: Mutex::new(db),
            inserts: Default::default(),
        })
    }

    /// Writes one attempt. Blocking: call it off the async workers.
    pub fn record(&self, attempt: &Attempt<'_>) -> Result<(), LogError> {
        let detail = truncate(attempt.detail, DETAIL_BYTES_MAX);
        let db = self.db.lock();
        db.prepare_cached(
            "INSERT INTO deliveries (time_ms, channel, event, event_id, attempt, status, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            attempt.time_ms,
            attempt.channel,
            attempt.event.name(),
            attempt.event_id,
            attempt.attempt,
            attempt.status.name(),
            detail,
        ])?;
        let inserts = self
            .inserts
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if inserts.is_multiple_of(PRUNE_EVERY) {
            prune(&db, ROWS_MAX)?;
        }
        Ok(())
    }

    /// Attempts matching `filter`, newest first. Blocking.
    pub fn read(&self, filter: &Filter) -> Result<Vec<Delivery>, LogError> {
        let limit = filter.limit.min(PAGE_MAX);
        let db = self.db.lock();
        let mut statement = db.prepare_cached(
            "SELECT seq, time_ms, channel, event, event_id, attempt, status, detail
             FROM deliveries
             WHERE (?1 IS NULL OR channel = ?1) AND (?2 IS NULL OR event_id = ?2)
               AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR seq < ?4)
             ORDER BY seq DESC LIMIT ?5",
        )?;
        // A `before` beyond SQLite's integers pages from the newest.
        let before = filter.before.and_then(|b| i64::try_from(b).ok());
        let rows = statement.query_map(
            params![
                filter.channel,
                filter.event_id,
                filter.status.map(Status::name),
                before,
                limit
            ],
            |row| {
                let status: String = row.get(6)?;
                Ok(Delivery {
                    seq: row.get(0)?,
                    time_ms: row.get(1)?,
                    channel: row.get(2)?,
                    event: row.get(3)?,
                    event_id: row.get(4)?,
                    attempt: row.get(5)?,
                    // Written from `Status::name` only; anything else reads as failed.
                    status: Status::from_name(&status).unwrap_or(Status::Failed),
                    detail: row.get(7)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Attempts held.
    pub fn len(&self) -> Result<u64, LogError> {
        Ok(self
            .db
            .lock()
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))?)
    }

    pub fn is_empty(&self) -> Result<bool, LogError> {
        Ok(self.len()? == 0)
    }
}

/// Deletes all but the newest `keep` attempts.
fn prune(db: &Connection, keep: u64) -> Result<(), LogError> {
    let newest: Option<i64> = db
        .query_row("SELECT MAX(seq) FROM deliveries", [], |r| r.get(0))
        .optional()?
        .flatten();
    if let Some(newest) = newest {
        let floor = newest.saturating_sub(i64::try_from(keep).unwrap_or(i64::MAX));
        db.execute("DELETE FROM deliveries WHERE seq <= ?1", [floor])?;
    }
    Ok(())
}

/// `text` cut to at most `max` bytes on a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Creates an empty file at `path` with mode 0600 unless one exists (an empty file is an empty
/// SQLite database), as the health record does. An existing file keeps its permissions.
fn create_private(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(channel: &'a str, id: &'a str, n: u32, status: Status) -> Attempt<'a> {
        Attempt {
            time_ms: 1_000 + i64::from(n),
            channel,
            event: EventKind::Alert,
            event_id: id,
            attempt: n,
            status,
            detail: "HTTP 503",
        }
    }

    #[test]
    fn attempts_read_back_newest_first_and_filtered() {
        let log = DeliveryLog::in_memory().expect("log");
        log.record(&attempt("hook", "a1", 1, Status::Retrying))
            .expect("written");
        log.record(&attempt("hook", "a1", 2, Status::Delivered))
            .expect("written");
        log.record(&attempt("mail", "a1", 1, Status::Delivered))
            .expect("written");
        let all = log.read(&Filter {
            limit: 10,
            ..Filter::default()
        });
        let all = all.expect("read");
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].channel, "mail");
        assert!(all[0].seq > all[1].seq);
        let hook = log
            .read(&Filter {
                channel: Some("hook".into()),
                limit: 10,
                ..Filter::default()
            })
            .expect("read");
        assert_eq!(
            hook.iter()
                .map(|d| (d.attempt, d.status))
                .collect::<Vec<_>>(),
            [(2, Status::Delivered), (1, Status::Retrying)]
        );
        let retrying = log
            .read(&Filter {
                status: Some(Status::Retrying),
                limit: 10,
                ..Filter::default()
            })
            .expect("read");
        assert_eq!(retrying.len(), 1);
        let page = log
            .read(&Filter {
                before: Some(all[0].seq),
                limit: 1,
                ..Filter::default()
            })
            .expect("read");
        assert_eq!(page, [all[1].clone()]);
        let beyond = log
            .read(&Filter {
                before: Some(u64::MAX),
                limit: 0,
                ..Filter::default()
            })
            .expect("read");
        assert!(beyond.is_empty());
    }

    #[test]
    fn details_are_cut_and_old_attempts_pruned() {
        let log = DeliveryLog::in_memory().expect("log");
        let long = "é".repeat(DETAIL_BYTES_MAX);
        log.record(&Attempt {
            detail: &long,
            ..attempt("hook", "a", 1, Status::Failed)
        })
        .expect("written");
        for n in 0..9 {
            log.record(&attempt("hook", "b", n, Status::Failed))
                .expect("written");
        }
        let first = log
            .read(&Filter {
                event_id: Some("a".into()),
                limit: 1,
                ..Filter::default()
            })
            .expect("read");
        assert!(first[0].detail.len() <= DETAIL_BYTES_MAX);
        assert!(first[0].detail.starts_with('é'));
        prune(&log.db.lock(), 4).expect("pruned");
        assert_eq!(log.len().expect("count"), 4);
    }

    #[test]
    fn the_file_is_created_for_its_owner_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notifications.sqlite");
        let log = DeliveryLog::open(&path).expect("log");
        log.record(&attempt("hook", "a", 1, Status::Delivered))
            .expect("written");
        drop(log);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path)
                .expect("exists")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Reopened, the attempts are still there.
        assert_eq!(
            DeliveryLog::open(&path).expect("log").len().expect("count"),
            1
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in Status::ALL {
            assert_eq!(Status::from_name(status.name()), Some(status));
            let json = serde_json::to_value(status).expect("serialises");
            assert_eq!(json, status.name());
        }
        assert_eq!(Status::from_name("delivered "), None);
    }
}
