//! The integrated viewer (統合参照Viewer): one patient's record across facilities, as far as
//! consent and profession allow. Everything here starts from `App::read_record`, so each view
//! is decided item by item and audited; the calendar, time line, lab table and minimum data are
//! computed from that result by `renkei_clinical::view`.

use renkei_core::consent::{CategoryScope, ConsentCategory};
use std::collections::HashMap;

pub use renkei_clinical::view;
use renkei_clinical::view::ViewItem;
use renkei_core::audit::AuditOutcome;
pub use renkei_store::clinical::LocalLabCode;
use renkei_store::identity::Person;

use crate::consent::Selection;
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
    /// Links of this person under 名寄せ review, in words (see [`App::link_warnings`]).
    pub link_warnings: Vec<String>,
    /// What the reader may see of each category, from the rules alone.
    pub scopes: Vec<(ConsentCategory, CategoryScope)>,
    /// Until when the reader's emergency grant runs, if this read is one.
    pub emergency_until: Option<i64>,
}

/// The calendar of a patient: days with what the viewer may see, per facility.
#[derive(Clone, Debug)]
pub struct CalendarView {
    pub person: Person,
    pub facilities: Vec<(i64, String)>,
    pub calendar: view::Calendar,
    pub link_warnings: Vec<String>,
    pub emergency_until: Option<i64>,
}

/// How many of the latest result days the lab table shows.
pub const LAB_DATES: usize = 12;

impl App {
    async fn facility_names(&self, ids: impl Iterator<Item = i64>) -> Result<Vec<(i64, String)>> {
        let mut ids: Vec<i64> = ids.collect();
        ids.sort_unstable();
        ids.dedup();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push((id, self.store.facility(id).await?.name));
        }
        Ok(out)
    }

    async fn to_view(&self, record: crate::consent::RecordView) -> Result<PatientView> {
        let facilities = self
            .facility_names(record.items.iter().map(|v| v.facility_id))
            .await?;
        let mut items = Vec::with_capacity(record.items.len());
        let mut messages = HashMap::with_capacity(record.items.len());
        for v in record.items {
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
        let lab_map = self
            .store
            .lab_code_maps()
            .await?
            .into_iter()
            .map(|(f, local, jlac)| ((f, local), jlac))
            .collect();
        let link_warnings = self.link_warnings(record.person.id).await?;
        let scopes = record.scopes;
        Ok(PatientView {
            scopes,
            emergency_until: record.emergency_until,
            person: record.person,
            items,
            facilities,
            lab_map,
            messages,
            link_warnings,
        })
    }

    /// The patient's whole record for the viewer (or part of it). Audited (as `clinical.read`).
    pub async fn patient_view(&self, actor: &Actor, person_id: i64) -> Result<PatientView> {
        self.patient_view_of(actor, person_id, &Selection::default())
            .await
    }

    /// Part of the patient's record for the viewer. Audited.
    pub async fn patient_view_of(
        &self,
        actor: &Actor,
        person_id: i64,
        selection: &Selection,
    ) -> Result<PatientView> {
        let record = self.read_selected(actor, person_id, selection).await?;
        self.to_view(record).await
    }

    /// The calendar of `month` (the newest month with data when `None`): built from the day
    /// groups the viewer may see, without reading each item. Audited.
    pub async fn patient_calendar(
        &self,
        actor: &Actor,
        person_id: i64,
        month: Option<&str>,
    ) -> Result<CalendarView> {
        let (person, days, emergency_until) = self.read_days(actor, person_id).await?;
        let entries: Vec<(i64, view::CalendarRow, &str)> = days
            .iter()
            .filter_map(|d| {
                Some((
                    d.facility_id,
                    view::row_of(&d.category, &d.code)?,
                    d.date.as_deref()?,
                ))
            })
            .collect();
        let calendar = view::calendar_of(&entries, month);
        let facilities = self
            .facility_names(days.iter().map(|d| d.facility_id))
            .await?;
        let link_warnings = self.link_warnings(person.id).await?;
        Ok(CalendarView {
            person,
            facilities,
            calendar,
            link_warnings,
            emergency_until,
        })
    }

    /// Lab results of the latest [`LAB_DATES`] result days, for the harmonised table. Audited.
    pub async fn patient_labs(&self, actor: &Actor, person_id: i64) -> Result<PatientView> {
        let record = self.read_recent_labs(actor, person_id, LAB_DATES).await?;
        self.to_view(record).await
    }

    /// Every result of one harmonised lab row (`core:TP`, `local:<facility>:<code>`, …), for
    /// its trend. Audited.
    pub async fn patient_lab_trend(
        &self,
        actor: &Actor,
        person_id: i64,
        key: &str,
    ) -> Result<PatientView> {
        let maps = self.store.lab_code_maps().await?;
        let codes: Option<Vec<String>> = if let Some(core) = key.strip_prefix("core:") {
            let mut codes: Vec<String> = renkei_clinical::jlac10::core_codes()
                .filter(|(_, item)| item.key == core)
                .map(|(code, _)| code.to_string())
                .collect();
            // Local codes the operator mapped onto this item.
            codes.extend(
                maps.iter()
                    .filter(|(_, _, jlac)| {
                        renkei_clinical::jlac10::harmonised_key(jlac).as_deref() == Some(key)
                    })
                    .map(|(_, local, _)| local.clone()),
            );
            Some(codes)
        } else if let Some(rest) = key.strip_prefix("local:") {
            rest.split_once(':').map(|(_, code)| vec![code.to_string()])
        } else {
            None
        };
        let record = self
            .read_selected(
                actor,
                person_id,
                &Selection {
                    categories: Some(vec!["lab_result".into()]),
                    codes,
                    ..Selection::default()
                },
            )
            .await?;
        self.to_view(record).await
    }

    /// A document or image item the viewer may see, by id, with its message (audited read).
    async fn visible_document(
        &self,
        actor: &Actor,
        person_id: i64,
        item_id: i64,
    ) -> Result<(ViewItem, i64)> {
        let view = self
            .patient_view_of(
                actor,
                person_id,
                &Selection {
                    categories: Some(vec!["document".into(), "image".into()]),
                    ..Selection::default()
                },
            )
            .await?;
        let item = view
            .items
            .into_iter()
            .find(|i| i.id == item_id)
            .ok_or(AppError::NotFound)?;
        let message = view
            .messages
            .get(&item.id)
            .copied()
            .ok_or(AppError::NotFound)?;
        Ok((item, message))
    }

    /// The files of a document or image item the viewer may see (name, bytes). Audited.
    pub async fn document_files(
        &self,
        actor: &Actor,
        person_id: i64,
        item_id: i64,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let (_, message) = self.visible_document(actor, person_id, item_id).await?;
        let files = self.store.clinical_attachments(message).await?;
        self.append_audit(self.event(
            actor,
            "clinical.document.read",
            format!("person:{person_id}"),
            AuditOutcome::Success,
            &format!("item:{item_id} files={}", files.len()),
        ))
        .await?;
        Ok(files)
    }

    /// One file of a document or image item (an image, when it is rendered), with the item.
    /// Audited.
    pub async fn document_file(
        &self,
        actor: &Actor,
        person_id: i64,
        item_id: i64,
        index: usize,
    ) -> Result<(ViewItem, String, Vec<u8>)> {
        let (item, message) = self.visible_document(actor, person_id, item_id).await?;
        let (name, bytes) = self
            .store
            .clinical_attachment_at(message, i64::try_from(index).unwrap_or(i64::MAX))
            .await?
            .ok_or(AppError::NotFound)?;
        self.append_audit(self.event(
            actor,
            "clinical.document.read",
            format!("person:{person_id}"),
            AuditOutcome::Success,
            &format!("item:{item_id} file:{index}"),
        ))
        .await?;
        Ok((item, name, bytes))
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

/// What every page about a patient shows at its top, so that no screen can be taken for
/// another patient's: who it is, and whether allergies or contraindications are recorded (as far
/// as the reader may see them; otherwise why not).
#[derive(Clone, Debug)]
pub struct PatientBanner {
    pub person: Person,
    /// Allergies and contraindications the reader may see.
    pub allergies: usize,
    pub contraindications: usize,
    pub allergy_scope: CategoryScope,
    pub contraindication_scope: CategoryScope,
    pub emergency_until: Option<i64>,
}

impl App {
    /// The banner of a patient page: a read of the allergy and contraindication categories,
    /// decided and audited like any read.
    pub async fn patient_banner(&self, actor: &Actor, person_id: i64) -> Result<PatientBanner> {
        let selection = Selection {
            categories: Some(vec!["allergy".into(), "contraindication".into()]),
            ..Selection::default()
        };
        let record = self.read_selected(actor, person_id, &selection).await?;
        let count = |c: ConsentCategory| record.items.iter().filter(|i| i.category == c).count();
        let scope = |c: ConsentCategory| {
            record
                .scopes
                .iter()
                .find(|(k, _)| *k == c)
                .map_or(CategoryScope::OutsideProfession, |(_, s)| *s)
        };
        Ok(PatientBanner {
            allergies: count(ConsentCategory::Allergy),
            contraindications: count(ConsentCategory::Contraindication),
            allergy_scope: scope(ConsentCategory::Allergy),
            contraindication_scope: scope(ConsentCategory::Contraindication),
            emergency_until: record.emergency_until,
            person: record.person,
        })
    }
}
