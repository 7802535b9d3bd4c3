//! Notices (お知らせ): the operator posts, everyone logged in reads.

use renkei_core::audit::AuditOutcome;
use renkei_core::time::Timestamp;
pub use renkei_store::Notice;
use renkei_store::NoticeFields;

use crate::{Actor, App, AppError, Result};

#[derive(Clone, Debug, Default)]
pub struct NoticeInput {
    pub title: String,
    pub body: String,
    pub important: bool,
    /// `YYYY-MM-DD` (JST); empty means now.
    pub published_from: String,
    /// `YYYY-MM-DD` (JST), the first day it is no longer shown; empty means open.
    pub published_until: String,
}

fn validate(input: &NoticeInput, now: Timestamp) -> Result<NoticeFields> {
    let title = input.title.trim();
    if title.is_empty() || title.chars().count() > 200 {
        return Err(AppError::Invalid(
            "件名を200文字以内で入力してください".into(),
        ));
    }
    if input.body.chars().count() > 20_000 {
        return Err(AppError::Invalid(
            "本文は20000文字以内にしてください".into(),
        ));
    }
    let from = match input.published_from.trim() {
        "" => now,
        d => Timestamp::parse_jst_date(d).ok_or_else(|| {
            AppError::Invalid("掲載開始日は YYYY-MM-DD で入力してください".into())
        })?,
    };
    let until = match input.published_until.trim() {
        "" => None,
        d => Some(Timestamp::parse_jst_date(d).ok_or_else(|| {
            AppError::Invalid("掲載終了日は YYYY-MM-DD で入力してください".into())
        })?),
    };
    if until.is_some_and(|u| u <= from) {
        return Err(AppError::Invalid(
            "掲載終了日は掲載開始日より後にしてください".into(),
        ));
    }
    Ok(NoticeFields {
        title: title.to_string(),
        body: input.body.replace("\r\n", "\n"),
        important: input.important,
        published_from: from.0,
        published_until: until.map(|t| t.0),
    })
}

impl App {
    pub async fn post_notice(&self, actor: &Actor, input: &NoticeInput) -> Result<Notice> {
        actor.require_operator()?;
        let fields = validate(input, self.now())?;
        let by = actor.user_id.ok_or_else(|| {
            AppError::Invalid("お知らせは事務局の利用者として投稿してください".into())
        })?;
        let event = self.event(
            actor,
            "notice.create",
            String::new(),
            AuditOutcome::Success,
            "",
        );
        Ok(self
            .store
            .create_notice(&fields, by, self.now().0, event)
            .await?)
    }

    pub async fn update_notice(
        &self,
        actor: &Actor,
        id: i64,
        input: &NoticeInput,
    ) -> Result<Notice> {
        actor.require_operator()?;
        let fields = validate(input, self.now())?;
        Ok(self
            .store
            .update_notice(
                id,
                &fields,
                self.now().0,
                self.event(
                    actor,
                    "notice.update",
                    format!("notice:{id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?)
    }

    pub async fn delete_notice(&self, actor: &Actor, id: i64) -> Result<()> {
        actor.require_operator()?;
        Ok(self
            .store
            .delete_notice(
                id,
                self.event(
                    actor,
                    "notice.delete",
                    format!("notice:{id}"),
                    AuditOutcome::Success,
                    "",
                ),
            )
            .await?)
    }

    /// Notices shown on the portal top page now.
    pub async fn current_notices(&self) -> Result<Vec<Notice>> {
        Ok(self.store.current_notices(self.now().0, 50).await?)
    }

    pub async fn notice(&self, actor: &Actor, id: i64) -> Result<Notice> {
        actor.require_operator()?;
        Ok(self.store.notice(id).await?)
    }

    pub async fn all_notices(&self, actor: &Actor) -> Result<Vec<Notice>> {
        actor.require_operator()?;
        Ok(self.store.all_notices(500).await?)
    }
}
