//! Parts of split medication-notebook QR codes (JAHIS record 911), held until the code is
//! complete. See the migration `jahis_split_parts`.

use crate::{Result, Store, StoreError, exec_tx, with_db};

/// One held part.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct SplitPart {
    pub facility_id: i64,
    pub data_id: String,
    pub part: i64,
    pub total: i64,
    /// The card it was read with; `None` for a file that came without its card.
    pub person_id: Option<i64>,
    pub text: String,
    pub received_at: i64,
}

const COLUMNS: &str = "facility_id, data_id, part, total, person_id, text, received_at";

impl Store {
    /// Holds a part; reading the same part again replaces it.
    pub async fn hold_split_part(&self, p: &SplitPart) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| {
            sqlx::query(
            "INSERT INTO jahis_split_parts (facility_id, data_id, part, total, person_id, text, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (facility_id, data_id, part) DO UPDATE SET total = excluded.total,
                 person_id = excluded.person_id, text = excluded.text, received_at = excluded.received_at"
        )
        .bind(p.facility_id)
        .bind(&p.data_id)
        .bind(p.part)
        .bind(p.total)
        .bind(p.person_id)
        .bind(&p.text)
        .bind(p.received_at)
        .execute(&mut *c)
        .await
        })?;
        tx.commit().await
    }

    /// The parts held at a facility (of one code, or of all), by code and part number.
    pub async fn split_parts(
        &self,
        facility_id: i64,
        data_id: Option<&str>,
    ) -> Result<Vec<SplitPart>> {
        let one = if data_id.is_some() {
            "AND data_id = $2"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM jahis_split_parts WHERE facility_id = $1 {one} ORDER BY data_id, part"
        );
        with_db!(&self.db, |pool| {
            let q = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str())).bind(facility_id);
            match data_id {
                Some(d) => q.bind(d),
                None => q,
            }
            .fetch_all(pool)
            .await
        })
        .map_err(StoreError::from)
    }

    /// Deletes the parts of a code (merged and stored, or given up).
    pub async fn release_split_parts(&self, facility_id: i64, data_id: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        exec_tx!(&mut tx, |c| sqlx::query(
            "DELETE FROM jahis_split_parts WHERE facility_id = $1 AND data_id = $2"
        )
        .bind(facility_id)
        .bind(data_id)
        .execute(&mut *c)
        .await)?;
        tx.commit().await
    }

    /// Codes at a facility whose first part was read before `before`: `(data_id, parts held)`.
    pub async fn stale_split_codes(
        &self,
        facility_id: i64,
        before: i64,
    ) -> Result<Vec<(String, i64)>> {
        with_db!(&self.db, |pool| sqlx::query_as(
            "SELECT data_id, COUNT(*) FROM jahis_split_parts WHERE facility_id = $1
             GROUP BY data_id HAVING MIN(received_at) < $2 ORDER BY data_id"
        )
        .bind(facility_id)
        .bind(before)
        .fetch_all(pool)
        .await)
        .map_err(StoreError::from)
    }
}
