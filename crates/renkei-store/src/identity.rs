//! Regional identity: persons (one per common ID), their cards, and the links from facilities'
//! own patient IDs (名寄せ). Links are closed, never deleted.

use renkei_core::audit::AuditEvent;

use crate::{Result, Store, StoreError, Tx, exec_tx, with_db, with_tx};

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Person {
    pub id: i64,
    pub common_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: Option<String>,
    pub sex: String,
    pub issuer_facility: i64,
    pub created_at: i64,
    /// Set while this person is merged into another (the survivor).
    pub merged_into: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPerson {
    pub common_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: Option<String>,
    pub sex: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct Card {
    pub id: i64,
    pub person_id: i64,
    /// `hm` or `disclosure`.
    pub kind: String,
    pub issuer_facility: i64,
    /// `active`, `replaced` (re-issued) or `revoked`.
    pub status: String,
    pub issued_at: i64,
    pub ended_at: Option<i64>,
    pub end_reason: String,
}

#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct PersonLink {
    pub id: i64,
    pub person_id: i64,
    pub facility_id: i64,
    pub patient_local_id: String,
    pub source: String,
    pub linked_at: i64,
    pub linked_by: String,
    pub unlinked_at: Option<i64>,
    pub active: bool,
}

const PERSON: &str = "id, common_id, kanji_name, kana_name, birth_date, sex, issuer_facility, created_at, merged_into";
const CARD: &str = "id, person_id, kind, issuer_facility, status, issued_at, ended_at, end_reason";
const LINK: &str = "id, person_id, facility_id, patient_local_id, source, linked_at, linked_by, unlinked_at, active";

/// The rule name reported when a facility's patient ID is already linked to someone else.
pub const LINKED_ELSEWHERE: &str = "linked_to_another_person";

impl Store {
    /// Takes the next serial of a prefecture's common IDs. Serials are never handed out twice,
    /// even when what they were taken for is abandoned.
    pub async fn allocate_common_id_serial(&self, prefecture: i64) -> Result<i64> {
        let mut tx = self.begin().await?;
        let row: Option<(i64,)> = match &mut tx {
            Tx::Postgres(t) => {
                sqlx::query_as(
                    "SELECT next_serial FROM common_id_serials WHERE prefecture = $1 FOR UPDATE",
                )
                .bind(prefecture)
                .fetch_optional(&mut **t)
                .await?
            }
            Tx::Sqlite(t) => {
                sqlx::query_as("SELECT next_serial FROM common_id_serials WHERE prefecture = $1")
                    .bind(prefecture)
                    .fetch_optional(&mut **t)
                    .await?
            }
        };
        let serial = match row {
            Some((n,)) => {
                exec_tx!(&mut tx, |c| {
                    sqlx::query(
                        "UPDATE common_id_serials SET next_serial = $1 WHERE prefecture = $2",
                    )
                    .bind(n + 1)
                    .bind(prefecture)
                    .execute(&mut *c)
                    .await
                })?;
                n
            }
            None => {
                exec_tx!(&mut tx, |c| {
                    sqlx::query(
                        "INSERT INTO common_id_serials (prefecture, next_serial) VALUES ($1, 2)",
                    )
                    .bind(prefecture)
                    .execute(&mut *c)
                    .await
                })?;
                1
            }
        };
        tx.commit().await?;
        Ok(serial)
    }

    /// Creates a person with a first card and the issuing facility's link, in one transaction.
    pub async fn create_person_with_card(
        &self,
        person: &NewPerson,
        card_kind: &str,
        (facility_id, patient_local_id, by): (i64, &str, &str),
        at: i64,
        audit: AuditEvent,
    ) -> Result<(Person, Card)> {
        let mut tx = self.begin().await?;
        let id: (i64,) = with_tx!(&mut tx, |c| {
            sqlx::query_as(
                "INSERT INTO persons (common_id, kanji_name, kana_name, birth_date, sex, issuer_facility, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
            )
            .bind(&person.common_id)
            .bind(&person.kanji_name)
            .bind(&person.kana_name)
            .bind(&person.birth_date)
            .bind(&person.sex)
            .bind(facility_id)
            .bind(at)
            .fetch_one(&mut *c)
            .await
        })?;
        let card = insert_card(&mut tx, id.0, card_kind, facility_id, at).await?;
        insert_link(
            &mut tx,
            id.0,
            facility_id,
            patient_local_id,
            "card_issue",
            by,
            at,
        )
        .await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        let person = self
            .one_by(&format!("SELECT {PERSON} FROM persons WHERE id = $1"), id.0)
            .await?;
        Ok((person, card))
    }

    /// Issues another card to a person; an active card of the same kind from the same issuer is
    /// marked `replaced` (a lost card stops working).
    pub async fn issue_card(
        &self,
        person_id: i64,
        kind: &str,
        issuer: i64,
        at: i64,
        audit: AuditEvent,
    ) -> Result<Card> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query(
                "UPDATE cards SET status = 'replaced', ended_at = $1, end_reason = 'reissued' WHERE person_id = $2 AND kind = $3 AND issuer_facility = $4 AND status = 'active'",
            )
            .bind(at)
            .bind(person_id)
            .bind(kind)
            .bind(issuer)
            .execute(&mut *c)
            .await
        })?;
        let card = insert_card(&mut tx, person_id, kind, issuer, at).await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(card)
    }

    pub async fn revoke_card(
        &self,
        card_id: i64,
        reason: &str,
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE cards SET status = 'revoked', ended_at = $1, end_reason = $2 WHERE id = $3 AND status = 'active'")
                .bind(at)
                .bind(reason)
                .bind(card_id)
                .execute(&mut *c)
                .await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    pub async fn card(&self, id: i64) -> Result<Card> {
        self.one_by(&format!("SELECT {CARD} FROM cards WHERE id = $1"), id)
            .await
    }

    pub async fn person(&self, id: i64) -> Result<Person> {
        self.one_by(&format!("SELECT {PERSON} FROM persons WHERE id = $1"), id)
            .await
    }

    pub async fn person_by_common_id(&self, common_id: &str) -> Result<Option<Person>> {
        self.optional_by(
            &format!("SELECT {PERSON} FROM persons WHERE common_id = $1"),
            common_id.to_string(),
        )
        .await
    }

    /// The person a facility's patient ID is linked to now, if any.
    pub async fn linked_person(
        &self,
        facility_id: i64,
        patient_local_id: &str,
    ) -> Result<Option<Person>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PERSON} FROM persons WHERE id = (SELECT person_id FROM person_links WHERE facility_id = $1 AND patient_local_id = $2 AND active = TRUE)"
            )))
            .bind(facility_id)
            .bind(patient_local_id)
            .fetch_optional(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    pub async fn cards_of(&self, person_id: i64) -> Result<Vec<Card>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {CARD} FROM cards WHERE person_id = $1 ORDER BY id"
            )))
            .bind(person_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Every link of a person, open and closed, oldest first.
    pub async fn links_of(&self, person_id: i64) -> Result<Vec<PersonLink>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {LINK} FROM person_links WHERE person_id = $1 ORDER BY id"
            )))
            .bind(person_id)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Links a facility's patient ID to a person (名寄せ). Linking again to the same person
    /// changes nothing (returns `false`); a link to another person is a conflict.
    pub async fn link_patient(
        &self,
        person_id: i64,
        (facility_id, patient_local_id, by): (i64, &str, &str),
        source: &str,
        at: i64,
        audit: AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.begin().await?;
        match active_link(&mut tx, facility_id, patient_local_id).await? {
            Some((_, p)) if p == person_id => return Ok(false),
            Some(_) => return Err(StoreError::Conflict(LINKED_ELSEWHERE.to_string())),
            None => {}
        }
        insert_link(
            &mut tx,
            person_id,
            facility_id,
            patient_local_id,
            source,
            by,
            at,
        )
        .await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Closes a link (kept as history).
    pub async fn unlink_patient(&self, link_id: i64, at: i64, audit: AuditEvent) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE person_links SET active = FALSE, unlinked_at = $1 WHERE id = $2 AND active = TRUE").bind(at).bind(link_id).execute(&mut *c).await
        })?;
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Persons holding an active card, with their names and birth dates (for the card-holding
    /// check, which normalises and compares in the use case).
    pub async fn card_holders_born(&self, birth_date: &str) -> Result<Vec<Person>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PERSON} FROM persons p WHERE p.birth_date = $1 AND EXISTS (SELECT 1 FROM cards c WHERE c.person_id = p.id AND c.status = 'active') ORDER BY p.id"
            )))
            .bind(birth_date)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}

impl Store {
    /// Persons born in the given year (`YYYY`): the block within which candidates are scored.
    pub async fn persons_born_in(&self, year: &str) -> Result<Vec<Person>> {
        let pattern = format!(
            "{}-%",
            year.chars()
                .filter(char::is_ascii_digit)
                .take(4)
                .collect::<String>()
        );
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PERSON} FROM persons WHERE birth_date LIKE $1 ORDER BY id"
            )))
            .bind(&pattern)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}

impl Store {
    /// Merges `merged` into `survivor`: every open link of `merged` is closed and reopened on
    /// the survivor (source `merge:<id>`), and `merged` points at the survivor. One transaction.
    pub async fn merge_persons(
        &self,
        survivor: i64,
        merged: i64,
        by: &str,
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let n = exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE persons SET merged_into = $1, merged_at = $2 WHERE id = $3 AND merged_into IS NULL AND id <> $1")
                .bind(survivor)
                .bind(at)
                .bind(merged)
                .execute(&mut *c)
                .await
        })?;
        if n == 0 {
            return Err(StoreError::Conflict("already_merged".into()));
        }
        let links: Vec<PersonLink> = with_tx!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {LINK} FROM person_links WHERE person_id = $1 AND active = TRUE ORDER BY id"
            )))
            .bind(merged)
            .fetch_all(&mut *c)
            .await
        })?;
        let source = format!("merge:{merged}");
        for l in &links {
            exec_tx!(&mut tx, |c| {
                sqlx::query(
                    "UPDATE person_links SET active = FALSE, unlinked_at = $1 WHERE id = $2",
                )
                .bind(at)
                .bind(l.id)
                .execute(&mut *c)
                .await
            })?;
            if active_link(&mut tx, l.facility_id, &l.patient_local_id)
                .await?
                .is_none()
            {
                insert_link(
                    &mut tx,
                    survivor,
                    l.facility_id,
                    &l.patient_local_id,
                    &source,
                    by,
                    at,
                )
                .await?;
            }
        }
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }

    /// Undoes a merge: the links it moved go back to the merged person, which stands alone again.
    pub async fn unmerge_person(
        &self,
        merged: i64,
        by: &str,
        at: i64,
        audit: AuditEvent,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let row: Option<(Option<i64>, Option<i64>)> = with_tx!(&mut tx, |c| {
            sqlx::query_as("SELECT merged_into, merged_at FROM persons WHERE id = $1")
                .bind(merged)
                .fetch_optional(&mut *c)
                .await
        })?;
        let Some((Some(_survivor), Some(merged_at))) = row else {
            return Err(StoreError::Conflict("not_merged".into()));
        };
        let source = format!("merge:{merged}");
        exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE person_links SET active = FALSE, unlinked_at = $1 WHERE source = $2 AND active = TRUE").bind(at).bind(&source).execute(&mut *c).await
        })?;
        let moved: Vec<PersonLink> = with_tx!(&mut tx, |c| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {LINK} FROM person_links WHERE person_id = $1 AND unlinked_at = $2 ORDER BY id")))
                .bind(merged)
                .bind(merged_at)
                .fetch_all(&mut *c)
                .await
        })?;
        for l in &moved {
            if active_link(&mut tx, l.facility_id, &l.patient_local_id)
                .await?
                .is_none()
            {
                insert_link(
                    &mut tx,
                    merged,
                    l.facility_id,
                    &l.patient_local_id,
                    "unmerge",
                    by,
                    at,
                )
                .await?;
            }
        }
        exec_tx!(&mut tx, |c| {
            sqlx::query("UPDATE persons SET merged_into = NULL, merged_at = NULL WHERE id = $1")
                .bind(merged)
                .execute(&mut *c)
                .await
        })?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await
    }
}

/// The open link of a facility's patient ID, if any: (link id, person id).
pub(crate) async fn active_link(
    tx: &mut Tx,
    facility_id: i64,
    patient_local_id: &str,
) -> Result<Option<(i64, i64)>> {
    let row: Option<(i64, i64)> = with_tx!(tx, |c| {
        sqlx::query_as("SELECT id, person_id FROM person_links WHERE facility_id = $1 AND patient_local_id = $2 AND active = TRUE")
            .bind(facility_id)
            .bind(patient_local_id)
            .fetch_optional(&mut *c)
            .await
    })?;
    Ok(row)
}

async fn insert_card(
    tx: &mut Tx,
    person_id: i64,
    kind: &str,
    issuer: i64,
    at: i64,
) -> Result<Card> {
    let card: Card = with_tx!(tx, |c| {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO cards (person_id, kind, issuer_facility, status, issued_at) VALUES ($1, $2, $3, 'active', $4) RETURNING {CARD}"
        )))
        .bind(person_id)
        .bind(kind)
        .bind(issuer)
        .bind(at)
        .fetch_one(&mut *c)
        .await
    })?;
    Ok(card)
}

pub(crate) async fn insert_link(
    tx: &mut Tx,
    person_id: i64,
    facility_id: i64,
    patient_local_id: &str,
    source: &str,
    by: &str,
    at: i64,
) -> Result<()> {
    exec_tx!(tx, |c| {
        sqlx::query(
            "INSERT INTO person_links (person_id, facility_id, patient_local_id, source, linked_at, linked_by, active) VALUES ($1, $2, $3, $4, $5, $6, TRUE)",
        )
        .bind(person_id)
        .bind(facility_id)
        .bind(patient_local_id)
        .bind(source)
        .bind(at)
        .bind(by)
        .execute(&mut *c)
        .await
    })?;
    Ok(())
}
