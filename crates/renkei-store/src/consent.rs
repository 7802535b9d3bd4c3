//! Consent and access-control records: disclosure policies, consents (with targets and scans),
//! referrals, opt-outs, the profession rights matrix, card-less grants, emergency grants and
//! notifications. The store keeps values; deciding is `renkei_core::consent`'s.

use renkei_core::audit::AuditEvent;

use crate::{Result, Store, StoreError, exec_db, exec_tx, with_db, with_tx};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PolicyRow {
    pub facility_id: i64,
    pub mode: String,
    pub categories: String,
    pub updated_at: i64,
    pub updated_by: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ConsentRow {
    pub id: i64,
    pub person_id: i64,
    pub facility_id: i64,
    /// `all`, `named` or `referred`.
    pub target_mode: String,
    pub categories: String,
    /// `YYYY-MM-DD`.
    pub data_from: Option<String>,
    pub data_to: Option<String>,
    pub created_at: i64,
    pub created_by: String,
    pub withdrawn_at: Option<i64>,
    pub withdrawn_by: String,
}

/// A consent with the facilities it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentRecord {
    pub consent: ConsentRow,
    pub targets: Vec<i64>,
    pub scans: Vec<ScanInfo>,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ScanInfo {
    pub id: i64,
    pub consent_id: i64,
    pub file_name: String,
    pub content_type: String,
    pub uploaded_at: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewConsent {
    pub person_id: i64,
    pub facility_id: i64,
    pub target_mode: String,
    pub targets: Vec<i64>,
    pub categories: String,
    pub data_from: Option<String>,
    pub data_to: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ReferralRow {
    pub from_facility: i64,
    pub to_facility: i64,
    pub referred_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CardlessRow {
    pub facility_id: i64,
    pub person_id: i64,
    pub scope_facility: i64,
    pub last_access_at: i64,
    pub hidden: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct EmergencyRow {
    pub id: i64,
    pub user_id: i64,
    pub facility_id: i64,
    pub person_id: i64,
    pub reason: String,
    pub granted_at: i64,
    pub expires_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub facility_id: i64,
    pub kind: String,
    pub message: String,
    pub person_id: Option<i64>,
    pub created_at: i64,
    pub read_at: Option<i64>,
}

/// Everything about one person that consent decisions need.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConsentContext {
    pub consents: Vec<ConsentRecord>,
    pub policies: Vec<PolicyRow>,
    pub referrals: Vec<ReferralRow>,
    pub cardless: Vec<CardlessRow>,
    pub emergency: Vec<EmergencyRow>,
    pub opt_outs: Vec<i64>,
}

const CONSENT: &str = "id, person_id, facility_id, target_mode, categories, data_from, data_to, created_at, created_by, withdrawn_at, withdrawn_by";

impl Store {
    pub async fn set_disclosure_policy(
        &self,
        facility_id: i64,
        (mode, categories): (&str, &str),
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO disclosure_policies (facility_id, mode, categories, updated_at, updated_by) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (facility_id) DO UPDATE SET mode = excluded.mode, categories = excluded.categories, updated_at = excluded.updated_at, updated_by = excluded.updated_by")
                .bind(facility_id)
                .bind(mode)
                .bind(categories)
                .bind(at)
                .bind(by)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn disclosure_policy(&self, facility_id: i64) -> Result<Option<PolicyRow>> {
        self.optional_by(
            "SELECT facility_id, mode, categories, updated_at, updated_by FROM disclosure_policies WHERE facility_id = $1",
            facility_id,
        )
        .await
    }

    /// Records a consent with its targets; returns its id.
    pub async fn create_consent(
        &self,
        c: &NewConsent,
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |conn| {
            sqlx::query_as("INSERT INTO consents (person_id, facility_id, target_mode, categories, data_from, data_to, created_at, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id")
                .bind(c.person_id)
                .bind(c.facility_id)
                .bind(&c.target_mode)
                .bind(&c.categories)
                .bind(&c.data_from)
                .bind(&c.data_to)
                .bind(at)
                .bind(by)
                .fetch_one(&mut *conn)
                .await
        })?;
        for f in &c.targets {
            exec_tx!(&mut tx, |conn| {
                sqlx::query("INSERT INTO consent_targets (consent_id, facility_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                    .bind(id)
                    .bind(f)
                    .execute(&mut *conn)
                    .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Withdraws a consent from `at` on (a withdrawn consent stays withdrawn).
    pub async fn withdraw_consent(
        &self,
        id: i64,
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE consents SET withdrawn_at = $1, withdrawn_by = $2 WHERE id = $3 AND withdrawn_at IS NULL")
                .bind(at)
                .bind(by)
                .bind(id)
                .execute(&mut *c)
                .await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn consent(&self, id: i64) -> Result<ConsentRow> {
        self.one_by(&format!("SELECT {CONSENT} FROM consents WHERE id = $1"), id)
            .await
    }

    /// A person's consents (all facilities, withdrawn ones too), newest first.
    pub async fn consents_of(&self, person_id: i64) -> Result<Vec<ConsentRecord>> {
        let rows: Vec<ConsentRow> = with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CONSENT} FROM consents WHERE person_id = $1 ORDER BY id DESC"
            )))
            .bind(person_id)
            .fetch_all(pool)
            .await
        })?;
        let targets: Vec<(i64, i64)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT t.consent_id, t.facility_id FROM consent_targets t JOIN consents c ON c.id = t.consent_id WHERE c.person_id = $1 ORDER BY t.facility_id")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        let scans: Vec<ScanInfo> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT s.id, s.consent_id, s.file_name, s.content_type, s.uploaded_at FROM consent_scans s JOIN consents c ON c.id = s.consent_id WHERE c.person_id = $1 ORDER BY s.id")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows
            .into_iter()
            .map(|consent| ConsentRecord {
                targets: targets
                    .iter()
                    .filter(|(c, _)| *c == consent.id)
                    .map(|(_, f)| *f)
                    .collect(),
                scans: scans
                    .iter()
                    .filter(|s| s.consent_id == consent.id)
                    .cloned()
                    .collect(),
                consent,
            })
            .collect())
    }

    pub async fn attach_consent_scan(
        &self,
        consent_id: i64,
        (file_name, content_type, bytes): (&str, &str, &[u8]),
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as("INSERT INTO consent_scans (consent_id, file_name, content_type, bytes, uploaded_at, uploaded_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
                .bind(consent_id)
                .bind(file_name)
                .bind(content_type)
                .bind(bytes)
                .bind(at)
                .bind(by)
                .fetch_one(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// A scan's metadata and bytes.
    pub async fn consent_scan(&self, id: i64) -> Result<(ScanInfo, Vec<u8>)> {
        let info: ScanInfo = self
            .one_by(
                "SELECT id, consent_id, file_name, content_type, uploaded_at FROM consent_scans WHERE id = $1",
                id,
            )
            .await?;
        let (bytes,): (Vec<u8>,) = self
            .one_by("SELECT bytes FROM consent_scans WHERE id = $1", id)
            .await?;
        Ok((info, bytes))
    }

    pub async fn record_referral(
        &self,
        person_id: i64,
        (from, to): (i64, i64),
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO referrals (person_id, from_facility, to_facility, referred_at, recorded_by) VALUES ($1, $2, $3, $4, $5)")
                .bind(person_id)
                .bind(from)
                .bind(to)
                .bind(at)
                .bind(by)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Opts a person out of (or back into) a facility-level consent.
    pub async fn set_opt_out(
        &self,
        person_id: i64,
        facility_id: i64,
        opted_out: bool,
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        if opted_out {
            exec_tx!(&mut tx, |c| {
                sqlx::query("INSERT INTO consent_opt_outs (person_id, facility_id, opted_out_at, recorded_by) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                    .bind(person_id)
                    .bind(facility_id)
                    .bind(at)
                    .bind(by)
                    .execute(&mut *c)
                    .await
            })?;
        } else {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                    "DELETE FROM consent_opt_outs WHERE person_id = $1 AND facility_id = $2",
                )
                .bind(person_id)
                .bind(facility_id)
                .execute(&mut *c)
                .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// The stored matrix rows (professions without a row use the defaults).
    pub async fn profession_rights(&self) -> Result<Vec<(String, String)>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT profession, categories FROM profession_rights ORDER BY profession",
            )
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    pub async fn set_profession_rights(
        &self,
        rows: &[(String, String)],
        (at, by): (i64, &str),
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for (profession, categories) in rows {
            exec_tx!(&mut tx, |c| {
                sqlx::query("INSERT INTO profession_rights (profession, categories, updated_at, updated_by) VALUES ($1, $2, $3, $4) ON CONFLICT (profession) DO UPDATE SET categories = excluded.categories, updated_at = excluded.updated_at, updated_by = excluded.updated_by")
                    .bind(profession)
                    .bind(categories)
                    .bind(at)
                    .bind(by)
                    .execute(&mut *c)
                    .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// The card was read at a facility: its card-less grant starts (or restarts) now and the
    /// row shows again if it was hidden.
    pub async fn touch_cardless_grant(
        &self,
        facility_id: i64,
        person_id: i64,
        scope_facility: i64,
        at: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query("INSERT INTO cardless_grants (facility_id, person_id, scope_facility, last_access_at, hidden) VALUES ($1, $2, $3, $4, FALSE) ON CONFLICT (facility_id, person_id, scope_facility) DO UPDATE SET last_access_at = excluded.last_access_at, hidden = FALSE")
                .bind(facility_id)
                .bind(person_id)
                .bind(scope_facility)
                .bind(at)
                .execute(&mut *c)
                .await
        })?;
        tx.commit().await
    }

    /// A facility's card-less patients whose card was read since `since`, newest read first.
    pub async fn cardless_list(
        &self,
        facility_id: i64,
        since: i64,
        include_hidden: bool,
    ) -> Result<Vec<CardlessRow>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT facility_id, person_id, scope_facility, last_access_at, hidden FROM cardless_grants WHERE facility_id = $1 AND last_access_at >= $2 AND (hidden = FALSE OR $3) ORDER BY last_access_at DESC, person_id")
                .bind(facility_id)
                .bind(since)
                .bind(include_hidden)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Hides rows of a facility's patient list (they come back when the card is read again).
    pub async fn hide_cardless(
        &self,
        facility_id: i64,
        person_ids: &[i64],
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for p in person_ids {
            exec_tx!(&mut tx, |c| {
                sqlx::query("UPDATE cardless_grants SET hidden = TRUE WHERE facility_id = $1 AND person_id = $2")
                    .bind(facility_id)
                    .bind(p)
                    .execute(&mut *c)
                    .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Grants emergency access and notifies facilities, in one transaction with its audit.
    pub async fn create_emergency_grant(
        &self,
        (user_id, facility_id, person_id): (i64, i64, i64),
        reason: &str,
        (at, expires_at): (i64, i64),
        notify: &[(i64, String)],
        audit: AuditEvent,
    ) -> Result<i64> {
        let mut tx = self.begin().await?;
        let (id,): (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as("INSERT INTO emergency_grants (user_id, facility_id, person_id, reason, granted_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id")
                .bind(user_id)
                .bind(facility_id)
                .bind(person_id)
                .bind(reason)
                .bind(at)
                .bind(expires_at)
                .fetch_one(&mut *c)
                .await
        })?;
        for (facility, message) in notify {
            exec_tx!(&mut tx, |c| {
                sqlx::query("INSERT INTO notifications (facility_id, kind, message, person_id, created_at) VALUES ($1, 'emergency_access', $2, $3, $4)")
                    .bind(facility)
                    .bind(message)
                    .bind(person_id)
                    .bind(at)
                    .execute(&mut *c)
                    .await
            })?;
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Notifications of `kind` to facilities (a first card read at a new facility, a burst
    /// of card reads), each with its message.
    pub async fn add_notifications(
        &self,
        kind: &str,
        person_id: Option<i64>,
        at: i64,
        notify: &[(i64, String)],
    ) -> Result<()> {
        for (facility, message) in notify {
            exec_db!(&self.db, |pool| {
                sqlx::query("INSERT INTO notifications (facility_id, kind, message, person_id, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(facility)
                    .bind(kind)
                    .bind(message)
                    .bind(person_id)
                    .bind(at)
                    .execute(pool)
                    .await
            })?;
        }
        Ok(())
    }

    /// A facility's notifications, newest first.
    pub async fn notifications(
        &self,
        facility_id: i64,
        limit: i64,
    ) -> Result<Vec<NotificationRow>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT id, facility_id, kind, message, person_id, created_at, read_at FROM notifications WHERE facility_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2")
                .bind(facility_id)
                .bind(limit)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::from)
    }

    /// Everything consent decisions need about one person.
    pub async fn consent_context(&self, person_id: i64) -> Result<ConsentContext> {
        let consents = self.consents_of(person_id).await?;
        let mut facilities: Vec<i64> = consents.iter().map(|c| c.consent.facility_id).collect();
        let linked: Vec<(i64,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT DISTINCT facility_id FROM person_links WHERE person_id = $1 AND active = TRUE")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        facilities.extend(linked.into_iter().map(|(f,)| f));
        facilities.sort_unstable();
        facilities.dedup();
        let mut policies = Vec::new();
        for f in &facilities {
            if let Some(p) = self.disclosure_policy(*f).await? {
                policies.push(p);
            }
        }
        let referrals: Vec<ReferralRow> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT from_facility, to_facility, referred_at FROM referrals WHERE person_id = $1 ORDER BY id")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        let cardless: Vec<CardlessRow> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT facility_id, person_id, scope_facility, last_access_at, hidden FROM cardless_grants WHERE person_id = $1")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        let emergency: Vec<EmergencyRow> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT id, user_id, facility_id, person_id, reason, granted_at, expires_at FROM emergency_grants WHERE person_id = $1 ORDER BY id")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        let opt_outs: Vec<(i64,)> = with_db!(&self.db, |pool| {
            sqlx::query_as("SELECT facility_id FROM consent_opt_outs WHERE person_id = $1")
                .bind(person_id)
                .fetch_all(pool)
                .await
        })?;
        Ok(ConsentContext {
            consents,
            policies,
            referrals,
            cardless,
            emergency,
            opt_outs: opt_outs.into_iter().map(|(f,)| f).collect(),
        })
    }
}
