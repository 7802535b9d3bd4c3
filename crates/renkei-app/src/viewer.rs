//! The integrated viewer (統合参照Viewer): one patient's record across facilities, as far as
//! consent and profession allow. Everything here starts from `App::read_record`, so each view
//! is decided item by item and audited; the calendar, time line, lab table and minimum data are
//! computed from that result by `renkei_clinical::view`.

use std::collections::HashMap;

pub use renkei_clinical::view;
use renkei_clinical::view::ViewItem;
use renkei_core::audit::AuditOutcome;
pub use renkei_store::clinical::LocalLabCode;
use renkei_store::identity::Person;

use crate::{Actor, App, AppError, Result};

/// A patient's record as the viewer may see it, ready for the views.
#[derive(Clone, Debug)]
pub struct PatientView {
    pub person: Person,
    pub items: Vec<ViewItem>,
    /// Facilities that contributed items: (id, name), in a stable order (their colours).
    pub facilities: Vec<(i64, String)>,
    /// `(facility, local code)` → JLAC10, for the lab table.
    pub lab_map: HashMap<(i64, String), String>,
    /// The items' message ids (for documents' files), by item id.
    pub messages: HashMap<i64, i64>,
}

impl App {
    /// The patient's record for the viewer. Audited (as `clinical.read`).
    pub async fn patient_view(&self, actor: &Actor, person_id: i64) -> Result<PatientView> {
        let record = self.read_record(actor, person_id).await?;
        let mut facilities: Vec<(i64, String)> = Vec::new();
        let mut items = Vec::with_capacity(record.items.len());
        let mut messages = HashMap::with_capacity(record.items.len());
        for v in record.items {
            if !facilities.iter().any(|(f, _)| *f == v.facility_id) {
                let name = self.store.facility(v.facility_id).await?.name;
                facilities.push((v.facility_id, name));
            }
            messages.insert(v.item.id, v.item.message_id);
            items.push(ViewItem {
                id: v.item.id,
                facility: v.facility_id,
                category: v.item.category,
                date: v.item.effective_date,
                code: v.item.code,
                code_system: v.item.code_system,
                display: v.item.display,
                status: v.item.status,
                end: v.item.end_at,
                detail: serde_json::from_str(&v.item.detail).unwrap_or(serde_json::Value::Null),
            });
        }
        facilities.sort_by_key(|(id, _)| *id);
        let lab_map = self
            .store
            .lab_code_maps()
            .await?
            .into_iter()
            .map(|(f, local, jlac)| ((f, local), jlac))
            .collect();
        Ok(PatientView {
            person: record.person,
            items,
            facilities,
            lab_map,
            messages,
        })
    }

    /// The files of a document item the viewer may see (name, bytes). Audited.
    pub async fn document_files(
        &self,
        actor: &Actor,
        person_id: i64,
        item_id: i64,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let view = self.patient_view(actor, person_id).await?;
        let item = view
            .items
            .iter()
            .find(|i| i.id == item_id && i.category == "document")
            .ok_or(AppError::NotFound)?;
        let message = view
            .messages
            .get(&item.id)
            .copied()
            .ok_or(AppError::NotFound)?;
        let files = self.store.clinical_attachments(message).await?;
        self.store
            .append_audit(self.event(
                actor,
                "clinical.document.read",
                format!("person:{person_id}"),
                AuditOutcome::Success,
                &format!("item:{item_id} files={}", files.len()),
            ))
            .await?;
        Ok(files)
    }

    /// Local lab codes and their JLAC10 mapping (operator).
    pub async fn local_lab_codes(&self, actor: &Actor) -> Result<Vec<LocalLabCode>> {
        actor.require_operator()?;
        Ok(self.store.local_lab_codes().await?)
    }

    /// Maps a facility's local lab code to JLAC10 (or removes the mapping with an empty code).
    /// Operator only; audited.
    pub async fn map_lab_code(
        &self,
        actor: &Actor,
        facility_id: i64,
        local_code: &str,
        jlac10: &str,
    ) -> Result<()> {
        actor.require_operator()?;
        let jlac10 = jlac10.trim().to_ascii_uppercase();
        if !jlac10.is_empty() && !renkei_clinical::jlac10::is_jlac10(&jlac10) {
            return Err(AppError::Invalid(format!(
                "JLAC10 コード「{jlac10}」は17桁の英数字ではありません"
            )));
        }
        let local = local_code.trim();
        if local.is_empty() {
            return Err(AppError::Invalid("施設のコードを指定してください".into()));
        }
        self.store.facility(facility_id).await?;
        let event = self.event(
            actor,
            "clinical.lab_code.map",
            format!("facility:{facility_id}"),
            AuditOutcome::Success,
            &format!("{local}->{jlac10}"),
        );
        Ok(self
            .store
            .set_lab_code_map(
                facility_id,
                local,
                &jlac10,
                (self.now().0, &actor.login_id),
                event,
            )
            .await?)
    }
}
