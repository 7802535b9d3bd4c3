//! Searching and verifying the audit trail.

use renkei_core::audit::{
    Anchor, AuditKey, AuditOutcome, ChainReport, ChainVerifier, ChainedAuditEvent,
};
use renkei_core::time::Timestamp;
use renkei_store::AuditQuery;

use crate::{Actor, App, AppError, Result};

/// The operator's search form, as typed.
#[derive(Clone, Debug, Default)]
pub struct AuditSearch {
    pub login_id: String,
    pub facility_id: String,
    pub action: String,
    pub outcome: String,
    /// `YYYY-MM-DD` (JST), inclusive.
    pub from: String,
    /// `YYYY-MM-DD` (JST), inclusive.
    pub to: String,
    pub emergency_only: bool,
    pub page: i64,
}

pub const AUDIT_PAGE: i64 = 100;

impl App {
    /// Searches the trail (operator only). The search itself is audited.
    pub async fn search_audit(
        &self,
        actor: &Actor,
        s: &AuditSearch,
    ) -> Result<(Vec<ChainedAuditEvent>, i64)> {
        actor.require_operator()?;
        let date = |text: &str, what: &str| -> Result<Option<Timestamp>> {
            match text.trim() {
                "" => Ok(None),
                d => Timestamp::parse_jst_date(d).map(Some).ok_or_else(|| {
                    AppError::Invalid(format!("{what}は YYYY-MM-DD で入力してください"))
                }),
            }
        };
        let from = date(&s.from, "開始日")?;
        let to = date(&s.to, "終了日")?.map(|t| t.plus_seconds(24 * 3600));
        let facility_id = match s.facility_id.trim() {
            "" => None,
            n => Some(
                n.parse::<i64>()
                    .map_err(|_| AppError::Invalid("施設IDは数字で入力してください".into()))?,
            ),
        };
        let outcome = match s.outcome.trim() {
            "" => None,
            o => Some(
                AuditOutcome::from_key(o)
                    .ok_or_else(|| AppError::Invalid("結果の指定が不正です".into()))?
                    .key()
                    .to_string(),
            ),
        };
        let q = AuditQuery {
            login_id: Some(s.login_id.trim().to_ascii_lowercase()).filter(|t| !t.is_empty()),
            facility_id,
            action_prefix: Some(s.action.trim().to_string()).filter(|t| !t.is_empty()),
            outcome,
            from: from.map(|t| t.0),
            to: to.map(|t| t.0),
            emergency_only: s.emergency_only,
            limit: AUDIT_PAGE,
            offset: s.page.max(0) * AUDIT_PAGE,
        };
        let result = self.store.search_audit(&q).await?;
        self.append_audit(self.event(
            actor,
            "audit.search",
            "audit:events".into(),
            AuditOutcome::Success,
            "",
        ))
        .await?;
        Ok(result)
    }

    /// Walks the whole chain in sequence order, in pages, and checks every link and the head's
    /// seal.
    pub async fn verify_audit(
        &self,
        key: AuditKey,
        progress: impl FnMut(u64),
    ) -> Result<ChainReport> {
        self.verify_audit_anchored(key, None, progress).await
    }

    /// As [`App::verify_audit`], and against the latest anchor kept outside the database: a
    /// chain that ends before it, or differs at it, was cut short or replaced. An empty chain
    /// in a database that holds a region was emptied.
    pub async fn verify_audit_anchored(
        &self,
        key: AuditKey,
        anchor: Option<Anchor>,
        mut progress: impl FnMut(u64),
    ) -> Result<ChainReport> {
        const PAGE: i64 = 5_000;
        let mut verifier = ChainVerifier::new(key)
            .with_anchor(anchor)
            .expect_events(self.store.holds_a_region().await?);
        let mut after = 0;
        let mut seen = 0u64;
        loop {
            let page = self.store.audit_chain_page(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for e in &page {
                verifier.push(e);
            }
            seen += page.len() as u64;
            progress(seen);
        }
        let (seq, hash, mac) = self.store.audit_head_sealed().await?;
        verifier.check_head_seal(seq, &hash, &mac);
        Ok(verifier.finish(Some((seq, hash))))
    }

    /// Where the chain stands (sequence number and hash of its last event), for the anchor the
    /// server and the command line write beside the key.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        Ok(self.store.audit_head().await?)
    }
}
