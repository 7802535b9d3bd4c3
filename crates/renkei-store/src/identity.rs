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
    pub phone: String,
    pub postal_code: String,
    pub address: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewPerson {
    pub common_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub birth_date: Option<String>,
    pub sex: String,
    pub phone: String,
    pub postal_code: String,
    pub address: String,
    pub keys: PersonKeys,
}

/// The normalised keys a person is searched and matched by (computed by the application; the
/// store only keeps and indexes them). An empty key is never matched.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersonKeys {
    /// The reading, normalised, without spaces.
    pub kana_key: String,
    /// The kanji name, normalised, without spaces.
    pub kanji_key: String,
    /// The phone number's digits.
    pub phone_key: String,
    /// The address, normalised.
    pub address_key: String,
    /// The normalisation version the keys were made with.
    pub version: i64,
}

/// A person search: every given criterion must hold. Name keys and the address match by prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PersonSearch {
    pub kana_prefix: String,
    pub kanji_prefix: String,
    pub birth_date: String,
    pub sex: String,
    pub phone_key: String,
    pub address_prefix: String,
    /// Only persons with an active link to this facility (a facility's own patients).
    pub linked_facility: Option<i64>,
    /// Skip this many (paging).
    pub offset: i64,
    /// Leave out persons merged into another.
    pub exclude_merged: bool,
}

/// Keys of one registration, for finding candidate persons: anyone sharing any of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CandidateKeys {
    pub birth_date: String,
    pub kana_key: String,
    pub kanji_key: String,
    pub phone_key: String,
}

/// How common a registration's name is among the MPI's persons, for the common-name discount
/// of MPI suggestions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NameCounts {
    /// About how many persons there are: the highest person id (ids are never reused; persons
    /// merged away still count, which errs towards a name being rarer, a smaller discount).
    pub persons: i64,
    /// Persons (not merged away) with this normalised reading.
    pub same_kana: i64,
    /// Persons (not merged away) with this normalised kanji name.
    pub same_kanji: i64,
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

const PERSON: &str = "id, common_id, kanji_name, kana_name, birth_date, sex, issuer_facility, created_at, merged_into, phone, postal_code, address";
const CARD: &str = "id, person_id, kind, issuer_facility, status, issued_at, ended_at, end_reason";
const LINK: &str = "id, person_id, facility_id, patient_local_id, source, linked_at, linked_by, unlinked_at, active";

/// The rule name reported when a facility's patient ID is already linked to someone else.
pub const LINKED_ELSEWHERE: &str = "linked_to_another_person";

impl Store {
    /// Takes the next serial of a prefecture's common IDs. Serials are never handed out twice,
    /// even when what they were taken for is abandoned.
    pub async fn allocate_common_id_serial(&self, prefecture: i64) -> Result<i64> {
        self.allocate_common_id_serials(prefecture, 1).await
    }

    /// Reserves `count` consecutive serials of a prefecture's common IDs in one transaction;
    /// returns the first.
    pub async fn allocate_common_id_serials(&self, prefecture: i64, count: i64) -> Result<i64> {
        let count = count.max(1);
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
                    .bind(n + count)
                    .bind(prefecture)
                    .execute(&mut *c)
                    .await
                })?;
                n
            }
            None => {
                exec_tx!(&mut tx, |c| {
                    sqlx::query(
                        "INSERT INTO common_id_serials (prefecture, next_serial) VALUES ($1, $2)",
                    )
                    .bind(prefecture)
                    .bind(1 + count)
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
        let id = insert_persons(&mut tx, std::slice::from_ref(person), facility_id, at).await?;
        let id = (id.first().copied().ok_or(StoreError::NotFound)?,);
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
        if let Some(d) = &self.direct {
            return d.person(id)?.ok_or(StoreError::NotFound);
        }
        self.one_by(&format!("SELECT {PERSON} FROM persons WHERE id = $1"), id)
            .await
    }

    pub async fn person_by_common_id(&self, common_id: &str) -> Result<Option<Person>> {
        if let Some(d) = &self.direct {
            return d.person_by_common_id(common_id);
        }
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
        if let Some(d) = &self.direct {
            return d.links_of(person_id);
        }
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

/// Inserts persons in multi-row statements; returns their ids in order.
async fn insert_persons(
    tx: &mut Tx,
    persons: &[NewPerson],
    issuer: i64,
    at: i64,
) -> Result<Vec<i64>> {
    // 40 rows a statement: sqlx-sqlite slows down per row as statements grow (see clinical.rs).
    const ROWS: usize = 40;
    const COLUMNS: usize = 16;
    let mut ids = Vec::with_capacity(persons.len());
    for chunk in persons.chunks(ROWS) {
        let mut sql = String::from(
            "INSERT INTO persons (common_id, kanji_name, kana_name, birth_date, sex, issuer_facility, created_at, phone, postal_code, address, kana_key, kanji_key, phone_key, address_key, keys_version, merged_into) VALUES ",
        );
        for i in 0..chunk.len() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push('(');
            for c in 0..COLUMNS {
                if c > 0 {
                    sql.push_str(", ");
                }
                if c == COLUMNS - 1 {
                    sql.push_str("NULL");
                } else {
                    sql.push_str(&format!("${}", i * (COLUMNS - 1) + c + 1));
                }
            }
            sql.push(')');
        }
        sql.push_str(" RETURNING id");
        let rows: Vec<(i64,)> = with_tx!(tx, |c| {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for p in chunk {
                q = q
                    .bind(&p.common_id)
                    .bind(&p.kanji_name)
                    .bind(&p.kana_name)
                    .bind(&p.birth_date)
                    .bind(&p.sex)
                    .bind(issuer)
                    .bind(at)
                    .bind(&p.phone)
                    .bind(&p.postal_code)
                    .bind(&p.address)
                    .bind(&p.keys.kana_key)
                    .bind(&p.keys.kanji_key)
                    .bind(&p.keys.phone_key)
                    .bind(&p.keys.address_key)
                    .bind(p.keys.version);
            }
            q.fetch_all(&mut *c).await
        })?;
        let mut chunk_ids: Vec<i64> = rows.into_iter().map(|r| r.0).collect();
        // RETURNING order follows the VALUES order on both backends for a plain INSERT, but
        // sorting makes it independent of that: ids are assigned ascending within a statement.
        chunk_ids.sort_unstable();
        ids.extend(chunk_ids);
    }
    Ok(ids)
}

/// The upper bound of a prefix range: every string starting with `prefix` sorts below it
/// (byte order, which both backends use for the key columns).
fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

impl Store {
    /// Adds persons in bulk (migrating an existing MPI, loading a benchmark), in one
    /// transaction with its audit event. The caller has allocated their common IDs.
    pub async fn import_persons(
        &self,
        persons: &[NewPerson],
        issuer: i64,
        at: i64,
        audit: AuditEvent,
    ) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let ids = insert_persons(&mut tx, persons, issuer, at).await?;
        self.append_audit_in(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Persons whose keys were made with an older normalisation than `version`.
    pub async fn persons_needing_keys(&self, version: i64, limit: i64) -> Result<Vec<Person>> {
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PERSON} FROM persons WHERE keys_version < $1 ORDER BY id LIMIT $2"
            )))
            .bind(version)
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Stores recomputed keys.
    pub async fn set_person_keys(&self, keys: &[(i64, PersonKeys)]) -> Result<()> {
        let mut tx = self.begin().await?;
        for (id, k) in keys {
            exec_tx!(&mut tx, |c| {
                sqlx::query("UPDATE persons SET kana_key = $1, kanji_key = $2, phone_key = $3, address_key = $4, keys_version = $5 WHERE id = $6")
                    .bind(&k.kana_key)
                    .bind(&k.kanji_key)
                    .bind(&k.phone_key)
                    .bind(&k.address_key)
                    .bind(k.version)
                    .bind(id)
                    .execute(&mut *c)
                    .await
            })?;
        }
        tx.commit().await
    }

    /// Persons matching every given criterion, at most `limit`: by reading, kanji or address
    /// when searched by one, else by id. Each criterion is an indexed equality or prefix range.
    pub async fn search_persons(&self, q: &PersonSearch, limit: i64) -> Result<Vec<Person>> {
        let mut conditions: Vec<String> = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        let bind = |binds: &mut Vec<String>, v: String| {
            binds.push(v);
            format!("${}", binds.len())
        };
        for (column, prefix) in [
            ("kana_key", &q.kana_prefix),
            ("kanji_key", &q.kanji_prefix),
            ("address_key", &q.address_prefix),
        ] {
            if !prefix.is_empty() {
                let lo = bind(&mut binds, prefix.clone());
                let hi = bind(&mut binds, prefix_end(prefix));
                conditions.push(format!("{column} >= {lo} AND {column} < {hi}"));
            }
        }
        for (column, value) in [
            ("birth_date", &q.birth_date),
            ("sex", &q.sex),
            ("phone_key", &q.phone_key),
        ] {
            if !value.is_empty() {
                let p = bind(&mut binds, value.clone());
                conditions.push(format!("{column} = {p}"));
            }
        }
        if conditions.is_empty() {
            return Ok(Vec::new());
        }
        if q.exclude_merged {
            conditions.push("merged_into IS NULL".to_string());
        }
        if let Some(f) = q.linked_facility {
            let p = bind(&mut binds, f.to_string());
            conditions.push(format!("EXISTS (SELECT 1 FROM person_links l WHERE l.person_id = persons.id AND l.active = TRUE AND l.facility_id = CAST({p} AS BIGINT))"));
        }
        // A prefix search reads its index in order (五十音順 for readings) and stops at the
        // limit; sorting every match of a common family name by id would not.
        let order = if !q.kana_prefix.is_empty() {
            "kana_key, id"
        } else if !q.kanji_prefix.is_empty() {
            "kanji_key, id"
        } else if !q.address_prefix.is_empty() && q.birth_date.is_empty() && q.phone_key.is_empty()
        {
            "address_key, id"
        } else {
            "id"
        };
        let sql = format!(
            "SELECT {PERSON} FROM persons WHERE {} ORDER BY {order} LIMIT ${} OFFSET ${}",
            conditions.join(" AND "),
            binds.len() + 1,
            binds.len() + 2
        );
        let binds = &binds;
        with_db!(&self.db, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()));
            for b in binds {
                query = query.bind(b);
            }
            query.bind(limit).bind(q.offset).fetch_all(pool).await
        })
        .map_err(StoreError::from)
    }

    /// How many persons share a reading (`kana_key`) and a kanji name (`kanji_key`), both
    /// normalised as the persons' keys are; an empty key counts none. Index lookups only.
    pub async fn name_counts(&self, kana_key: &str, kanji_key: &str) -> Result<NameCounts> {
        let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let (persons, same_kana, same_kanji): (i64, i64, i64) = with_db!(&self.db, |pool| {
            sqlx::query_as(
                "SELECT (SELECT COALESCE(MAX(id), 0) FROM persons), \
                 (SELECT COUNT(*) FROM persons WHERE kana_key = $1 AND merged_into IS NULL), \
                 (SELECT COUNT(*) FROM persons WHERE kanji_key = $2 AND merged_into IS NULL)",
            )
            .bind(some(kana_key))
            .bind(some(kanji_key))
            .fetch_one(pool)
            .await
        })
        .map_err(StoreError::from)?;
        Ok(NameCounts {
            persons,
            same_kana,
            same_kanji,
        })
    }

    /// Persons (not merged away) sharing any key with a registration: the candidates that are
    /// scored for MPI suggestions. At most `limit`.
    pub async fn candidate_persons(&self, k: &CandidateKeys, limit: i64) -> Result<Vec<Person>> {
        let some = |s: &String| (!s.is_empty()).then(|| s.clone());
        with_db!(&self.db, |pool| {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {PERSON} FROM persons WHERE merged_into IS NULL AND (birth_date = $1 OR kana_key = $2 OR kanji_key = $3 OR phone_key = $4) ORDER BY id LIMIT $5"
            )))
            .bind(some(&k.birth_date))
            .bind(some(&k.kana_key))
            .bind(some(&k.kanji_key))
            .bind(some(&k.phone_key))
            .bind(limit)
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }
}
