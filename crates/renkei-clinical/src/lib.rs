//! The clinical record of one facility's patient, as values, and the mapping of HL7 v2 messages
//! (SS-MIX2 data kinds, JAHIS conventions) into it.
//!
//! Architecture invariant: no IO, no panics on input. A message maps to a [`Mapped`]: the
//! patient's demographics when the message carries them, and [`Item`]s with a category, a code,
//! dates and a JSON detail. The original bytes are kept by the store beside the items, so a better
//! mapping can be replayed later.

pub mod clins;
pub mod clins_document;
pub mod fhir;
pub mod fhir_search;
pub mod fhir_write;
pub mod jahis;
pub mod jlac10;
mod map;
mod time;
pub mod units;
pub mod view;

use serde::Serialize;

pub use map::{MapError, map_message};
pub use time::hl7_datetime;

/// What the integrated viewer groups by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Visits, admissions, transfers, leaves, discharges (入退院).
    Encounter,
    /// 病名.
    Diagnosis,
    /// アレルギー.
    Allergy,
    /// 処方 (RDE for oral and external medicines).
    Prescription,
    /// 注射 (RDE for injections).
    Injection,
    /// 実施 (RAS): a medicine given.
    Administration,
    /// 検体検査オーダ.
    LabOrder,
    /// 検体検査結果.
    LabResult,
    /// 放射線・内視鏡・生理検査オーダ.
    ExamOrder,
    /// 放射線・内視鏡・生理検査 実施・結果.
    ExamResult,
    /// 食事オーダ.
    Diet,
    /// Height, weight, blood type and other patient observations from ADT.
    Observation,
    /// 文書 (summaries, referral letters, reports).
    Document,
}

impl Category {
    pub fn key(self) -> &'static str {
        match self {
            Category::Encounter => "encounter",
            Category::Diagnosis => "diagnosis",
            Category::Allergy => "allergy",
            Category::Prescription => "prescription",
            Category::Injection => "injection",
            Category::Administration => "administration",
            Category::LabOrder => "lab_order",
            Category::LabResult => "lab_result",
            Category::ExamOrder => "exam_order",
            Category::ExamResult => "exam_result",
            Category::Diet => "diet",
            Category::Observation => "observation",
            Category::Document => "document",
        }
    }
}

/// A coded value: code, display text, coding system (`JC10`, `HOT9`, `MDCDX2`, `I10`, …).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Coded {
    pub code: String,
    pub display: String,
    pub system: String,
}

impl Coded {
    pub fn is_empty(&self) -> bool {
        self.code.is_empty() && self.display.is_empty()
    }
}

/// One entry of the clinical record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Item {
    pub category: Category,
    pub code: Coded,
    /// `YYYY-MM-DDTHH:MM[:SS]` as the sender gave it (local time), or a date `YYYY-MM-DD`.
    pub effective: Option<String>,
    pub end: Option<String>,
    /// Order or result status as sent (`NW`, `CM`, `F`, `cancelled`, …).
    pub status: String,
    /// Everything else, per category.
    pub detail: serde_json::Value,
}

impl Item {
    /// The calendar day of the item (`YYYY-MM-DD`).
    pub fn effective_date(&self) -> Option<&str> {
        self.effective.as_deref().and_then(|e| e.get(..10))
    }
}

/// Who the patient is, as the sending facility records them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Demographics {
    pub kanji_name: String,
    pub kana_name: String,
    /// `YYYY-MM-DD`.
    pub birth_date: Option<String>,
    /// HL7 table 0001: `M`, `F`, `O`, `U`.
    pub sex: String,
    pub postal_code: String,
    pub address: String,
    pub phone: String,
}

/// What one message contributes to the record.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mapped {
    /// PID-3 as sent.
    pub patient_id: String,
    pub message_type: String,
    pub control_id: String,
    pub demographics: Option<Demographics>,
    pub items: Vec<Item>,
    /// Deviations worth reporting (not fatal).
    pub warnings: Vec<String>,
    /// Segments without a code that were left out (said among `warnings` too, so not repeated
    /// when serialized).
    #[serde(skip)]
    pub skipped_segments: usize,
}
