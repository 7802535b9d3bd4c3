//! The national medical-institution code master.

use renkei_core::institution::InstitutionRecord;

use crate::{Institution, Result, Store, exec_tx, with_db};

/// Rows per INSERT statement: 6 parameters each stays far below both backends' limits.
const BATCH: usize = 1000;

impl Store {
    /// Inserts or updates `records` (by code) in one transaction: all of them or none.
    pub async fn upsert_institutions(
        &self,
        records: &[InstitutionRecord],
        at: i64,
        progress: &mut (dyn FnMut(usize) + Send),
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for chunk in records.chunks(BATCH) {
            let mut sql = String::from(
                "INSERT INTO institution_master (code, name, postal_code, address, check_digit_ok, updated_at) VALUES ",
            );
            for i in 0..chunk.len() {
                let b = i * 6;
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str(&format!(
                    "(${},${},${},${},${},${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5,
                    b + 6
                ));
            }
            sql.push_str(
                " ON CONFLICT (code) DO UPDATE SET name = excluded.name, postal_code = excluded.postal_code,
                  address = excluded.address, check_digit_ok = excluded.check_digit_ok, updated_at = excluded.updated_at",
            );
            exec_tx!(&mut tx, |c| {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.as_str()));
                for r in chunk {
                    q = q
                        .bind(r.code.as_string())
                        .bind(r.name.as_str())
                        .bind(r.postal_code.as_str())
                        .bind(r.address.as_str())
                        .bind(r.check_digit_ok)
                        .bind(at);
                }
                q.execute(&mut *c).await
            })?;
            progress(chunk.len());
        }
        tx.commit().await
    }

    pub async fn institution(&self, code: &str) -> Result<Option<Institution>> {
        self.optional_by(
            "SELECT code, name, postal_code, address, check_digit_ok FROM institution_master WHERE code = $1",
            code.to_string(),
        )
        .await
    }

    pub async fn count_institutions(&self) -> Result<i64> {
        let n: (i64,) = with_db!(&self.db, |pool| sqlx::query_as(
            "SELECT COUNT(*) FROM institution_master"
        )
        .fetch_one(pool)
        .await)?;
        Ok(n.0)
    }
}
