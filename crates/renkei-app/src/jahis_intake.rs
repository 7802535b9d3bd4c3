//! Intake of pharmacies' dispensing records (JAHIS 電子版お薬手帳データ): files exported by the
//! receipt computer, or the patient's QR code read by a barcode reader, linked to the patient by
//! the HM card. Each dispensing becomes one message with a prescription item per drug, under
//! the pharmacy, so that it shows in the viewer's お薬手帳 as that pharmacy's record (consent and
//! profession apply as for any record); the notebook's own records (patient record, allergies,
//! OTC medicines, memos, family pharmacist) become one more message per patient.
//!
//! - A dispensing is identified by what defines it (pharmacy, day, prescription), not by the
//!   file it came in: re-sent and re-exported copies change nothing, a correction becomes the
//!   current version and keeps the old one as history.
//! - A file whose patient record disagrees with the person on the card is refused, naming the
//!   fields that differ (a confirmed name change may pass, audited).
//! - A QR code split over several symbols (record 911) is held part by part until complete, on
//!   every path, and stored only as a whole.

use renkei_clinical::jahis::{self, Dispensing, Notebook};
use renkei_core::audit::AuditOutcome;
use renkei_store::clinical::{Condition, IncomingMessage, IngestOutcome, NewItem, PatientRecord};
use sha2::{Digest, Sha256};

use crate::medication::webhook_payload;
use renkei_store::identity::Person;

use crate::{Actor, App, AppError, Result};

/// How long the parts of a split QR code wait for the rest (from the first part read).
pub const SPLIT_MINUTES: i64 = 30;

/// A split QR code still waiting for parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingSplit {
    /// The code's data ID (record 911), as the pharmacy's system wrote it.
    pub data_id: String,
    pub total: i64,
    /// Part numbers read so far.
    pub received: Vec<i64>,
    /// Until when (unix microseconds) the other parts may come.
    pub expires_at: i64,
}

impl PendingSplit {
    /// The part numbers still missing.
    pub fn missing(&self) -> Vec<i64> {
        (1..=self.total.min(99))
            .filter(|n| !self.received.contains(n))
            .collect()
    }
}

/// Choices the user makes when uploading.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MedicationOptions {
    /// The user confirmed the patient's name changed (marriage, adoption, …): a file whose name
    /// differs from the card's person while birth date and sex agree is accepted (audited).
    pub name_change_confirmed: bool,
}

/// What an upload did, file by file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MedicationReport {
    pub dispensings_stored: usize,
    pub dispensings_unchanged: usize,
    /// Webhook deliveries queued for subscribed apps.
    pub webhooks_queued: usize,
    /// (file, warning)
    pub warnings: Vec<(String, String)>,
    /// (file, error): files refused as a whole.
    pub errors: Vec<(String, String)>,
    /// Split QR codes waiting for their other parts.
    pub pending: Vec<PendingSplit>,
    /// Split QR codes given up because the rest did not come in time (what to do, in words).
    pub expired: Vec<String>,
}

impl MedicationReport {
    /// Adds another report's counts, warnings and errors to this one.
    pub fn absorb(&mut self, other: MedicationReport) {
        self.dispensings_stored += other.dispensings_stored;
        self.dispensings_unchanged += other.dispensings_unchanged;
        self.webhooks_queued += other.webhooks_queued;
        self.warnings.extend(other.warnings);
        self.errors.extend(other.errors);
        self.pending.extend(other.pending);
        self.expired.extend(other.expired);
    }
}

/// The code system of a JAHIS drug code type.
fn code_system(code_type: &str) -> &'static str {
    match code_type {
        "2" => "RECEIPT",
        "3" => "MHLW",
        "4" => "YJ",
        "6" => "HOT",
        _ => "",
    }
}

/// A labelled free text of a dispensing, for the notebook view.
fn note_json(kind: &str, n: &jahis::Note) -> serde_json::Value {
    serde_json::json!({ "kind": kind, "text": n.text, "date": jahis::iso_date(&n.date) })
}

/// Every free text a dispensing carries (401 服用注意, 411 医療機関等提供情報, 421 残薬確認,
/// 501 備考, 601 患者等記入), labelled by its record.
fn dispensing_notes(d: &Dispensing) -> Vec<serde_json::Value> {
    let labelled = [
        ("服用注意", &d.cautions),
        ("医療機関等提供情報", &d.provided),
        ("残薬確認", &d.remaining),
        ("備考", &d.remarks),
        ("患者等記入", &d.patient_notes),
    ];
    labelled
        .iter()
        .flat_map(|(kind, notes)| notes.iter().map(|n| note_json(kind, n)))
        .collect()
}

/// What defines a dispensing, whatever file, export or QR code it came in: the pharmacy (its
/// code, else its name), the day, and the prescription it filled (facility and doctors). A
/// re-sent copy has the same key and the same records (nothing changes); a correction has the
/// same key and other records: it becomes the current version and the old one is kept as
/// history. The patient record (address, weight) is not part of it.
fn dispensing_key(d: &Dispensing) -> String {
    let institution = |i: Option<&jahis::Institution>| {
        i.map(|i| i.facility_code().unwrap_or_else(|| i.name.clone()))
            .unwrap_or_default()
    };
    let doctors: Vec<&str> = d.doctors.iter().map(|p| p.name.as_str()).collect();
    format!(
        "{}|{}|{}|{}",
        jahis::iso_date(&d.date).unwrap_or_else(|| d.date.clone()),
        institution(d.pharmacy.as_ref()),
        institution(d.prescriber.as_ref()),
        doctors.join("/")
    )
}

/// The dispensings of a notebook as messages; two dispensings of one file with the same key (two
/// prescription forms filled the same day, as for a narcotic) stay apart by their order.
fn dispensing_messages(pharmacy_key: &str, patient: &str, nb: &Notebook) -> Vec<IncomingMessage> {
    let mut seen: std::collections::HashMap<String, usize> = Default::default();
    nb.dispensings
        .iter()
        .map(|d| {
            let key = dispensing_key(d);
            let n = seen.entry(key.clone()).or_default();
            *n += 1;
            let order = format!("jahis|{patient}|{key}#{n}");
            message(pharmacy_key, patient, nb, d, order)
        })
        .collect()
}

/// The patient record as the store keeps it.
fn demographics(patient: &str, p: &jahis::Patient) -> PatientRecord {
    PatientRecord {
        patient_local_id: patient.into(),
        kanji_name: p.name.clone(),
        kana_name: p.kana_name.clone(),
        birth_date: jahis::iso_date(&p.birth_date),
        sex: match p.sex.as_str() {
            "1" => "M".into(),
            "2" => "F".into(),
            _ => String::new(),
        },
        postal_code: p.postal_code.clone(),
        address: p.address.clone(),
        phone: p.phone.clone(),
    }
}

/// One drug of a dispensing as a prescription item.
fn drug_item(d: &Dispensing, rp: &jahis::Rp, drug: &jahis::Drug) -> NewItem {
    let date = jahis::iso_date(&d.date);
    let (pharmacy, prescriber) = (d.pharmacy.as_ref(), d.prescriber.as_ref());
    let doctor = rp.doctor.and_then(|i| d.doctors.get(i));
    let usage = rp.usage.as_ref();
    NewItem {
        category: "prescription".into(),
        code: drug.code.clone(),
        code_system: code_system(&drug.code_type).into(),
        display: drug.name.clone(),
        effective: date.clone(),
        effective_date: date,
        end_at: None,
        status: "dispensed".into(),
        detail: serde_json::json!({
            "source": "jahis",
            "rp": rp.number,
            "drug": { "code": drug.code, "display": drug.name, "system": code_system(&drug.code_type) },
            "generic": { "code": drug.generic_code, "display": drug.generic_name },
            "dose": drug.dose,
            "dose_unit": { "display": drug.unit },
            "usage": { "display": usage.map(|u| u.name.clone()).unwrap_or_default(), "code": usage.map(|u| u.code.clone()).unwrap_or_default() },
            "days": usage.map(|u| u.quantity.clone()).unwrap_or_default(),
            "quantity_unit": usage.map(|u| u.unit.clone()).unwrap_or_default(),
            "form": usage.map(|u| u.form.clone()).unwrap_or_default(),
            "cautions": drug.cautions.iter().chain(rp.cautions.iter()).collect::<Vec<_>>(),
            "supplements": drug.supplements.iter().chain(rp.usage_supplements.iter()).collect::<Vec<_>>(),
            "prescriber": { "name": doctor.map(|p| p.name.clone()).unwrap_or_default() },
            "department": doctor.map(|p| p.detail.clone()).unwrap_or_default(),
            "prescribing_facility": { "name": prescriber.map(|p| p.name.clone()).unwrap_or_default(), "code": prescriber.and_then(|p| p.facility_code()).unwrap_or_default() },
            "pharmacy": { "name": pharmacy.map(|p| p.name.clone()).unwrap_or_default(), "code": pharmacy.and_then(|p| p.facility_code()).unwrap_or_default() },
            "pharmacist": d.pharmacists.first().map(|p| p.name.clone()).unwrap_or_default(),
            "pharmacist_contact": d.pharmacists.first().map(|p| p.detail.clone()).unwrap_or_default(),
            "notes": dispensing_notes(d),
        })
        .to_string(),
    }
}

/// One dispensing as a message of prescription items. Its identity is its own records: the
/// stored text keeps the patient record beside them, but the hash that recognises a copy does
/// not include it.
fn message(
    pharmacy_key: &str,
    patient: &str,
    nb: &Notebook,
    d: &Dispensing,
    order_key: String,
) -> IncomingMessage {
    // Dates in one form (an era date and its Western twin are the same day), and no version
    // line: the same dispensing from an older receipt computer is the same dispensing.
    let western = |date: &str| {
        jahis::iso_date(date)
            .map(|d| d.replace('-', ""))
            .unwrap_or_else(|| date.to_string())
    };
    let mut canonical = d.clone();
    canonical.date = western(&d.date);
    for n in &mut canonical.patient_notes {
        n.date = western(&n.date);
    }
    let identity = Notebook {
        dispensings: vec![canonical],
        ..Notebook::default()
    };
    let hash = hex::encode(Sha256::digest(jahis::write(&identity).as_bytes()));
    let single = Notebook {
        version: nb.version.clone(),
        output: nb.output.clone(),
        patient: nb.patient.clone(),
        dispensings: vec![d.clone()],
        ..Notebook::default()
    };
    let items = d
        .rps
        .iter()
        .flat_map(|rp| rp.drugs.iter().map(move |drug| drug_item(d, rp, drug)))
        .collect();
    let occurred_at = jahis::timestamp(&d.date).unwrap_or_else(|| d.date.clone());
    IncomingMessage {
        source: "jahis".into(),
        source_key: format!("{pharmacy_key}|{patient}|{hash}"),
        order_key,
        data_kind: "JAHIS".into(),
        condition: Condition::Current,
        occurred_at: occurred_at.clone(),
        content_hash: hash,
        raw: jahis::write(&single).into_bytes(),
        message_type: "JAHIS".into(),
        control_id: occurred_at,
        patient_local_id: patient.into(),
        warnings: String::new(),
        items,
        demographics: nb.patient.as_ref().map(|p| demographics(patient, p)),
        attachments: Vec::new(),
    }
}

/// A notebook-level entry (records 2, 3/31, 4, 701) as an item: allergies and side effects in
/// the allergy category, the rest in the notebook's own (処方).
fn notebook_item(category: &str, kind: &str, text: String, date: Option<String>) -> NewItem {
    NewItem {
        category: category.into(),
        code: String::new(),
        code_system: String::new(),
        display: text.clone(),
        effective: date.clone(),
        effective_date: date,
        end_at: None,
        status: "noted".into(),
        detail: serde_json::json!({ "source": "jahis-notebook", "kind": kind, "text": text })
            .to_string(),
    }
}

/// The items of a notebook's own records: 2 患者特記, 3/31 一般用医薬品, 4 手帳メモ, 701
/// かかりつけ薬剤師.
fn notebook_items(nb: &Notebook) -> Vec<NewItem> {
    let mut items = Vec::new();
    for n in &nb.patient_notes {
        let (category, kind) = match n.kind.as_str() {
            "1" => ("allergy", "アレルギー歴"),
            "2" => ("allergy", "副作用歴"),
            "3" => ("prescription", "既往歴"),
            _ => ("prescription", "その他の特記事項"),
        };
        items.push(notebook_item(category, kind, n.text.clone(), None));
    }
    for o in &nb.otc {
        let ingredients: Vec<&str> = o.ingredients.iter().map(|i| i.name.as_str()).collect();
        let mut text = o.name.clone();
        if !ingredients.is_empty() {
            text = format!("{text}（成分: {}）", ingredients.join("、"));
        }
        if let Some(end) = jahis::iso_date(&o.end) {
            text = format!("{text} 〜{end}");
        }
        items.push(notebook_item(
            "prescription",
            "一般用医薬品",
            text,
            jahis::iso_date(&o.start),
        ));
    }
    for m in &nb.memos {
        items.push(notebook_item(
            "prescription",
            "手帳メモ",
            m.text.clone(),
            jahis::iso_date(&m.date),
        ));
    }
    for p in &nb.family_pharmacists {
        let text = format!("{} {} {}", p.name, p.pharmacy, p.contact)
            .trim()
            .to_string();
        items.push(notebook_item(
            "prescription",
            "かかりつけ薬剤師",
            text,
            jahis::iso_date(&p.start),
        ));
    }
    items
}

/// The notebook's own records (the patient record, 2, 3/31, 4, 701 and records this reader does
/// not know), kept so that nothing accepted is lost: one message per patient and pharmacy whose
/// newest version (by the file's newest date) is current.
fn notebook_message(
    pharmacy_key: &str,
    patient: &str,
    nb: &Notebook,
    now: &str,
) -> Option<IncomingMessage> {
    let own = Notebook {
        version: nb.version.clone(),
        output: nb.output.clone(),
        patient: nb.patient.clone(),
        patient_notes: nb.patient_notes.clone(),
        otc: nb.otc.clone(),
        memos: nb.memos.clone(),
        family_pharmacists: nb.family_pharmacists.clone(),
        unknown: nb.unknown.clone(),
        ..Notebook::default()
    };
    if own
        == (Notebook {
            version: own.version.clone(),
            output: own.output.clone(),
            ..Notebook::default()
        })
    {
        return None;
    }
    let text = jahis::write(&own);
    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    let occurred_at = nb
        .dispensings
        .iter()
        .filter_map(|d| jahis::timestamp(&d.date))
        .max()
        .unwrap_or_else(|| now.to_string());
    Some(IncomingMessage {
        source: "jahis".into(),
        source_key: format!("{pharmacy_key}|{patient}|notebook|{hash}"),
        order_key: format!("jahis-notebook|{patient}"),
        data_kind: "JAHIS".into(),
        condition: Condition::Current,
        occurred_at: occurred_at.clone(),
        content_hash: hash,
        raw: text.into_bytes(),
        message_type: "JAHIS".into(),
        control_id: occurred_at,
        patient_local_id: patient.into(),
        warnings: String::new(),
        items: notebook_items(nb),
        demographics: nb.patient.as_ref().map(|p| demographics(patient, p)),
        attachments: Vec::new(),
    })
}

/// The fields of a file's patient record (record 1) that disagree with the person's: 氏名,
/// カナ氏名, 生年月日, 性別 (see [`crate::link_review::disagreeing`]).
pub fn disagreeing_fields(p: &jahis::Patient, person: &Person) -> Vec<&'static str> {
    let birth = jahis::iso_date(&p.birth_date);
    let claimed = crate::link_review::Claimed {
        kanji_name: &p.name,
        kana_name: &p.kana_name,
        birth_date: if p.birth_date.trim().is_empty() {
            Some("")
        } else {
            birth.as_deref()
        },
        sex: match p.sex.trim() {
            "1" => "M",
            "2" => "F",
            _ => "",
        },
    };
    crate::link_review::disagreeing(&claimed, person)
}

/// Whether a notebook may be filed under `person`: `Ok(true)` when it passes only because the
/// user confirmed a name change, `Err` (a reason naming the fields, never their values) when
/// it is refused.
fn patient_matches(
    nb: &Notebook,
    person: &Person,
    options: MedicationOptions,
) -> std::result::Result<bool, String> {
    let Some(p) = &nb.patient else {
        return Ok(false);
    };
    let fields = disagreeing_fields(p, person);
    if fields.is_empty() {
        return Ok(false);
    }
    let names_only = fields.iter().all(|f| matches!(*f, "氏名" | "カナ氏名"));
    if names_only && options.name_change_confirmed {
        return Ok(true);
    }
    let hint = if names_only {
        "婚姻などで氏名が変わった患者であれば、本人に確認のうえ「氏名の変更を確認した」を選んで登録してください"
    } else {
        "別の患者のデータではないか確認してください"
    };
    Err(format!(
        "ファイルの患者情報がHMカードの患者と一致しません（一致しない項目: {}）。登録していません。{hint}",
        fields.join("、")
    ))
}

/// One input as read: a whole notebook, or one part of a split QR code.
enum Input {
    Whole(String, Notebook),
    /// A part, with its patient record if it carries one.
    Part(String, String, jahis::Split, Option<jahis::Patient>),
}

/// Splits a text that holds several QR codes one after another (a barcode reader that typed
/// every symbol into one field) at each `JAHISTC` header.
fn split_codes(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if line.trim_start().starts_with("JAHISTC") || out.is_empty() {
            out.push(String::new());
        }
        if let Some(last) = out.last_mut() {
            last.push_str(line);
        }
    }
    out
}

/// Reads the files: whole notebooks, and parts of split codes (errors go to the report).
fn read_inputs(files: &[(String, Vec<u8>)], report: &mut MedicationReport) -> Vec<Input> {
    let mut out = Vec::new();
    for (name, bytes) in files {
        let codes = split_codes(&jahis::decode(bytes));
        let many = codes.len() > 1;
        for (i, text) in codes.into_iter().enumerate() {
            let name = if many {
                format!("{name} ({})", i + 1)
            } else {
                name.clone()
            };
            match jahis::split_of(&text) {
                Some(Ok(split)) => {
                    let patient = jahis::part_patient(&text);
                    out.push(Input::Part(name, text, split, patient));
                    continue;
                }
                Some(Err(e)) => {
                    report.errors.push((name, e.to_string()));
                    continue;
                }
                None => {}
            }
            match jahis::parse_text(&text) {
                Ok(nb) => {
                    report.warnings.extend(
                        nb.warnings
                            .iter()
                            .map(|w| (name.clone(), format!("{}行目: {}", w.line, w.message))),
                    );
                    out.push(Input::Whole(name, nb));
                }
                Err(e) => report.errors.push((name, e.to_string())),
            }
        }
    }
    out
}

/// A split code made whole: its name for the report, its data ID (released once stored) and
/// the merged notebook (its parts were all read with one card, or all without).
struct Merged {
    name: String,
    data_id: String,
    notebook: Notebook,
}

impl App {
    /// A pharmacy uploads medication-notebook data (files, or a QR code's text) for the
    /// patient whose HM card it reads (`card`: the QR payload, or the common ID of a patient the
    /// pharmacy has already linked). Audited.
    pub async fn import_medication(
        &self,
        actor: &Actor,
        card: &str,
        files: &[(String, Vec<u8>)],
    ) -> Result<MedicationReport> {
        self.import_medication_with(actor, card, files, MedicationOptions::default())
            .await
    }

    /// [`App::import_medication`] with the user's choices.
    pub async fn import_medication_with(
        &self,
        actor: &Actor,
        card: &str,
        files: &[(String, Vec<u8>)],
        options: MedicationOptions,
    ) -> Result<MedicationReport> {
        let facility_id = self.pharmacy_of(actor).await?;
        let mut report = MedicationReport::default();
        let inputs = read_inputs(files, &mut report);
        let proof = inputs.iter().find_map(|i| match i {
            Input::Whole(_, nb) => nb.patient.as_ref(),
            Input::Part(.., patient) => patient.as_ref(),
        });
        let (person, patient) = self
            .person_for_card(actor, facility_id, card, proof)
            .await?;
        let mut notebooks = Vec::new();
        let mut parts = Vec::new();
        for input in inputs {
            match input {
                Input::Whole(name, nb) => notebooks.push((name, nb, None)),
                Input::Part(name, text, split, _) => parts.push((name, text, split)),
            }
        }
        for m in self
            .collect_parts(actor, facility_id, Some(person.id), parts, &mut report)
            .await?
        {
            notebooks.push((m.name, m.notebook, Some(m.data_id)));
        }
        self.store_notebooks(
            actor,
            (facility_id, &person, &patient),
            notebooks,
            options,
            report,
        )
        .await
    }

    /// The acting facility, if it may upload notebooks (a pharmacy, or a disclosing facility).
    async fn pharmacy_of(&self, actor: &Actor) -> Result<i64> {
        let facility_id = actor.facility_id.ok_or(AppError::Forbidden)?;
        let facility = self.store.facility(facility_id).await?;
        if facility.facility_type != "pharmacy" && !facility.discloses {
            return Err(AppError::Invalid(
                "お薬手帳データは薬局（または開示施設）から登録します".into(),
            ));
        }
        Ok(facility_id)
    }

    /// The person a card leads to and the pharmacy's patient ID for them. A person the pharmacy
    /// has not linked yet is linked only when the read proves the card or the patient present
    /// (the QR code's secret; or, where the network allows it, the file's own name and birth
    /// date), as any card read must; an unknown, revoked or unproven card is refused alike.
    async fn person_for_card(
        &self,
        actor: &Actor,
        facility_id: i64,
        card: &str,
        file_patient: Option<&jahis::Patient>,
    ) -> Result<(Person, String)> {
        let refused = || {
            AppError::Invalid(
                "このカードは使用できません。発行施設または事務局にお問い合わせください".into(),
            )
        };
        let payload = renkei_identity::CardPayload::parse(card)
            .map_err(|e| AppError::Invalid(e.to_string()))?;
        let Some(mut person) = self.store.person_by_common_id(&payload.id.digits()).await? else {
            return Err(refused());
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        let linked = self
            .store
            .links_of(person.id)
            .await?
            .into_iter()
            .find(|l| l.active && l.facility_id == facility_id);
        if let Some(l) = linked {
            return Ok((person, l.patient_local_id));
        }
        self.count_card_read(actor, facility_id).await?;
        let cards = self.store.cards_of(person.id).await?;
        let active: Vec<_> = cards.iter().filter(|c| c.status == "active").collect();
        let proof = crate::identity::CardProof {
            name: file_patient.map(|p| p.name.clone()).unwrap_or_default(),
            birth_date: file_patient
                .and_then(|p| jahis::iso_date(&p.birth_date))
                .unwrap_or_default(),
            ..Default::default()
        };
        if active.is_empty() || !self.card_present(&payload, &person, &active, &proof) {
            self.append_audit(self.event(
                actor,
                "identity.card.read",
                format!("common_id:{}", payload.id.digits()),
                AuditOutcome::Denied,
                "medication upload without proof",
            ))
            .await?;
            return Err(refused());
        }
        let local = person.common_id.clone();
        let event = self.event(
            actor,
            "identity.card.read",
            format!("person:{}/patient:{local}", person.id),
            AuditOutcome::Success,
            "linked by medication upload",
        );
        self.store
            .link_patient(
                person.id,
                (facility_id, &local, &actor.login_id),
                "medication_upload",
                self.now().0,
                event,
            )
            .await?;
        self.grant_cardless(facility_id, &person).await?;
        Ok((person, local))
    }
}

impl App {
    /// Holds the parts of split codes and returns the codes now complete, merged. Codes whose
    /// first part is older than [`SPLIT_MINUTES`] are given up first (reported and audited).
    /// A part of a code whose other parts came with another card is refused.
    async fn collect_parts(
        &self,
        actor: &Actor,
        facility_id: i64,
        person_id: Option<i64>,
        parts: Vec<(String, String, jahis::Split)>,
        report: &mut MedicationReport,
    ) -> Result<Vec<Merged>> {
        let now = self.now().0;
        let window = SPLIT_MINUTES * 60 * 1_000_000;
        self.expire_splits(actor, facility_id, now - window, report)
            .await?;
        let mut touched: Vec<String> = Vec::new();
        for (name, text, split) in parts {
            let held = self
                .store
                .split_parts(facility_id, Some(&split.data_id))
                .await?;
            if held.iter().any(|h| h.person_id != person_id) {
                report.errors.push((name, "この分割QRコードの他の部分は別のHMカードで（またはカードなしで）読み取られています。同じ患者のカードで、すべての部分を読み取り直してください".into()));
                continue;
            }
            if held.iter().any(|h| h.total != i64::from(split.total)) {
                report.errors.push((name, "この分割QRコードの分割数が、先に読み取った部分と一致しません。すべての部分を読み取り直してください".into()));
                continue;
            }
            self.store
                .hold_split_part(&renkei_store::SplitPart {
                    facility_id,
                    data_id: split.data_id.clone(),
                    part: i64::from(split.part),
                    total: i64::from(split.total),
                    person_id,
                    text,
                    received_at: now,
                })
                .await?;
            if !touched.contains(&split.data_id) {
                touched.push(split.data_id);
            }
        }
        let mut merged = Vec::new();
        for data_id in touched {
            if let Some(m) = self
                .complete_split(facility_id, &data_id, window, report)
                .await?
            {
                merged.push(m);
            }
        }
        Ok(merged)
    }

    /// A held code merged when every part is there; else its status goes to the report.
    async fn complete_split(
        &self,
        facility_id: i64,
        data_id: &str,
        window: i64,
        report: &mut MedicationReport,
    ) -> Result<Option<Merged>> {
        let held = self.store.split_parts(facility_id, Some(data_id)).await?;
        let Some(first) = held.first() else {
            return Ok(None);
        };
        let total = first.total;
        if (held.len() as i64) < total {
            report.pending.push(PendingSplit {
                data_id: data_id.to_string(),
                total,
                received: held.iter().map(|h| h.part).collect(),
                expires_at: held.iter().map(|h| h.received_at).min().unwrap_or(0) + window,
            });
            return Ok(None);
        }
        let name = format!("分割QRコード（データID {data_id}）");
        let texts: Vec<&str> = held.iter().map(|h| h.text.as_str()).collect();
        let notebook = jahis::merge_parts(&texts).and_then(|t| jahis::parse_text(&t));
        match notebook {
            Ok(nb) => {
                report.warnings.extend(
                    nb.warnings
                        .iter()
                        .map(|w| (name.clone(), format!("{}行目: {}", w.line, w.message))),
                );
                Ok(Some(Merged {
                    name,
                    data_id: data_id.to_string(),
                    notebook: nb,
                }))
            }
            Err(e) => {
                // Parts that cannot become one notebook never will: say so and let them go.
                self.store.release_split_parts(facility_id, data_id).await?;
                report
                    .errors
                    .push((name, format!("分割データを結合できません: {e}")));
                Ok(None)
            }
        }
    }

    /// Gives up codes whose first part was read before `before`.
    async fn expire_splits(
        &self,
        actor: &Actor,
        facility_id: i64,
        before: i64,
        report: &mut MedicationReport,
    ) -> Result<()> {
        for (data_id, parts) in self.store.stale_split_codes(facility_id, before).await? {
            self.append_audit(self.event(
                actor,
                "clinical.medication.split_expired",
                format!("facility:{facility_id}"),
                AuditOutcome::Failure,
                &format!("parts={parts}"),
            ))
            .await?;
            self.store
                .release_split_parts(facility_id, &data_id)
                .await?;
            report.expired.push(format!(
                "分割QRコード（データID {data_id}）は {SPLIT_MINUTES} 分以内に残りの部分が読み取られなかったため、読み取り済みの {parts} 部分を破棄しました。もう一度すべての部分を読み取ってください"
            ));
        }
        Ok(())
    }

    /// Split codes waiting at the acting facility (for the upload screen), and those given up.
    pub async fn pending_medication_splits(&self, actor: &Actor) -> Result<MedicationReport> {
        let facility_id = self.pharmacy_of(actor).await?;
        let mut report = MedicationReport::default();
        let window = SPLIT_MINUTES * 60 * 1_000_000;
        self.expire_splits(actor, facility_id, self.now().0 - window, &mut report)
            .await?;
        let held = self.store.split_parts(facility_id, None).await?;
        let mut ids: Vec<&str> = held.iter().map(|h| h.data_id.as_str()).collect();
        ids.dedup();
        for id in ids {
            let parts: Vec<_> = held.iter().filter(|h| h.data_id == id).collect();
            report.pending.push(PendingSplit {
                data_id: id.to_string(),
                total: parts.first().map_or(0, |p| p.total),
                received: parts.iter().map(|p| p.part).collect(),
                expires_at: parts.iter().map(|p| p.received_at).min().unwrap_or(0) + window,
            });
        }
        Ok(report)
    }

    /// Checks each notebook against the person, stores the dispensings and the notebooks' own
    /// records in one transaction with the audit event and the webhooks, then lets go of the
    /// split codes they were merged from.
    async fn store_notebooks(
        &self,
        actor: &Actor,
        (facility_id, person, patient): (i64, &Person, &str),
        notebooks: Vec<(String, Notebook, Option<String>)>,
        options: MedicationOptions,
        mut report: MedicationReport,
    ) -> Result<MedicationReport> {
        let (mut dispensings, mut own) = (Vec::new(), Vec::new());
        let mut released = Vec::new();
        let mut name_changes = 0;
        let now = format!("{}", self.now().0);
        let key = facility_id.to_string();
        for (name, nb, data_id) in notebooks {
            match patient_matches(&nb, person, options) {
                Err(reason) => {
                    report.errors.push((name, reason));
                    continue;
                }
                Ok(true) => {
                    name_changes += 1;
                    report.warnings.push((
                        name.clone(),
                        "氏名の変更を確認済みとして、カードの患者に登録しました".into(),
                    ));
                }
                Ok(false) => {}
            }
            if nb.patient.is_none() {
                report.warnings.push((
                    name,
                    "患者情報（レコード1）がないため、カードの患者と照合できませんでした".into(),
                ));
            }
            dispensings.extend(dispensing_messages(&key, patient, &nb));
            own.extend(notebook_message(&key, patient, &nb, &now));
            released.extend(data_id);
        }
        let payloads: Vec<String> = dispensings
            .iter()
            .map(|m| webhook_payload(&person.common_id, &m.raw))
            .collect();
        let count = dispensings.len();
        dispensings.extend(own);
        let batch = dispensings;
        let errors = report.errors.len();
        let event = |outcomes: &[IngestOutcome]| {
            let outcomes = &outcomes[..count.min(outcomes.len())];
            let stored = outcomes
                .iter()
                .filter(|o| **o != IngestOutcome::Unchanged)
                .count();
            self.event(
                actor,
                "clinical.medication.import",
                format!("person:{}", person.id),
                if errors == 0 {
                    AuditOutcome::Success
                } else {
                    AuditOutcome::Failure
                },
                &format!(
                    "stored={stored} unchanged={} errors={errors} name_change_confirmed={name_changes}",
                    outcomes.len() - stored,
                ),
            )
        };
        let (outcomes, queued) = self
            .store
            .ingest_with_webhooks(
                (facility_id, person.id),
                self.now().0,
                &batch,
                &payloads,
                event,
            )
            .await?;
        report.webhooks_queued += queued as usize;
        for o in outcomes.iter().take(count) {
            match o {
                IngestOutcome::Stored | IngestOutcome::Replaced => report.dispensings_stored += 1,
                IngestOutcome::Unchanged => report.dispensings_unchanged += 1,
            }
        }
        for data_id in released {
            self.store
                .release_split_parts(facility_id, &data_id)
                .await?;
        }
        Ok(report)
    }

    /// Imports a file that arrived without its card: from a watched folder, or `renkei import
    /// jahis` without `--card`. A part of a split QR code is held until the code is complete.
    /// The card-holder is, in this order:
    /// - the common ID the file name starts with (`34000000018_…`, check digit verified), of a
    ///   person this pharmacy has linked by reading the HM card; or
    /// - the one person this pharmacy has already linked by reading the HM card whose birth date,
    ///   sex and name (kanji or kana, normalised) match the file's patient record (record 1).
    ///
    /// No match, or more than one, refuses the file with a message that names no patient.
    pub async fn import_medication_file(
        &self,
        actor: &Actor,
        file_name: &str,
        bytes: &[u8],
    ) -> Result<MedicationReport> {
        let facility_id = self.pharmacy_of(actor).await?;
        let mut report = MedicationReport::default();
        let files = [(file_name.to_string(), bytes.to_vec())];
        let mut notebooks = Vec::new();
        let mut parts = Vec::new();
        for input in read_inputs(&files, &mut report) {
            match input {
                Input::Whole(name, nb) => notebooks.push((name, nb, None)),
                Input::Part(name, text, split, _) => parts.push((name, text, split)),
            }
        }
        for m in self
            .collect_parts(actor, facility_id, None, parts, &mut report)
            .await?
        {
            notebooks.push((m.name, m.notebook, Some(m.data_id)));
        }
        let stem = std::path::Path::new(file_name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        let prefix: String = stem.chars().take_while(char::is_ascii_digit).collect();
        let named = prefix.len() >= 11 && stem[prefix.len()..].starts_with(['_', '-', '.']);
        for (name, nb, data_id) in notebooks {
            let card = if named {
                renkei_identity::CardPayload::parse(&prefix).map_err(|e| {
                    AppError::Invalid(format!("ファイル名の地域共通IDが正しくありません: {e}"))
                })?;
                prefix.clone()
            } else {
                self.card_holder_of(facility_id, &nb).await?
            };
            let (person, patient) = self.linked_person(facility_id, &card).await?;
            let one = MedicationReport::default();
            let stored = self
                .store_notebooks(
                    actor,
                    (facility_id, &person, &patient),
                    vec![(name, nb, data_id)],
                    MedicationOptions::default(),
                    one,
                )
                .await?;
            report.absorb(stored);
        }
        Ok(report)
    }

    /// The person behind a common ID that this pharmacy has linked (by reading the HM card),
    /// and the pharmacy's patient ID for them; anyone else is refused without saying why.
    async fn linked_person(&self, facility_id: i64, common_id: &str) -> Result<(Person, String)> {
        let unknown = || {
            AppError::Invalid(
                "この薬局でHMカードを読み取った患者ではありません。先にHMカードを読み取ってください".into(),
            )
        };
        let Some(mut person) = self.store.person_by_common_id(common_id).await? else {
            return Err(unknown());
        };
        if let Some(survivor) = person.merged_into {
            person = self.store.person(survivor).await?;
        }
        let link = self
            .store
            .links_of(person.id)
            .await?
            .into_iter()
            .find(|l| l.active && l.facility_id == facility_id)
            .ok_or_else(unknown)?;
        Ok((person, link.patient_local_id))
    }

    /// The common ID of the one person linked at `facility_id` who matches the notebook's
    /// record 1.
    async fn card_holder_of(&self, facility_id: i64, notebook: &Notebook) -> Result<String> {
        use renkei_identity::normalize::{normalize_kana, normalize_name};
        let unmatched = || {
            AppError::Invalid(
                "患者を特定できません。この薬局でHMカードを読み取った患者の氏名・生年月日・性別と一致しないか、複数と一致します。ファイル名の先頭に地域共通IDを付けてください（例: 34000000018_調剤.txt）".into(),
            )
        };
        let Some(patient) = &notebook.patient else {
            return Err(unmatched());
        };
        let Some(birth) = jahis::iso_date(&patient.birth_date) else {
            return Err(unmatched());
        };
        let sex = match patient.sex.trim() {
            "1" => "M",
            "2" => "F",
            _ => return Err(unmatched()),
        };
        let (kanji, kana) = (
            normalize_name(&patient.name),
            normalize_kana(&patient.kana_name),
        );
        if kanji.is_empty() && kana.is_empty() {
            return Err(unmatched());
        }
        let search = renkei_store::identity::PersonSearch {
            birth_date: birth,
            sex: sex.to_string(),
            linked_facility: Some(facility_id),
            exclude_merged: true,
            ..Default::default()
        };
        let found: Vec<_> = self
            .store
            .search_persons(&search, 50)
            .await?
            .into_iter()
            .filter(|p| {
                (!kanji.is_empty() && normalize_name(&p.kanji_name) == kanji)
                    || (!kana.is_empty() && normalize_kana(&p.kana_name) == kana)
            })
            .collect();
        match found.as_slice() {
            [one] => Ok(one.common_id.clone()),
            _ => Err(unmatched()),
        }
    }
}
