use std::fmt;

/// What can go wrong in storage, in terms a caller can act on. Messages never carry row contents.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness or limit rule refused the change; the string names the rule.
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Internal(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(
                db.constraint()
                    .map(str::to_string)
                    .unwrap_or_else(|| unique_target(db.message())),
            ),
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                StoreError::Unavailable(e.to_string())
            }
            // Database messages can quote values; keep only the kind and code.
            sqlx::Error::Database(db) => StoreError::Internal(format!(
                "database refused the statement (code {})",
                db.code().map(|c| c.to_string()).unwrap_or_default()
            )),
            other => StoreError::Internal(Kind(other).to_string()),
        }
    }
}

/// SQLite reports `UNIQUE constraint failed: facilities.code`; keep the `table.column` part.
fn unique_target(message: &str) -> String {
    message.rsplit(": ").next().unwrap_or("unique").to_string()
}

struct Kind<'a>(&'a sqlx::Error);

impl fmt::Display for Kind<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            sqlx::Error::ColumnDecode { index, .. } => {
                write!(f, "column {index} could not be decoded")
            }
            sqlx::Error::Decode(_) => f.write_str("a value could not be decoded"),
            sqlx::Error::Protocol(_) => f.write_str("protocol error"),
            sqlx::Error::Tls(_) => f.write_str("TLS error"),
            sqlx::Error::Migrate(m) => write!(f, "migration failed: {m}"),
            other => write!(f, "{other}"),
        }
    }
}
