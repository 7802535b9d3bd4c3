use renkei_store::StoreError;

/// What went wrong, in terms the edges map to a response. Messages are shown to users as they
/// are (Japanese) and never contain patient data or secrets.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is wrong; the message names the field and the problem.
    #[error("{0}")]
    Invalid(String),
    #[error("見つかりません")]
    NotFound,
    /// A rule refused the change (duplicate code, account limit); the message says which.
    #[error("{0}")]
    Conflict(String),
    #[error("この操作を行う権限がありません")]
    Forbidden,
    #[error("ログインが必要です")]
    Unauthenticated,
    #[error("データベースに接続できません: {0}")]
    Unavailable(String),
    #[error("内部エラー: {0}")]
    Internal(String),
}

impl AppError {
    /// A stable code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::Invalid(_) => "invalid",
            AppError::NotFound => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::Forbidden => "forbidden",
            AppError::Unauthenticated => "unauthenticated",
            AppError::Unavailable(_) => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound,
            StoreError::Conflict(rule) => AppError::Conflict(conflict_message(&rule)),
            StoreError::Config(m) => AppError::Invalid(m),
            StoreError::Unavailable(m) => AppError::Unavailable(m),
            StoreError::Internal(m) => AppError::Internal(m),
        }
    }
}

fn conflict_message(rule: &str) -> String {
    match rule {
        r if r.contains("linked_to_another_person") => {
            "この患者IDはすでに別の方の地域共通IDと連携されています（事務局に確認してください）"
                .to_string()
        }
        r if r.contains("account_limit") => {
            "この施設の利用者アカウント数が上限に達しています".to_string()
        }
        r if r.contains("code") && !r.contains("login") => {
            "この医療機関コードの施設はすでに登録されています".to_string()
        }
        r if r.contains("login_id") => "この利用者IDはすでに使われています".to_string(),
        other => format!("重複のため登録できません（{other}）"),
    }
}

pub type Result<T> = std::result::Result<T, AppError>;
