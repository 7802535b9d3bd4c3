//! HL7 v2 (JAHIS profiles as stored in SS-MIX2) → [`Mapped`].

use renkei_hl7v2::ssmix2::{KindFit, kind_fit};
use renkei_hl7v2::{Message, Segment};
use serde_json::{Value, json};

use crate::time::hl7_datetime;
use crate::{Category, Coded, Demographics, Item, Mapped};

/// Why a message contributes nothing to the record.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    #[error("the message has no PID segment with a patient ID (PID-3)")]
    NoPatient,
    #[error(
        "message type {0} is not one Renkei keeps (ADT, PPR, RDE, RAS, OMD, OML, OUL, OMG, OMI, ORU)"
    )]
    Unsupported(String),
}

fn text(seg: &Segment<'_>, field: usize) -> String {
    seg.field(field)
        .map(|f| f.text().trim().to_string())
        .unwrap_or_default()
}

fn comp(seg: &Segment<'_>, field: usize, component: usize) -> String {
    seg.field(field)
        .and_then(|f| f.component(component))
        .map(|c| c.text().trim().to_string())
        .unwrap_or_default()
}

/// CWE/CE: components 1–3, or sub-components 1–3 of component 1 when the sender nests them
/// (JAHIS writes TQ1-3 usage codes as `code&text&system`).
fn coded(seg: &Segment<'_>, field: usize) -> Coded {
    let Some(f) = seg.field(field) else {
        return Coded::default();
    };
    let Some(rep) = f.repetition(1) else {
        return Coded::default();
    };
    let first = rep.component(1);
    if let Some(c) = first
        && c.subcomponent(2).is_some()
        && rep.component(2).is_none()
    {
        let sub = |n| {
            c.subcomponent(n)
                .map(|s| {
                    renkei_hl7v2::unescape(s, &renkei_hl7v2::Separators::default()).into_owned()
                })
                .unwrap_or_default()
        };
        return Coded {
            code: sub(1),
            display: sub(2),
            system: sub(3),
        };
    }
    let part = |n| {
        rep.component(n)
            .map(|c| c.text().trim().to_string())
            .unwrap_or_default()
    };
    Coded {
        code: part(1),
        display: part(2),
        system: part(3),
    }
}

/// The alternate coding (components 4–6) of a CWE, if any (local lab codes beside JLAC10).
fn alternate(seg: &Segment<'_>, field: usize) -> Option<Coded> {
    let part = |n| comp(seg, field, n);
    let c = Coded {
        code: part(4),
        display: part(5),
        system: part(6),
    };
    (!c.is_empty()).then_some(c)
}

fn date(seg: &Segment<'_>, field: usize) -> Option<String> {
    hl7_datetime(&comp(seg, field, 1))
}

/// XPN / XCN → "family given" (the ID of an XCN is kept apart by callers).
fn person(seg: &Segment<'_>, field: usize, xcn: bool) -> Value {
    let (family, given) = if xcn {
        (comp(seg, field, 2), comp(seg, field, 3))
    } else {
        (comp(seg, field, 1), comp(seg, field, 2))
    };
    let name = [family, given]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    if xcn {
        let id = comp(seg, field, 1);
        if id.is_empty() && name.is_empty() {
            Value::Null
        } else {
            json!({ "id": id, "name": name })
        }
    } else {
        Value::String(name)
    }
}

fn coded_json(c: &Coded) -> Value {
    if c.is_empty() {
        Value::Null
    } else {
        json!({ "code": c.code, "display": c.display, "system": c.system })
    }
}

/// PID → demographics: the ideographic (I) and phonetic (P) names, birth date, sex, address, phone.
fn demographics(pid: &Segment<'_>) -> Demographics {
    let mut d = Demographics::default();
    if let Some(f) = pid.field(5) {
        for rep in f.repetitions() {
            let part = |n| {
                rep.component(n)
                    .map(|c| c.text().trim().to_string())
                    .unwrap_or_default()
            };
            let name = [part(1), part(2)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            match part(8).as_str() {
                "P" => d.kana_name = name,
                _ if d.kanji_name.is_empty() => d.kanji_name = name,
                _ => {}
            }
        }
    }
    d.birth_date = date(pid, 7);
    d.sex = text(pid, 8);
    if let Some(rep) = pid.field(11).and_then(|f| f.repetition(1)) {
        let part = |n| {
            rep.component(n)
                .map(|c| c.text().trim().to_string())
                .unwrap_or_default()
        };
        d.postal_code = part(5).chars().filter(|c| c.is_ascii_digit()).collect();
        d.address = [part(3), part(4), part(8), part(1), part(2)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("");
    }
    if let Some(f) = pid.field(13) {
        d.phone = f
            .repetitions()
            .find_map(|r| {
                let number = r
                    .component(12)
                    .map(|c| c.text().trim().to_string())
                    .filter(|s| !s.is_empty());
                number.or_else(|| {
                    r.component(1)
                        .map(|c| c.text().trim().to_string())
                        .filter(|s| !s.is_empty())
                })
            })
            .unwrap_or_default();
    }
    d
}

fn item(
    category: Category,
    code: Coded,
    effective: Option<String>,
    status: &str,
    detail: Value,
) -> Item {
    Item {
        category,
        code,
        effective,
        end: None,
        status: status.to_string(),
        detail,
    }
}

/// ADT events → the encounter they record and the field that dates it (standards.md §1.5).
fn encounter_event(event: &str) -> Option<(&'static str, bool, &'static str)> {
    // (event name, is a cancellation, date source)
    Some(match event {
        "A04" => ("outpatient_visit", false, "PV1-44"),
        "A01" => ("admission", false, "PV1-44"),
        "A11" => ("admission", true, "EVN-6"),
        "A14" => ("admission_planned", false, "PV2-8"),
        "A27" => ("admission_planned", true, "PV2-8"),
        "A02" => ("transfer", false, "EVN-6"),
        "A12" => ("transfer", true, "EVN-6"),
        "A15" => ("transfer_planned", false, "PV2-8"),
        "A26" => ("transfer_planned", true, "PV2-8"),
        "A21" => ("leave_of_absence", false, "EVN-6"),
        "A52" => ("leave_of_absence", true, "EVN-6"),
        "A22" => ("return_from_leave", false, "EVN-6"),
        "A53" => ("return_from_leave", true, "PV2-47"),
        "A03" => ("discharge", false, "PV1-45"),
        "A13" => ("discharge", true, "EVN-6"),
        "A16" => ("discharge_planned", false, "PV2-9"),
        "A25" => ("discharge_planned", true, "PV2-9"),
        "A54" => ("attending_change", false, "EVN-6"),
        "A55" => ("attending_change", true, "EVN-6"),
        _ => return None,
    })
}

/// The encounter an ADT event records under a data kind: A11 cancels an admission (ADT-22) or an
/// outpatient visit (ADT-12), and only the kind tells which.
fn kind_encounter(kind: Option<&str>, event: &str) -> Option<(&'static str, bool, &'static str)> {
    let (name, cancelled, source) = encounter_event(event)?;
    match kind {
        Some("ADT-12") => Some(("outpatient_visit", cancelled, source)),
        _ => Some((name, cancelled, source)),
    }
}

/// ADT read as `event` (the data kind's event when the trigger sent, `sent`, deviates).
fn map_adt(m: &Message, kind: Option<&str>, event: &str, sent: &str, out: &mut Mapped) {
    if let Some(pv1) = m.segment("PV1")
        && let Some((name, cancelled, source)) = kind_encounter(kind, event)
    {
        let effective = m
            .raw(source)
            .and_then(hl7_datetime)
            .or_else(|| m.raw("EVN-6").and_then(hl7_datetime))
            .or_else(|| m.raw("EVN-2").and_then(hl7_datetime));
        let location = [comp(&pv1, 3, 1), comp(&pv1, 3, 2), comp(&pv1, 3, 3)];
        let mut detail = json!({
            "event": name,
            "patient_class": text(&pv1, 2),
            "ward": location[0], "room": location[1], "bed": location[2],
            "prior_location": comp(&pv1, 6, 2),
            "attending": person(&pv1, 7, true),
            "department": text(&pv1, 10),
            "discharge_disposition": text(&pv1, 36),
        });
        if sent != event
            && let Value::Object(map) = &mut detail
        {
            map.insert("trigger_sent".into(), Value::String(sent.to_string()));
        }
        let mut it = item(
            Category::Encounter,
            Coded::default(),
            effective,
            if cancelled { "cancelled" } else { "done" },
            detail,
        );
        it.code = Coded {
            code: event.to_string(),
            display: name.to_string(),
            system: "HL70003".to_string(),
        };
        out.items.push(it);
    }
    // Observations carried with demographics (height, weight, blood type).
    for obx in m.segments_named("OBX") {
        out.items.push(observation(
            &obx,
            Category::Observation,
            m.raw("EVN-2").and_then(hl7_datetime),
        ));
    }
    for al1 in m.segments_named("AL1") {
        out.items.push(item(
            Category::Allergy,
            coded(&al1, 3),
            date(&al1, 6),
            "active",
            json!({ "type": coded_json(&coded(&al1, 2)), "severity": coded_json(&coded(&al1, 4)), "reaction": text(&al1, 5), "source": "AL1" }),
        ));
    }
    for iam in m.segments_named("IAM") {
        let action = comp(&iam, 6, 1);
        out.items.push(item(
            Category::Allergy,
            coded(&iam, 3),
            date(&iam, 11),
            if action == "D" { "deleted" } else { "active" },
            json!({
                "type": coded_json(&coded(&iam, 2)),
                "severity": coded_json(&coded(&iam, 4)),
                "reaction": text(&iam, 5),
                "action": action,
                "onset_text": text(&iam, 12),
                "source": "IAM",
            }),
        ));
    }
}

fn map_ppr(m: &Message, out: &mut Mapped) {
    let segments: Vec<Segment<'_>> = m.segments().collect();
    for (i, prb) in segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name() == "PRB")
    {
        // ICD-10 is the PRB-10 repetition whose coding system is I10.
        let icd10 = prb
            .field(10)
            .and_then(|f| {
                f.repetitions()
                    .find(|r| r.component(3).is_some_and(|c| c.as_str() == "I10"))
                    .map(|r| {
                        r.component(1)
                            .map(|c| c.text().into_owned())
                            .unwrap_or_default()
                    })
            })
            .unwrap_or_default();
        let zpr = segments.get(i + 1).filter(|s| s.name() == "ZPR");
        let action = text(prb, 1);
        let mut it = item(
            Category::Diagnosis,
            coded(prb, 3),
            date(prb, 16).or_else(|| date(prb, 7)),
            match action.as_str() {
                "DE" => "deleted",
                _ => "active",
            },
            json!({
                "icd10": icd10,
                "diagnosis_type": comp(prb, 10, 5),
                "main": comp(prb, 18, 1) == "1",
                "outcome": coded_json(&coded(prb, 14)),
                "outcome_date": date(prb, 15),
                "certainty": coded_json(&coded(prb, 25)),
                "recorded": date(prb, 2),
                "onset_text": text(prb, 17),
                "instance_id": text(prb, 4),
                "action": action,
                "modifiers": zpr.map(|z| json!({ "disease": coded_json(&coded(z, 2)), "exchange_code": coded_json(&coded(z, 5)) })),
            }),
        );
        it.end = date(prb, 9);
        out.items.push(it);
    }
}

/// The segments between one ORC and the next, with the ORC itself.
fn orc_groups<'a>(m: &'a Message) -> Vec<Vec<Segment<'a>>> {
    let mut groups: Vec<Vec<Segment<'a>>> = Vec::new();
    for s in m.segments() {
        match s.name() {
            "ORC" => groups.push(vec![s]),
            "MSH" | "PID" | "PV1" | "PV2" | "EVN" | "NTE" if groups.is_empty() => {}
            _ => {
                if let Some(g) = groups.last_mut() {
                    g.push(s);
                } else if matches!(s.name(), "OBR" | "SPM") {
                    groups.push(vec![s]);
                }
            }
        }
    }
    groups
}

fn first<'a>(group: &[Segment<'a>], name: &str) -> Option<Segment<'a>> {
    group.iter().find(|s| s.name() == name).copied()
}

fn map_rde(m: &Message, injection: bool, out: &mut Mapped) {
    for group in orc_groups(m) {
        let Some(orc) = first(&group, "ORC") else {
            continue;
        };
        let Some(rxe) = first(&group, "RXE") else {
            continue;
        };
        let tq1 = first(&group, "TQ1");
        let rxr = first(&group, "RXR");
        let components: Vec<Value> = group
            .iter()
            .filter(|s| s.name() == "RXC")
            .map(|rxc| json!({ "role": text(rxc, 1), "drug": coded_json(&coded(rxc, 2)), "amount": text(rxc, 3), "unit": coded_json(&coded(rxc, 4)) }))
            .collect();
        let injection = injection || !components.is_empty();
        let code = if injection && !components.is_empty() {
            group
                .iter()
                .find(|s| s.name() == "RXC")
                .map(|rxc| coded(rxc, 2))
                .unwrap_or_default()
        } else {
            coded(&rxe, 2)
        };
        let days = tq1.as_ref().and_then(|t| {
            let unit = comp(t, 6, 2);
            let n = comp(t, 6, 1);
            (unit == "d" || unit == "D")
                .then_some(n)
                .filter(|n| !n.is_empty())
        });
        let mut it = item(
            if injection {
                Category::Injection
            } else {
                Category::Prescription
            },
            code,
            tq1.as_ref()
                .and_then(|t| date(t, 7))
                .or_else(|| date(&orc, 9)),
            &text(&orc, 1),
            json!({
                "order_no": comp(&orc, 2, 1),
                "rp": text(&orc, 4),
                "drug": coded_json(&coded(&rxe, 2)),
                "dose": text(&rxe, 3),
                "dose_unit": coded_json(&coded(&rxe, 5)),
                "dosage_form": coded_json(&coded(&rxe, 6)),
                "instructions": coded_json(&coded(&rxe, 7)),
                "dispense_amount": text(&rxe, 10),
                "dispense_unit": coded_json(&coded(&rxe, 11)),
                "daily_dose": comp(&rxe, 19, 1),
                "prescription_no": text(&rxe, 15),
                "category": rxe.field(21).map(|f| f.repetitions().map(|r| r.component(2).map(|c| c.text().into_owned()).unwrap_or_default()).collect::<Vec<_>>()),
                "rate": text(&rxe, 23),
                "rate_unit": coded_json(&coded(&rxe, 24)),
                "usage": tq1.as_ref().map(|t| coded_json(&coded(t, 3))),
                "days": days,
                "route": rxr.as_ref().map(|r| coded_json(&coded(r, 1))),
                "device": rxr.as_ref().map(|r| coded_json(&coded(r, 3))),
                "components": components,
                "prescriber": person(&orc, 12, true),
                "ordered_at": date(&orc, 9),
                "department": coded_json(&coded(&orc, 17)),
            }),
        );
        it.end = tq1.as_ref().and_then(|t| date(t, 8));
        out.items.push(it);
    }
}

fn map_ras(m: &Message, out: &mut Mapped) {
    for group in orc_groups(m) {
        let orc = first(&group, "ORC");
        let rxr = first(&group, "RXR");
        for rxa in group.iter().filter(|s| s.name() == "RXA") {
            let mut it = item(
                Category::Administration,
                coded(rxa, 5),
                date(rxa, 3),
                &text(rxa, 20),
                json!({
                    "order_no": orc.as_ref().map(|o| comp(o, 2, 1)),
                    "amount": text(rxa, 6),
                    "unit": coded_json(&coded(rxa, 7)),
                    "note": coded_json(&coded(rxa, 9)),
                    "administered_by": person(rxa, 10, true),
                    "rate": text(rxa, 12),
                    "route": rxr.as_ref().map(|r| coded_json(&coded(r, 1))),
                    "recorded_at": date(rxa, 22),
                }),
            );
            it.end = date(rxa, 4);
            out.items.push(it);
        }
    }
}

/// One OBX as an observation of `category`.
fn observation(obx: &Segment<'_>, category: Category, fallback: Option<String>) -> Item {
    let value_type = text(obx, 2);
    let value = match value_type.as_str() {
        "CWE" | "CE" => coded_json(&coded(obx, 5)),
        "XCN" => person(obx, 5, true),
        "SN" => {
            let part = |n| comp(obx, 5, n);
            Value::String(format!("{}{}{}{}", part(1), part(2), part(3), part(4)))
        }
        _ => Value::String(text(obx, 5)),
    };
    let numeric = (value_type == "NM")
        .then(|| text(obx, 5).parse::<f64>().ok())
        .flatten();
    item(
        category,
        coded(obx, 3),
        date(obx, 14).or(fallback),
        &text(obx, 11),
        json!({
            "set_id": text(obx, 1),
            "value_type": value_type,
            "value": value,
            "numeric": numeric,
            "unit": coded_json(&coded(obx, 6)),
            "reference_range": text(obx, 7),
            "abnormal": text(obx, 8),
            "local_code": alternate(obx, 3).map(|c| coded_json(&c)),
            "sub_id": text(obx, 4),
        }),
    )
}

fn map_lab(m: &Message, results: bool, out: &mut Mapped) {
    // OML^O33 and OUL^R22: SPM, then ORC/OBR, then OBX; the specimen applies to what follows it.
    let mut specimen: Option<Segment<'_>> = None;
    let mut obr: Option<Segment<'_>> = None;
    let mut orc: Option<Segment<'_>> = None;
    for s in m.segments() {
        match s.name() {
            "SPM" => specimen = Some(s),
            "ORC" => orc = Some(s),
            "OBR" => obr = Some(s),
            "OBX" => {
                let when = specimen
                    .as_ref()
                    .and_then(|sp| date(sp, 17))
                    .or_else(|| obr.as_ref().and_then(|o| date(o, 7)))
                    .or_else(|| orc.as_ref().and_then(|o| date(o, 9)));
                let mut it = observation(
                    &s,
                    if results {
                        Category::LabResult
                    } else {
                        Category::LabOrder
                    },
                    when,
                );
                if let Value::Object(map) = &mut it.detail {
                    map.insert(
                        "specimen".into(),
                        specimen
                            .as_ref()
                            .map(|sp| coded_json(&coded(sp, 4)))
                            .unwrap_or(Value::Null),
                    );
                    map.insert(
                        "order_no".into(),
                        Value::String(
                            orc.as_ref()
                                .or(obr.as_ref())
                                .map(|o| comp(o, 2, 1))
                                .unwrap_or_default(),
                        ),
                    );
                    map.insert(
                        "battery".into(),
                        obr.as_ref()
                            .map(|o| coded_json(&coded(o, 4)))
                            .unwrap_or(Value::Null),
                    );
                    map.insert(
                        "ordering_doctor".into(),
                        obr.as_ref()
                            .map(|o| person(o, 16, true))
                            .unwrap_or(Value::Null),
                    );
                }
                if !results && it.status == "O" {
                    it.status = "ordered".into();
                }
                out.items.push(it);
            }
            _ => {}
        }
    }
}

/// Which kind of examination an OBR code belongs to, by its coding system.
fn exam_kind(system: &str) -> &'static str {
    match system {
        "JJ1017" | "DCM" => "radiology",
        "LENDO" => "endoscopy",
        _ => "physiology",
    }
}

fn map_exam(m: &Message, results: bool, out: &mut Mapped) {
    let segments: Vec<Segment<'_>> = m.segments().collect();
    let mut orc: Option<Segment<'_>> = None;
    let mut i = 0;
    while let Some(s) = segments.get(i) {
        match s.name() {
            "ORC" => orc = Some(*s),
            "OBR" => {
                // The OBR and everything up to the next ORC/OBR belong together.
                let mut observations = Vec::new();
                let mut studies = Vec::new();
                let mut performed = Vec::new();
                let mut j = i + 1;
                while let Some(t) = segments.get(j) {
                    match t.name() {
                        "ORC" | "OBR" => break,
                        "OBX" => {
                            let o = observation(t, Category::ExamResult, None);
                            observations.push(json!({ "code": coded_json(&o.code), "detail": o.detail }));
                        }
                        "IPC" => studies.push(json!({ "accession": text(t, 1), "procedure_id": text(t, 2), "study_instance_uid": text(t, 3), "modality": comp(t, 5, 1) })),
                        "ZE1" => performed.push(coded_json(&coded(t, 3))),
                        _ => {}
                    }
                    j += 1;
                }
                let code = coded(s, 4);
                let order_control = orc.as_ref().map(|o| text(o, 1)).unwrap_or_default();
                let when = date(s, 7).or_else(|| orc.as_ref().and_then(|o| date(o, 9)));
                let mut it = item(
                    if results {
                        Category::ExamResult
                    } else {
                        Category::ExamOrder
                    },
                    code.clone(),
                    when,
                    &if results {
                        text(s, 25)
                    } else {
                        order_control.clone()
                    },
                    json!({
                        "kind": exam_kind(&code.system),
                        "order_no": orc.as_ref().map(|o| comp(o, 2, 1)).unwrap_or_else(|| comp(s, 2, 1)),
                        "parent_order_no": comp(s, 29, 1),
                        "order_control": order_control,
                        "ordering_doctor": person(s, 16, true),
                        "reported_at": date(s, 22),
                        "observations": observations,
                        "studies": studies,
                        "performed": performed,
                    }),
                );
                if it.status.is_empty() {
                    it.status = if results { "F".into() } else { "NW".into() };
                }
                out.items.push(it);
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

fn map_omd(m: &Message, out: &mut Mapped) {
    for group in orc_groups(m) {
        let Some(orc) = first(&group, "ORC") else {
            continue;
        };
        let tq1 = first(&group, "TQ1");
        for ods in group.iter().filter(|s| s.name() == "ODS") {
            out.items.push(item(
                Category::Diet,
                coded(ods, 3),
                tq1.as_ref()
                    .and_then(|t| date(t, 7))
                    .or_else(|| date(&orc, 9)),
                &text(&orc, 1),
                json!({
                    "type": text(ods, 1),
                    "instructions": text(ods, 4),
                    "timing": tq1.as_ref().map(|t| coded_json(&coded(t, 3))),
                    "order_no": comp(&orc, 2, 1),
                    "orderer": person(&orc, 12, true),
                }),
            ));
        }
    }
}

/// Maps one message. `data_kind` is the SS-MIX2 data kind when the message came from a storage
/// (it tells prescriptions from injections for RDE^O11); `None` for live feeds. Under a data
/// kind, the kind decides what the content is when the message type deviates from the
/// guideline's (`ssmix2::kind_fit`): ADT^A01 in an ADT-12 file is an outpatient visit.
pub fn map_message(m: &Message, data_kind: Option<&str>) -> Result<Mapped, MapError> {
    let pid = m.segment("PID").ok_or(MapError::NoPatient)?;
    let patient_id = comp(&pid, 3, 1);
    if patient_id.is_empty() {
        return Err(MapError::NoPatient);
    }
    let (sent_code, sent_event) = m.message_type();
    let (code, event) = match data_kind.map(|k| kind_fit(k, sent_code, sent_event)) {
        Some(KindFit::OtherTrigger { as_event }) => (sent_code, as_event),
        Some(KindFit::OtherCode { code, event }) => (code, event),
        _ => (sent_code, sent_event),
    };
    let mut out = Mapped {
        patient_id,
        message_type: format!("{sent_code}^{sent_event}"),
        control_id: m.control_id().to_string(),
        demographics: None,
        items: Vec::new(),
        warnings: m.warnings().iter().map(ToString::to_string).collect(),
        skipped_segments: 0,
    };
    match code {
        "ADT" => {
            out.demographics = Some(demographics(&pid));
            map_adt(m, data_kind, event, sent_event, &mut out);
        }
        "PPR" => map_ppr(m, &mut out),
        "RDE" => map_rde(m, data_kind == Some("OMP-02"), &mut out),
        "RAS" => map_ras(m, &mut out),
        "OMD" => map_omd(m, &mut out),
        "OML" => map_lab(m, false, &mut out),
        "OUL" => map_lab(m, true, &mut out),
        "OMG" => map_exam(m, false, &mut out),
        "OMI" | "ORU" => {
            // ORU^R01 with JC10 physiology codes is an examination result; lab results come as OUL.
            map_exam(m, true, &mut out)
        }
        _ => return Err(MapError::Unsupported(format!("{sent_code}^{sent_event}"))),
    }
    // A segment with nothing to say (no code: `RXA` alone, an OBX without OBX-3) is not a record
    // entry; say so rather than keep an empty row.
    let before = out.items.len();
    out.items.retain(|i| {
        !i.code.is_empty() || matches!(i.category, Category::Encounter | Category::Diet)
    });
    let dropped = before - out.items.len();
    out.skipped_segments = dropped;
    if dropped > 0 {
        out.warnings
            .push(format!("{dropped} segment(s) without a code were skipped"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adt(event: &str) -> Message {
        Message::parse(&format!(
            "MSH|^~\\&|HIS|S|GW|R|20260105091000||ADT^{event}^ADT_A01|1|P|2.5\rEVN||202601050910\rPID|0001||0001900001^^^^PI||架空^一郎\rPV1|0001|O|01{}202601050910\r",
            "|".repeat(41)
        ))
        .unwrap()
    }

    fn encounter(m: &Mapped) -> &Item {
        m.items
            .iter()
            .find(|i| i.category == Category::Encounter)
            .unwrap()
    }

    #[test]
    fn the_data_kind_decides_what_an_adt_records() {
        let visit = map_message(&adt("A01"), Some("ADT-12")).unwrap();
        let e = encounter(&visit);
        assert_eq!(
            (e.code.code.as_str(), e.code.display.as_str()),
            ("A04", "outpatient_visit")
        );
        assert_eq!(
            (e.status.as_str(), e.detail["trigger_sent"].as_str()),
            ("done", Some("A01"))
        );
        assert_eq!(e.effective.as_deref(), Some("2026-01-05T09:10"), "PV1-44");
        assert_eq!(visit.message_type, "ADT^A01", "the type as sent");
        // A cancellation under ADT-12 cancels the visit, not an admission.
        let cancel = map_message(&adt("A11"), Some("ADT-12")).unwrap();
        let e = encounter(&cancel);
        assert_eq!(
            (e.code.display.as_str(), e.status.as_str()),
            ("outpatient_visit", "cancelled")
        );
        assert!(e.detail.get("trigger_sent").is_none());
        // Without a kind (a live feed), the trigger decides.
        let live = map_message(&adt("A01"), None).unwrap();
        assert_eq!(encounter(&live).code.display, "admission");
    }

    #[test]
    fn oru_lab_results_under_oml_11_are_lab_results() {
        let m = Message::parse(
            "MSH|^~\\&|HIS|S|GW|R|20260105120000||ORU^R01^ORU_R01|3|P|2.5\rPID|0001||0001900001^^^^PI\rOBR|1|000000000000003||00001^生化学^99L01|||202601050930\rOBX|1|NM|3D010000001926101^グルコース^JC10||105|mg/dL|73-109|N|||F\r",
        )
        .unwrap();
        let lab = map_message(&m, Some("OML-11")).unwrap();
        assert_eq!(lab.items.len(), 1);
        assert_eq!(lab.items[0].category, Category::LabResult);
        let exam = map_message(&m, Some("OMG-13")).unwrap();
        assert_eq!(exam.items[0].category, Category::ExamResult);
    }
}
