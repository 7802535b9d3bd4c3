//! Clinical data intake: SS-MIX2 storage files (and, through the same path, live messages) are
//! checked, mapped and kept with their original bytes.

use std::collections::BTreeMap;

use renkei_clinical::{Mapped, map_message};
use renkei_core::audit::AuditOutcome;
use renkei_hl7v2::{Message, ssmix2};
use renkei_store::clinical::{
    Condition, IncomingMessage, IngestOutcome, NewAttachment, NewItem, PatientRecord,
};
use sha2::{Digest, Sha256};

use crate::{Actor, App, AppError, Result};

/// One file of a storage: its path relative to the storage root (`/`-separated) and its bytes.
#[derive(Clone, Debug)]
pub struct SourceFile {
    pub relative_path: String,
    pub bytes: Vec<u8>,
}

pub mod deviations;

/// A file and what is wrong with it (never patient data: paths and reasons only).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileProblem {
    pub path: String,
    pub reason: String,
}

/// One tolerated deviation seen in the files of one data kind: reported once per import with
/// the number of files, not once per file (docs/ssmix2-deviations.md).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WarningGroup {
    pub data_kind: String,
    /// The deviation's key in docs/ssmix2-deviations.md (`trigger_by_kind`, …).
    pub deviation: String,
    pub reason: String,
    /// Files of the kind with this deviation.
    pub files: usize,
    /// The first such file, to look at.
    pub first_path: String,
}

/// What became of the files of one SS-MIX2 data kind.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct KindCounts {
    pub stored: usize,
    pub unchanged: usize,
    pub replaced: usize,
    /// Files kept with at least one tolerated deviation.
    pub warned: usize,
    /// Files refused.
    pub failed: usize,
}

/// The running summary of an import.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ImportReport {
    pub files: usize,
    pub stored: usize,
    pub unchanged: usize,
    pub replaced: usize,
    pub items: usize,
    /// Files kept with at least one tolerated deviation.
    pub warned: usize,
    /// Per SS-MIX2 data kind (`OMP-01` and `OMP-02` apart; an extended-storage document by its
    /// kind folder); files whose kind cannot be told count under `unknown`.
    pub by_kind: BTreeMap<String, KindCounts>,
    /// Messages by HL7 type as sent (`ADT^A08`: 3).
    pub messages_by_type: BTreeMap<String, usize>,
    pub warnings: Vec<WarningGroup>,
    pub errors: Vec<FileProblem>,
    /// Links put on the 名寄せ review list: a patient record that names someone other than the
    /// person its patient ID is linked to (stored all the same).
    pub link_reviews: usize,
}

/// The key of files whose data kind cannot be told from their path.
pub const UNKNOWN_KIND: &str = "unknown";

/// The data kind a path names, for counting a file that was refused: the file name's kind, else
/// the kind folder's, else [`UNKNOWN_KIND`].
fn kind_of_path(path: &str) -> String {
    let levels: Vec<&str> = path.split('/').filter(|l| !l.is_empty()).collect();
    let known = |k: &&str| ssmix2::expected_message(k).is_some();
    let from_name = levels
        .last()
        .and_then(|f| ssmix2::strip_extension(f).0.split('_').nth(2))
        .filter(known);
    let from_folder = levels
        .get(4)
        .copied()
        .filter(|k| known(k) || k.contains('^'));
    from_name
        .or(from_folder)
        .unwrap_or(UNKNOWN_KIND)
        .to_string()
}

impl ImportReport {
    /// Records a refused file (its kind told from the path) and why.
    pub fn fail(&mut self, path: &str, reason: impl Into<String>) {
        self.by_kind.entry(kind_of_path(path)).or_default().failed += 1;
        self.errors.push(FileProblem {
            path: path.to_string(),
            reason: reason.into(),
        });
    }

    /// Records the deviations of one kept file of `kind`: one group per kind and reason.
    fn warn(&mut self, kind: &str, path: &str, noted: &[deviations::Noted]) {
        if noted.is_empty() {
            return;
        }
        self.warned += 1;
        self.by_kind.entry(kind.to_string()).or_default().warned += 1;
        for n in noted {
            self.add_group(WarningGroup {
                data_kind: kind.to_string(),
                deviation: n.key.to_string(),
                reason: n.reason.clone(),
                files: 1,
                first_path: path.to_string(),
            });
        }
    }

    /// Adds a group's files to the group of its kind and reason; groups stay sorted by kind,
    /// deviation and reason.
    fn add_group(&mut self, group: WarningGroup) {
        fn key(g: &WarningGroup) -> (&str, &str, &str) {
            (&g.data_kind, &g.deviation, &g.reason)
        }
        match self.warnings.binary_search_by(|g| key(g).cmp(&key(&group))) {
            Ok(i) => {
                if let Some(g) = self.warnings.get_mut(i) {
                    g.files += group.files;
                }
            }
            Err(i) => self.warnings.insert(i, group),
        }
    }
}

fn items(mapped: &Mapped) -> Vec<NewItem> {
    mapped
        .items
        .iter()
        .map(|i| NewItem {
            category: i.category.key().to_string(),
            code: i.code.code.clone(),
            code_system: i.code.system.clone(),
            display: i.code.display.clone(),
            effective: i.effective.clone(),
            effective_date: i.effective_date().map(str::to_string),
            end_at: i.end.clone(),
            status: i.status.clone(),
            detail: i.detail.to_string(),
        })
        .collect()
}

/// Checks one storage file and turns it into what the store keeps; problems go to the report.
/// Tolerated deviations (docs/ssmix2-deviations.md) are kept and reported; only what cannot be
/// read is refused, with the reason.
fn prepare(file: &SourceFile, report: &mut ImportReport) -> Option<IncomingMessage> {
    let path = file.relative_path.as_str();
    let mut levels: Vec<&str> = path.split('/').filter(|l| !l.is_empty()).collect();
    let mut noted = Vec::new();
    if let Some(last) = levels.pop() {
        let (stem, ext) = ssmix2::strip_extension(last);
        levels.push(stem);
        noted.extend(ext.map(deviations::file_extension));
    }
    let name = match ssmix2::parse_storage_path(&levels) {
        Ok(n) => n,
        Err(e) => {
            report.fail(path, deviations::name_error(&e));
            return None;
        }
    };
    let message = match Message::parse_bytes(&file.bytes) {
        Ok(m) => m,
        Err(e) => {
            report.fail(path, deviations::parse_error(&e));
            return None;
        }
    };
    let kind = name.data_kind.as_str();
    let (code, event) = message.message_type();
    match ssmix2::kind_fit(kind, code, event) {
        ssmix2::KindFit::Listed => {}
        fit @ (ssmix2::KindFit::OtherTrigger { .. } | ssmix2::KindFit::OtherCode { .. }) => {
            noted.extend(deviations::kind_deviation(kind, code, event, fit));
        }
        fit => {
            report.fail(path, deviations::kind_refusal(kind, code, event, fit));
            return None;
        }
    }
    let mapped = match map_message(&message, Some(kind)) {
        Ok(m) => m,
        Err(e) => {
            report.fail(path, deviations::map_error(&e));
            return None;
        }
    };
    noted.extend(deviations::parse_deviations(&message));
    noted.extend(deviations::file_separator(&file.bytes));
    noted.extend(deviations::msh21(&message));
    if mapped.patient_id != name.patient_id {
        noted.push(deviations::patient_id_differs());
    }
    if mapped.skipped_segments > 0 {
        noted.push(deviations::skipped_segments());
    }
    report.warn(kind, path, &noted);
    *report
        .messages_by_type
        .entry(mapped.message_type.clone())
        .or_default() += 1;
    Some(IncomingMessage {
        source: "ssmix2".to_string(),
        source_key: path.to_string(),
        order_key: name.order_key(),
        data_kind: name.data_kind.clone(),
        condition: condition_of(name.condition),
        occurred_at: name.occurred_at.clone(),
        content_hash: hex::encode(Sha256::digest(&file.bytes)),
        raw: file.bytes.clone(),
        message_type: mapped.message_type.clone(),
        control_id: mapped.control_id.clone(),
        patient_local_id: name.patient_id.clone(),
        warnings: noted
            .iter()
            .map(|n| n.reason.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        items: items(&mapped),
        demographics: mapped
            .demographics
            .as_ref()
            .map(|d| patient_record(name.patient_id.as_str(), d)),
        attachments: Vec::new(),
    })
}

fn patient_record(patient_local_id: &str, d: &renkei_clinical::Demographics) -> PatientRecord {
    PatientRecord {
        patient_local_id: patient_local_id.to_string(),
        kanji_name: d.kanji_name.clone(),
        kana_name: d.kana_name.clone(),
        birth_date: d.birth_date.clone(),
        sex: d.sex.clone(),
        postal_code: d.postal_code.clone(),
        address: d.address.clone(),
        phone: d.phone.clone(),
    }
}

/// Whether a storage-relative path lies in the extended storage (a content folder).
fn is_extended(path: &str) -> bool {
    path.split('/').filter(|l| !l.is_empty()).count() == 7
}

/// The content folder of an extended-storage file (its first six levels).
fn content_folder(path: &str) -> String {
    path.split('/')
        .filter(|l| !l.is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("/")
}

fn condition_of(c: ssmix2::Condition) -> Condition {
    match c {
        ssmix2::Condition::Current => Condition::Current,
        ssmix2::Condition::Superseded => Condition::History,
        ssmix2::Condition::Deleted => Condition::Delete,
    }
}

/// One content folder of the extended storage → a document: the main document is the file
/// named `main_document.*` (else the first), every file is kept, and one document item names
/// the kind (standard code, e.g. LOINC 18842-5 退院時サマリー), the date and the files.
fn prepare_document(files: &[&SourceFile], report: &mut ImportReport) -> Option<IncomingMessage> {
    let first = files.first()?;
    let folder_path = content_folder(&first.relative_path);
    let mut entries = Vec::with_capacity(files.len());
    for f in files {
        let levels: Vec<&str> = f
            .relative_path
            .split('/')
            .filter(|l| !l.is_empty())
            .collect();
        match ssmix2::parse_extended_path(&levels) {
            Ok(e) => entries.push((e, *f)),
            Err(e) => {
                report.fail(&f.relative_path, deviations::name_error(&e));
                return None;
            }
        }
    }
    let (entry, _) = entries.first()?;
    let (folder, kind) = (entry.folder.clone(), entry.kind.clone());
    let main = entries
        .iter()
        .find(|(e, _)| e.file.starts_with("main_document"))
        .unwrap_or(&entries[0]);
    let mut hasher = Sha256::new();
    let mut attachments = Vec::with_capacity(entries.len());
    let mut listed = Vec::with_capacity(entries.len());
    for (e, f) in &entries {
        hasher.update(e.file.as_bytes());
        hasher.update((f.bytes.len() as u64).to_be_bytes());
        hasher.update(&f.bytes);
        let sha256 = hex::encode(Sha256::digest(&f.bytes));
        let dicom = f.bytes.get(128..132) == Some(b"DICM".as_slice());
        listed.push(serde_json::json!({ "name": e.file, "size": f.bytes.len(), "sha256": sha256, "main": e.file == main.0.file, "dicom": dicom }));
        attachments.push(NewAttachment {
            name: e.file.clone(),
            sha256,
            bytes: f.bytes.clone(),
        });
    }
    // A document that carries DICOM files is an image study (画像), as consent and the viewer
    // see it; any other is a document (文書).
    let category = if listed.iter().any(|f| f["dicom"] == true) {
        "image"
    } else {
        "document"
    };
    let code = if kind.code.is_empty() {
        (&kind.local_code, &kind.local_name, &kind.local_system)
    } else {
        (&kind.code, &kind.name, &kind.system)
    };
    let effective = folder
        .care_date
        .as_ref()
        .map(|d| format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]));
    let detail = serde_json::json!({
        "title": if kind.name.is_empty() { &kind.local_name } else { &kind.name },
        "local": { "code": kind.local_code, "display": kind.local_name, "system": kind.local_system },
        "key": folder.order_no,
        "department": folder.department,
        "files": listed,
    });
    *report
        .messages_by_type
        .entry("DOCUMENT".to_string())
        .or_default() += 1;
    Some(IncomingMessage {
        source: "ssmix2".to_string(),
        source_key: folder_path,
        order_key: format!(
            "{}_{}_{}_{}",
            folder.patient_id,
            folder.care_date.as_deref().unwrap_or("-"),
            kind.code,
            folder.order_no
        ),
        data_kind: folder.data_kind.clone(),
        condition: condition_of(folder.condition),
        occurred_at: folder.occurred_at.clone(),
        content_hash: hex::encode(hasher.finalize()),
        raw: main.1.bytes.clone(),
        message_type: "DOCUMENT".to_string(),
        control_id: folder.order_no.clone(),
        patient_local_id: folder.patient_id.clone(),
        warnings: String::new(),
        items: vec![NewItem {
            category: category.to_string(),
            code: code.0.clone(),
            code_system: code.2.clone(),
            display: code.1.clone(),
            effective: effective.clone(),
            effective_date: effective,
            end_at: None,
            status: "final".to_string(),
            detail: detail.to_string(),
        }],
        demographics: None,
        attachments,
    })
}

/// Storage files checked and mapped, ready to store: the CPU part of an import, which can run
/// on another thread while the previous batch is being written.
#[derive(Debug, Default)]
pub struct PreparedBatch {
    messages: Vec<IncomingMessage>,
    report: ImportReport,
}

impl PreparedBatch {
    /// What checking and mapping found (nothing stored yet).
    pub fn report(&self) -> &ImportReport {
        &self.report
    }

    /// The messages as the store will keep them.
    pub fn messages(&self) -> &[IncomingMessage] {
        &self.messages
    }
}

/// Checks and maps a batch of storage files (pure: no IO).
/// Files of one content folder of the extended storage must come in the same batch (the
/// command line cuts batches at folder boundaries).
pub fn prepare_ssmix2(files: &[SourceFile]) -> PreparedBatch {
    let mut report = ImportReport {
        files: files.len(),
        ..Default::default()
    };
    let mut messages: Vec<IncomingMessage> = files
        .iter()
        .filter(|f| !is_extended(&f.relative_path))
        .filter_map(|f| prepare(f, &mut report))
        .collect();
    let mut folders: std::collections::BTreeMap<String, Vec<&SourceFile>> =
        std::collections::BTreeMap::new();
    for f in files.iter().filter(|f| is_extended(&f.relative_path)) {
        folders
            .entry(content_folder(&f.relative_path))
            .or_default()
            .push(f);
    }
    messages.extend(
        folders
            .values()
            .filter_map(|group| prepare_document(group, &mut report)),
    );
    PreparedBatch { messages, report }
}

/// Where a batch may end: not inside a content folder of the extended storage.
pub fn batch_boundary(previous: &str, next: &str) -> bool {
    !(is_extended(previous)
        && is_extended(next)
        && content_folder(previous) == content_folder(next))
}

impl ImportReport {
    fn absorb(&mut self, other: ImportReport) {
        self.files += other.files;
        self.stored += other.stored;
        self.unchanged += other.unchanged;
        self.replaced += other.replaced;
        self.items += other.items;
        self.warned += other.warned;
        self.link_reviews += other.link_reviews;
        for (k, v) in other.by_kind {
            let mine = self.by_kind.entry(k).or_default();
            mine.stored += v.stored;
            mine.unchanged += v.unchanged;
            mine.replaced += v.replaced;
            mine.warned += v.warned;
            mine.failed += v.failed;
        }
        for (k, v) in other.messages_by_type {
            *self.messages_by_type.entry(k).or_default() += v;
        }
        for g in other.warnings {
            self.add_group(g);
        }
        self.errors.extend(other.errors);
    }
}

impl App {
    /// The ID of the facility with this medical-institution code (operator only).
    pub async fn facility_id_by_code(&self, actor: &Actor, code: &str) -> Result<i64> {
        actor.require_operator()?;
        let code = renkei_core::facility::FacilityCode::parse(code)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        match self.store.facility_by_code(&code.as_string()).await? {
            Some(f) => Ok(f.id),
            None => Err(AppError::Invalid(format!(
                "医療機関コード {code} の施設は登録されていません（先に施設を登録してください）"
            ))),
        }
    }

    /// Imports a batch of storage files for `facility_id` in one transaction. Bad files are
    /// reported and skipped; every good file is kept. Importing the same file again changes
    /// nothing; a changed file replaces its earlier content.
    pub async fn import_ssmix2_batch(
        &self,
        actor: &Actor,
        facility_id: i64,
        files: &[SourceFile],
        report: &mut ImportReport,
    ) -> Result<()> {
        self.store_ssmix2(actor, facility_id, prepare_ssmix2(files), report)
            .await
    }

    /// Stores a prepared batch in one transaction and adds its outcome to `report`.
    pub async fn store_ssmix2(
        &self,
        actor: &Actor,
        facility_id: i64,
        batch: PreparedBatch,
        report: &mut ImportReport,
    ) -> Result<()> {
        actor.require_operator()?;
        let PreparedBatch {
            messages,
            report: mut part,
        } = batch;
        // Each committed batch carries its own audit event (counts only), so an import that is
        // killed half way leaves no stored message unrecorded.
        let files = messages.len();
        let event = |outcomes: &[IngestOutcome]| {
            let count = |o: IngestOutcome| outcomes.iter().filter(|x| **x == o).count();
            self.event(
                actor,
                "intake.ssmix2.batch",
                format!("facility:{facility_id}"),
                AuditOutcome::Success,
                &format!(
                    "messages={files};stored={};unchanged={};replaced={}",
                    count(IngestOutcome::Stored),
                    count(IngestOutcome::Unchanged),
                    count(IngestOutcome::Replaced)
                ),
            )
        };
        let outcomes = self
            .store
            .ingest_audited(facility_id, self.now().0, &messages, event)
            .await?;
        for (m, o) in messages.iter().zip(outcomes) {
            let kind = part.by_kind.entry(m.data_kind.clone()).or_default();
            match o {
                IngestOutcome::Stored => {
                    part.stored += 1;
                    kind.stored += 1;
                }
                IngestOutcome::Unchanged => {
                    part.unchanged += 1;
                    kind.unchanged += 1;
                }
                IngestOutcome::Replaced => {
                    part.replaced += 1;
                    kind.replaced += 1;
                }
            }
            if o != IngestOutcome::Unchanged {
                part.items += m.items.len();
            }
        }
        // Every stored or unchanged patient record is checked against its link: a PID that
        // names someone else than the linked person is kept, and the link goes for review.
        let records: Vec<&PatientRecord> = messages
            .iter()
            .filter_map(|m| m.demographics.as_ref())
            .collect();
        part.link_reviews += self.check_links(facility_id, &records).await?;
        report.absorb(part);
        Ok(())
    }

    /// Records a finished import in the audit trail (counts only).
    pub async fn audit_import_run(
        &self,
        actor: &Actor,
        facility_id: i64,
        kind: &str,
        report: &ImportReport,
    ) -> Result<()> {
        let detail = format!(
            "kind={kind};files={};stored={};unchanged={};replaced={};errors={};warnings={}",
            report.files,
            report.stored,
            report.unchanged,
            report.replaced,
            report.errors.len(),
            report.warned
        );
        // Planner statistics after a large import (PostgreSQL plans reads on them).
        if report.stored + report.replaced > 1000 {
            self.store.analyze().await?;
        }
        let outcome = if report.errors.is_empty() {
            AuditOutcome::Success
        } else {
            AuditOutcome::Failure
        };
        self.append_audit(self.event(
            actor,
            "clinical.import",
            format!("facility:{facility_id}"),
            outcome,
            &detail,
        ))
        .await?;
        Ok(())
    }

    /// A facility's record of one patient exactly as stored (demographics and active items),
    /// for the intake tests. Test support only (feature `testing`): in the product every read
    /// of clinical data goes through the consent decision (`App::read_record`). Audited.
    #[cfg(feature = "testing")]
    pub async fn clinical_record(
        &self,
        actor: &Actor,
        facility_id: i64,
        patient_local_id: &str,
    ) -> Result<(
        Option<PatientRecord>,
        Vec<renkei_store::clinical::StoredItem>,
    )> {
        // The audit trail names whose record was read (it is the access log the guideline asks for).
        let target = format!("facility:{facility_id}/patient:{patient_local_id}");
        if !actor.is_operator() {
            self.append_audit(self.event(actor, "clinical.read", target, AuditOutcome::Denied, ""))
                .await?;
            return Err(AppError::Forbidden);
        }
        let record = self
            .store
            .patient_record(facility_id, patient_local_id)
            .await?;
        self.append_audit(self.event(actor, "clinical.read", target, AuditOutcome::Success, ""))
            .await?;
        Ok(record)
    }

    /// The local patient IDs with records at a facility (operator only, audited).
    pub async fn clinical_patient_ids(
        &self,
        actor: &Actor,
        facility_id: i64,
    ) -> Result<Vec<String>> {
        actor.require_operator()?;
        let ids = self.store.clinical_patients(facility_id).await?;
        self.append_audit(self.event(
            actor,
            "clinical.list",
            format!("facility:{facility_id}"),
            AuditOutcome::Success,
            "",
        ))
        .await?;
        Ok(ids)
    }
}

/// What the MLLP listener answers for one received message.
#[derive(Clone, Debug)]
pub struct Receipt {
    /// The ACK, encoded in the message's character set.
    pub ack: Vec<u8>,
    /// `stored`, `duplicate`, `replaced`, `rejected` or `error` (for logs and counters).
    pub outcome: &'static str,
    /// Why it was refused, for the audit trail (`not_hl7`, `unknown_sender`, `not_the_sender`,
    /// `unsupported`, `unreadable`, `changed_resend`, …); empty when accepted.
    pub reason: &'static str,
}

/// Who sent a live message, as the listener established it.
#[derive(Clone, Debug, Default)]
pub struct HlSender {
    /// The peer's address (for the audit trail).
    pub peer: String,
    /// The 10-digit code of the facility the connection is authenticated as (an allowed
    /// address, a TLS client certificate); `None` when it is not.
    pub facility_code: Option<String>,
    /// Whether MSH-4 must name that facility: the listener requires it off loopback and
    /// wherever senders are configured.
    pub must_match: bool,
}

/// Where a live message belongs among versions: its order (ORC-2), or per patient for messages
/// whose latest copy replaces the earlier ones (demographics, allergies, the diagnosis list).
fn live_order_key(m: &Message, patient: &str) -> String {
    let (code, event) = m.message_type();
    if let Some(order) = m.get("ORC-2.1").filter(|o| !o.is_empty()) {
        return format!("{patient}|{code}|{order}");
    }
    match (code, event) {
        ("ADT", "A08" | "A60") | ("PPR", "ZD1") => format!("{patient}|{code}^{event}"),
        _ => format!("{patient}|{code}^{event}|{}", m.control_id()),
    }
}

/// MSH-7 as a sortable 17-digit `yyyyMMddHHmmssfff`.
fn sortable_time(msh7: &str) -> String {
    let digits: String = msh7
        .chars()
        .take_while(|c| *c != '+' && *c != '-')
        .filter(char::is_ascii_digit)
        .collect();
    format!("{digits:0<17}").chars().take(17).collect()
}

impl App {
    /// Receives one HL7 v2 message from a live feed: checks it, maps it, stores it durably
    /// with its original bytes, and only then builds the ACK (AA; AE or AR with an ERR segment
    /// that says why). A message sent again (same sender and MSH-10, same content) is
    /// acknowledged and not stored twice.
    pub async fn receive_hl7(&self, bytes: &[u8]) -> Receipt {
        self.receive_hl7_from(bytes, &HlSender::default()).await
    }

    /// Receives a message from `sender` and audits it (facility, control ID, outcome, reason,
    /// peer) whatever the outcome. A message stored but not audited is answered AE, so that
    /// the sender sends it again (a duplicate then, audited).
    pub async fn receive_hl7_from(&self, bytes: &[u8], sender: &HlSender) -> Receipt {
        let receipt = self.receive_checked(bytes, sender).await;
        match self.audit_received(bytes, sender, &receipt).await {
            Ok(()) => receipt,
            Err(e) => {
                tracing::error!(code = e.code(), "auditing a received message failed");
                self.unaudited(bytes)
            }
        }
    }

    async fn audit_received(&self, bytes: &[u8], sender: &HlSender, r: &Receipt) -> Result<()> {
        let message = Message::parse_bytes(bytes).ok();
        let field = |path: &str| {
            let v: String = message
                .as_ref()
                .and_then(|m| m.get(path))
                .unwrap_or_default()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .take(40)
                .collect();
            if v.is_empty() {
                "unknown".to_string()
            } else {
                v
            }
        };
        let outcome = match r.outcome {
            "stored" | "duplicate" | "replaced" => AuditOutcome::Success,
            "rejected" => AuditOutcome::Denied,
            _ => AuditOutcome::Failure,
        };
        let actor = Actor {
            client: sender.peer.clone(),
            ..Actor::system("mllp")
        };
        self.append_audit(self.event(
            &actor,
            "intake.hl7.receive",
            format!("facility:{}/control:{}", field("MSH-4.1"), field("MSH-10")),
            outcome,
            &format!("{};{}", r.outcome, r.reason),
        ))
        .await
    }

    /// AE for a message whose audit event could not be written.
    fn unaudited(&self, bytes: &[u8]) -> Receipt {
        use renkei_hl7v2::{AckCode, AckError, ack};
        let message = Message::parse_bytes(bytes).ok();
        let now = self.now();
        let stamp = now.jst_minutes().replace(['-', ' ', ':'], "") + "00";
        let control = format!("R{}{:06}", stamp, now.0.rem_euclid(1_000_000));
        let error = AckError {
            code: "207",
            location: None,
            text: "the message could not be recorded in the audit trail; send it again later"
                .into(),
        };
        let text = ack(
            message.as_ref(),
            AckCode::Error,
            &control,
            &stamp,
            Some(&error),
        );
        let charset = message
            .as_ref()
            .map(|m| m.charset())
            .unwrap_or(renkei_hl7v2::Charset::Ascii);
        Receipt {
            ack: charset.encode(&text),
            outcome: "error",
            reason: "unaudited",
        }
    }

    async fn receive_checked(&self, bytes: &[u8], from: &HlSender) -> Receipt {
        use renkei_hl7v2::{AckCode, AckError, ack};
        let now = self.now();
        let stamp = now.jst_minutes().replace(['-', ' ', ':'], "") + "00";
        let control = format!("R{}{:06}", stamp, now.0.rem_euclid(1_000_000));
        let reply =
            |m: Option<&Message>, code: AckCode, error: Option<AckError>, outcome: &'static str| {
                let text = ack(m, code, &control, &stamp, error.as_ref());
                let charset = m
                    .map(|m| m.charset())
                    .unwrap_or(renkei_hl7v2::Charset::Ascii);
                Receipt {
                    ack: charset.encode(&text),
                    outcome,
                    reason: "",
                }
            };
        let reject =
            |m: Option<&Message>, code: &'static str, reason: &'static str, text: String| Receipt {
                reason,
                ..reply(
                    m,
                    AckCode::Reject,
                    Some(AckError {
                        code,
                        location: None,
                        text,
                    }),
                    "rejected",
                )
            };
        let message = match Message::parse_bytes(bytes) {
            Ok(m) => m,
            Err(e) => {
                return reject(
                    None,
                    "100",
                    "not_hl7",
                    format!("not an HL7 v2 message: {e}"),
                );
            }
        };
        // The sending facility (MSH-4: its 10-digit code, as namespace ID or universal ID).
        let sender = [message.get("MSH-4.1"), message.get("MSH-4.2")]
            .into_iter()
            .flatten()
            .find_map(|v| renkei_core::facility::FacilityCode::parse(&v).ok());
        let facility = match sender {
            Some(code) => self
                .store
                .facility_by_code(&code.as_string())
                .await
                .ok()
                .flatten(),
            None => None,
        };
        let Some(facility) = facility.filter(|f| f.active) else {
            return reject(
                Some(&message),
                "103",
                "unknown_sender",
                "MSH-4 does not name a participating facility by its 10-digit code".into(),
            );
        };
        // The connection speaks for one facility only.
        if from.must_match && from.facility_code.as_deref() != facility.code.as_deref() {
            return reject(
                Some(&message),
                "103",
                "not_the_sender",
                "MSH-4 names a facility this connection is not authenticated for".into(),
            );
        }
        let mapped = match map_message(&message, None) {
            Ok(m) => m,
            Err(renkei_clinical::MapError::Unsupported(t)) => {
                return reject(
                    Some(&message),
                    "200",
                    "unsupported",
                    format!("message type {t} is not accepted"),
                );
            }
            Err(e) => return reject(Some(&message), "101", "unreadable", e.to_string()),
        };
        let patient = mapped.patient_id.clone();
        let incoming = IncomingMessage {
            source: "mllp".to_string(),
            source_key: format!(
                "{}|{}|{}",
                message.raw("MSH-3").unwrap_or(""),
                facility.id,
                message.control_id()
            ),
            order_key: live_order_key(&message, &patient),
            data_kind: String::new(),
            condition: Condition::Current,
            occurred_at: sortable_time(message.raw("MSH-7").unwrap_or("")),
            content_hash: hex::encode(Sha256::digest(bytes)),
            raw: bytes.to_vec(),
            message_type: mapped.message_type.clone(),
            control_id: mapped.control_id.clone(),
            patient_local_id: patient.clone(),
            warnings: mapped.warnings.join("\n"),
            items: items(&mapped),
            demographics: mapped
                .demographics
                .as_ref()
                .map(|d| patient_record(patient.as_str(), d)),
            attachments: Vec::new(),
        };
        // ADT^A40: the prior patient ID (MRG-1) merges into PID-3 at the sending facility.
        let merge = (message.message_type() == ("ADT", "A40")).then(|| {
            message
                .get("MRG-1.1")
                .map(|p| p.trim().to_string())
                .unwrap_or_default()
        });
        if let Some(prior) = &merge
            && (prior.is_empty() || *prior == patient)
        {
            return reject(
                Some(&message),
                "101",
                "unreadable",
                "ADT^A40 needs MRG-1 (the prior patient ID), different from PID-3".into(),
            );
        }
        // A control ID seen before with other content is refused, never a silent replacement:
        // a correction comes as a new message (its own control ID).
        if let Ok(Some(hash)) = self
            .store
            .stored_message_hash(facility.id, "mllp", &incoming.source_key)
            .await
            && hash != incoming.content_hash
        {
            return reject(
                Some(&message),
                "205",
                "changed_resend",
                format!(
                    "control ID {} was already received with other content; send a correction under a new control ID",
                    message.control_id()
                ),
            );
        }
        match self
            .store
            .ingest(facility.id, now.0, std::slice::from_ref(&incoming))
            .await
        {
            Ok(outcomes) => {
                let outcome = match outcomes.first() {
                    Some(IngestOutcome::Unchanged) => "duplicate",
                    Some(IngestOutcome::Replaced) => "replaced",
                    _ => "stored",
                };
                // Applied whatever the outcome: a merge that failed after its message was kept
                // is completed by the re-sent message; applying it twice changes nothing.
                if let Some(prior) = &merge {
                    let actor = Actor::system("mllp");
                    let target = format!(
                        "facility:{}/patient:{prior}->patient:{patient}",
                        facility.id
                    );
                    let event = self.event(
                        &actor,
                        "clinical.patient.merge",
                        target,
                        AuditOutcome::Success,
                        "adt_a40",
                    );
                    if let Err(e) = self
                        .store
                        .merge_local_patients(
                            facility.id,
                            prior,
                            &patient,
                            message.control_id(),
                            now.0,
                            event,
                        )
                        .await
                    {
                        tracing::error!(error = %e, "applying ADT^A40 failed");
                        return reply(
                            Some(&message),
                            AckCode::Error,
                            Some(AckError {
                                code: "207",
                                location: None,
                                text: "the merge could not be applied; send it again later".into(),
                            }),
                            "error",
                        );
                    }
                }
                // Stored; a PID that no longer fits the linked person goes on the 名寄せ
                // review list (checked again if the sender retries after an error here).
                if let Some(d) = &incoming.demographics
                    && let Err(e) = self.check_links(facility.id, &[d]).await
                {
                    tracing::error!(error = %e, "checking the link of a received message failed");
                    return reply(
                        Some(&message),
                        AckCode::Error,
                        Some(AckError {
                            code: "207",
                            location: None,
                            text: "the message was stored but not checked; send it again later"
                                .into(),
                        }),
                        "error",
                    );
                }
                reply(Some(&message), AckCode::Accept, None, outcome)
            }
            Err(e) => {
                tracing::error!(error = %e, "storing a received message failed");
                reply(
                    Some(&message),
                    AckCode::Error,
                    Some(AckError {
                        code: "207",
                        location: None,
                        text: "the message could not be stored; send it again later".into(),
                    }),
                    "error",
                )
            }
        }
    }
}
