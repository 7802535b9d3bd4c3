//! What the integrated viewer (統合参照Viewer) shows, computed from the items a viewer may see:
//! the calendar (dates × categories, marked per facility), the time line, lab results as a table
//! harmonised by JLAC10 with a trend for any row, and the one-page minimum data (ミニマムデータ).
//! Pure: the caller has already applied consent; nothing here can add an item.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use crate::jlac10;

/// The calendar's rows, in HM-net's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CalendarRow {
    Encounter,
    Lab,
    Prescription,
    Injection,
    Allergy,
    Contraindication,
    Diagnosis,
    Admission,
    Discharge,
    Surgery,
    Procedure,
    Document,
    Image,
}

impl CalendarRow {
    pub const ALL: [CalendarRow; 13] = [
        CalendarRow::Encounter,
        CalendarRow::Lab,
        CalendarRow::Prescription,
        CalendarRow::Injection,
        CalendarRow::Allergy,
        CalendarRow::Contraindication,
        CalendarRow::Diagnosis,
        CalendarRow::Admission,
        CalendarRow::Discharge,
        CalendarRow::Surgery,
        CalendarRow::Procedure,
        CalendarRow::Document,
        CalendarRow::Image,
    ];

    pub fn label(self) -> &'static str {
        match self {
            CalendarRow::Encounter => "入退院",
            CalendarRow::Lab => "検査",
            CalendarRow::Prescription => "処方",
            CalendarRow::Injection => "注射",
            CalendarRow::Allergy => "アレルギー",
            CalendarRow::Contraindication => "禁忌",
            CalendarRow::Diagnosis => "病名",
            CalendarRow::Admission => "入院",
            CalendarRow::Discharge => "退院",
            CalendarRow::Surgery => "手術",
            CalendarRow::Procedure => "処置",
            CalendarRow::Document => "文書",
            CalendarRow::Image => "画像",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            CalendarRow::Encounter => "encounter",
            CalendarRow::Lab => "lab",
            CalendarRow::Prescription => "prescription",
            CalendarRow::Injection => "injection",
            CalendarRow::Allergy => "allergy",
            CalendarRow::Contraindication => "contraindication",
            CalendarRow::Diagnosis => "diagnosis",
            CalendarRow::Admission => "admission",
            CalendarRow::Discharge => "discharge",
            CalendarRow::Surgery => "surgery",
            CalendarRow::Procedure => "procedure",
            CalendarRow::Document => "document",
            CalendarRow::Image => "image",
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.key() == key)
    }
}

/// One item as the viewer needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct ViewItem {
    pub id: i64,
    pub facility: i64,
    /// `renkei-clinical`'s category key (`lab_result`, `prescription`, …).
    pub category: String,
    /// `YYYY-MM-DD`.
    pub date: Option<String>,
    pub code: String,
    pub code_system: String,
    pub display: String,
    pub status: String,
    /// When it ended (a diagnosis's end date), if it has.
    pub end: Option<String>,
    pub detail: Value,
}

/// The calendar row of an item of `category` (with `code`, which tells admissions and
/// discharges among encounters).
pub fn row_of(category: &str, code: &str) -> Option<CalendarRow> {
    Some(match category {
        "encounter" => match code {
            "A01" => CalendarRow::Admission,
            "A03" => CalendarRow::Discharge,
            _ => CalendarRow::Encounter,
        },
        "diet" => CalendarRow::Encounter,
        "lab_order" | "lab_result" | "observation" => CalendarRow::Lab,
        "prescription" => CalendarRow::Prescription,
        "injection" | "administration" => CalendarRow::Injection,
        "allergy" => CalendarRow::Allergy,
        "contraindication" => CalendarRow::Contraindication,
        "diagnosis" => CalendarRow::Diagnosis,
        "surgery" => CalendarRow::Surgery,
        "procedure" => CalendarRow::Procedure,
        "document" => CalendarRow::Document,
        "exam_order" | "exam_result" | "image" => CalendarRow::Image,
        _ => return None,
    })
}

/// The clinical categories (and, for admissions and discharges, event codes) of a row.
pub fn categories_of(row: CalendarRow) -> (&'static [&'static str], Option<&'static str>) {
    match row {
        CalendarRow::Encounter => (&["encounter", "diet"], None),
        CalendarRow::Admission => (&["encounter"], Some("A01")),
        CalendarRow::Discharge => (&["encounter"], Some("A03")),
        CalendarRow::Lab => (&["lab_order", "lab_result", "observation"], None),
        CalendarRow::Prescription => (&["prescription"], None),
        CalendarRow::Injection => (&["injection", "administration"], None),
        CalendarRow::Allergy => (&["allergy"], None),
        CalendarRow::Contraindication => (&["contraindication"], None),
        CalendarRow::Diagnosis => (&["diagnosis"], None),
        CalendarRow::Surgery => (&["surgery"], None),
        CalendarRow::Procedure => (&["procedure"], None),
        CalendarRow::Document => (&["document"], None),
        CalendarRow::Image => (&["exam_order", "exam_result", "image"], None),
    }
}

impl ViewItem {
    /// The calendar row of the item.
    pub fn row(&self) -> Option<CalendarRow> {
        row_of(&self.category, &self.code)
    }

    fn text(&self, key: &str) -> String {
        match self.detail.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        }
    }

    fn coded_text(&self, key: &str) -> String {
        self.detail
            .get(key)
            .and_then(|c| c.get("display").or_else(|| c.get("code")))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }
}

/// For each day of a month, which facilities have items in which rows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calendar {
    /// `YYYY-MM` months that have any item, newest first.
    pub months: Vec<String>,
    /// The month shown.
    pub month: String,
    /// Days in that month.
    pub days: u32,
    /// (row, day 1-based) → facilities with items there.
    pub marks: BTreeMap<(CalendarRow, u32), BTreeSet<i64>>,
}

fn days_in(month: &str) -> u32 {
    let y: i32 = month.get(..4).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let m: u32 = month.get(5..7).and_then(|s| s.parse().ok()).unwrap_or(1);
    match m {
        4 | 6 | 9 | 11 => 30,
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// The calendar of `month` (`YYYY-MM`; the newest month with data when `None`).
pub fn calendar(items: &[ViewItem], month: Option<&str>) -> Calendar {
    let entries: Vec<(i64, CalendarRow, &str)> = items
        .iter()
        .filter_map(|i| Some((i.facility, i.row()?, i.date.as_deref()?)))
        .collect();
    calendar_of(&entries, month)
}

/// The calendar from (facility, row, `YYYY-MM-DD`) entries, e.g. day groups counted by the
/// store rather than single items.
pub fn calendar_of(entries: &[(i64, CalendarRow, &str)], month: Option<&str>) -> Calendar {
    let months: BTreeSet<&str> = entries.iter().filter_map(|e| e.2.get(..7)).collect();
    let months: Vec<String> = months.into_iter().rev().map(str::to_string).collect();
    let month = month
        .filter(|m| m.len() == 7)
        .map(str::to_string)
        .or_else(|| months.first().cloned())
        .unwrap_or_default();
    let mut marks: BTreeMap<(CalendarRow, u32), BTreeSet<i64>> = BTreeMap::new();
    for (facility, row, date) in entries {
        if date.get(..7) != Some(month.as_str()) {
            continue;
        }
        if let Some(day) = date.get(8..10).and_then(|d| d.parse::<u32>().ok()) {
            marks.entry((*row, day)).or_default().insert(*facility);
        }
    }
    Calendar {
        days: days_in(&month),
        months,
        month,
        marks,
    }
}

/// Items by day, newest first (undated items last), optionally only one day or one row.
pub fn timeline<'a>(
    items: &'a [ViewItem],
    day: Option<&str>,
    row: Option<CalendarRow>,
) -> Vec<(String, Vec<&'a ViewItem>)> {
    let mut by_day: BTreeMap<String, Vec<&ViewItem>> = BTreeMap::new();
    for item in items {
        if row.is_some_and(|r| item.row() != Some(r)) {
            continue;
        }
        let date = item.date.clone().unwrap_or_default();
        if day.is_some_and(|d| d != date) {
            continue;
        }
        by_day.entry(date).or_default().push(item);
    }
    let mut out: Vec<(String, Vec<&ViewItem>)> = by_day.into_iter().rev().collect();
    // Undated ("") sorts first in a BTreeMap; show it last.
    if out.last().is_some_and(|(d, _)| !d.is_empty())
        && let Some(pos) = out.iter().position(|(d, _)| d.is_empty())
    {
        let undated = out.remove(pos);
        out.push(undated);
    }
    out
}

/// One lab value.
#[derive(Clone, Debug, PartialEq)]
pub struct LabCell {
    pub value: String,
    pub numeric: Option<f64>,
    /// `H`, `L` or another abnormal flag; empty when normal.
    pub flag: String,
    pub facility: i64,
}

/// One harmonised row.
#[derive(Clone, Debug, PartialEq)]
pub struct LabRow {
    /// `core:TP`, `jlac10:…`, or `local:<facility>:<code>`.
    pub key: String,
    pub name: String,
    pub unit: String,
    pub reference: String,
    /// date → values that day (several facilities may report one).
    pub cells: BTreeMap<String, Vec<LabCell>>,
}

/// Lab results as items × dates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LabTable {
    /// Dates with any result, newest first.
    pub dates: Vec<String>,
    /// Core-set items first (in the set's order), then other JLAC10 rows, then local ones.
    pub rows: Vec<LabRow>,
}

/// The harmonised row key of a lab result. `local_map` maps `(facility, local code)` to the
/// JLAC10 code the operator chose.
pub fn lab_key(item: &ViewItem, local_map: &HashMap<(i64, String), String>) -> String {
    let jlac = if item.code_system == "JC10" || jlac10::is_jlac10(&item.code) {
        Some(item.code.clone())
    } else {
        local_map.get(&(item.facility, item.code.clone())).cloned()
    };
    jlac.as_deref()
        .and_then(jlac10::harmonised_key)
        .unwrap_or_else(|| format!("local:{}:{}", item.facility, item.code))
}

fn flag_of(item: &ViewItem, numeric: Option<f64>, reference: &str) -> String {
    let given = item.text("abnormal");
    if !given.is_empty() && given != "N" {
        return given;
    }
    // No flag sent: compare with the reference range (`low-high`).
    if let (Some(v), Some((lo, hi))) = (numeric, reference.split_once('-')) {
        let (lo, hi) = (lo.trim().parse::<f64>().ok(), hi.trim().parse::<f64>().ok());
        if lo.is_some_and(|lo| v < lo) {
            return "L".into();
        }
        if hi.is_some_and(|hi| v > hi) {
            return "H".into();
        }
    }
    String::new()
}

/// A lab result's abnormal flag (`H`, `L`, …; empty when normal or unknown): the one sent, else
/// from its reference range. For the time line, as the lab table marks it.
pub fn abnormal_flag(item: &ViewItem) -> String {
    let numeric = item.detail.get("numeric").and_then(Value::as_f64);
    flag_of(item, numeric, &item.text("reference_range"))
}

/// The lab table of the results among `items`.
pub fn lab_table(items: &[ViewItem], local_map: &HashMap<(i64, String), String>) -> LabTable {
    let mut rows: HashMap<String, LabRow> = HashMap::new();
    let mut dates: BTreeSet<String> = BTreeSet::new();
    for item in items.iter().filter(|i| i.category == "lab_result") {
        let Some(date) = item.date.clone() else {
            continue;
        };
        let key = lab_key(item, local_map);
        let reference = item.text("reference_range");
        let numeric = item.detail.get("numeric").and_then(Value::as_f64);
        let value = match item.detail.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Number(_)) => v.to_string(),
            Some(Value::Object(o)) => o
                .get("display")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        };
        let unit = item.coded_text("unit");
        let core = key
            .strip_prefix("core:")
            .and_then(|k| jlac10::core_items().iter().find(|c| c.key == k));
        let flag = flag_of(item, numeric, &reference);
        // The row's unit: the core set's, else the first result's. A result in another unit is
        // converted when UCUM says how, else it gets a row of its own under its own unit.
        let row_unit = core
            .map(|c| c.unit.to_string())
            .filter(|u| !u.is_empty())
            .or_else(|| rows.get(&key).map(|r| r.unit.clone()))
            .unwrap_or_else(|| unit.clone());
        let (key, shown_unit, value, numeric, converted) =
            fit_unit(&key, (&unit, &row_unit), value, numeric);
        let row = rows.entry(key.clone()).or_insert_with(|| LabRow {
            key: key.clone(),
            name: core.map_or_else(|| item.display.clone(), |c| c.name.to_string()),
            unit: shown_unit,
            reference: String::new(),
            cells: BTreeMap::new(),
        });
        // A reference range is shown only in the unit it was written in.
        if row.reference.is_empty() && !converted {
            row.reference = reference.clone();
        }
        row.cells.entry(date.clone()).or_default().push(LabCell {
            flag,
            value,
            numeric,
            facility: item.facility,
        });
        dates.insert(date);
    }
    let order = |key: &str| -> (u8, usize, String) {
        if let Some(k) = key.strip_prefix("core:") {
            // A row of another unit (`core:WBC|10*3/uL`) follows its item's row.
            let base = k.split('|').next().unwrap_or(k);
            let at = jlac10::core_items()
                .iter()
                .position(|c| c.key == base)
                .unwrap_or(usize::MAX);
            (0, at, key.to_string())
        } else if key.starts_with("jlac10:") {
            (1, 0, key.to_string())
        } else {
            (2, 0, key.to_string())
        }
    };
    let mut rows: Vec<LabRow> = rows.into_values().collect();
    rows.sort_by_key(|r| order(&r.key));
    LabTable {
        dates: dates.into_iter().rev().collect(),
        rows,
    }
}

/// A result placed under a row's unit: `(row key, row unit, value, numeric, converted)`. Same
/// unit (however written), or none given: as it is. Convertible: converted. Otherwise: a row of
/// its own (`key|unit`) under its own unit.
fn fit_unit(
    key: &str,
    (unit, row_unit): (&str, &str),
    value: String,
    numeric: Option<f64>,
) -> (String, String, String, Option<f64>, bool) {
    if unit.is_empty() || row_unit.is_empty() || unit == row_unit {
        let shown = if row_unit.is_empty() { unit } else { row_unit };
        return (key.to_string(), shown.to_string(), value, numeric, false);
    }
    match crate::units::factor(unit, row_unit) {
        Some(f) if (f - 1.0).abs() < 1e-12 => {
            (key.to_string(), row_unit.to_string(), value, numeric, false)
        }
        Some(f) => match numeric {
            Some(n) => {
                let v = crate::units::apply(n, f);
                (
                    key.to_string(),
                    row_unit.to_string(),
                    crate::units::format_value(v),
                    Some(v),
                    true,
                )
            }
            None => (
                format!("{key}|{unit}"),
                unit.to_string(),
                value,
                numeric,
                false,
            ),
        },
        None => (
            format!("{key}|{unit}"),
            unit.to_string(),
            value,
            numeric,
            false,
        ),
    }
}

/// The numeric values of one harmonised row, oldest first, for a trend chart.
pub fn trend(table: &LabTable, key: &str) -> Vec<(String, f64)> {
    table
        .rows
        .iter()
        .find(|r| r.key == key)
        .map(|r| {
            r.cells
                .iter()
                .filter_map(|(d, cells)| {
                    cells.iter().find_map(|c| c.numeric).map(|v| (d.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The one-page emergency summary.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MinimumData {
    /// The latest visits and admissions (date, what, facility).
    pub visits: Vec<(String, String, i64)>,
    pub allergies: Vec<(String, i64)>,
    pub contraindications: Vec<(String, i64)>,
    /// Medicines whose last prescription covers `today` or ended within 90 days
    /// (name, dose and usage, last date, facility).
    pub medicines: Vec<(String, String, String, i64)>,
    /// Diagnoses not ended (name, since, facility).
    pub diagnoses: Vec<(String, String, i64)>,
}

fn days_between(from: &str, to: &str) -> Option<i64> {
    fn day_number(d: &str) -> Option<i64> {
        let y: i64 = d.get(..4)?.parse().ok()?;
        let m: i64 = d.get(5..7)?.parse().ok()?;
        let dd: i64 = d.get(8..10)?.parse().ok()?;
        // Days from civil (Howard Hinnant).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (m + 9) % 12;
        let doy = (153 * mp + 2) / 5 + dd - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        Some(era * 146_097 + doe)
    }
    Some(day_number(to)? - day_number(from)?)
}

/// The minimum data as of `today` (`YYYY-MM-DD`).
pub fn minimum_data(items: &[ViewItem], today: &str) -> MinimumData {
    let mut out = MinimumData::default();
    let mut visits: Vec<&ViewItem> = items
        .iter()
        .filter(|i| i.category == "encounter" && i.date.is_some() && i.status != "cancelled")
        .collect();
    visits.sort_by(|a, b| b.date.cmp(&a.date));
    out.visits = visits
        .into_iter()
        .take(5)
        .map(|i| {
            (
                i.date.clone().unwrap_or_default(),
                encounter_label(&i.display).to_string(),
                i.facility,
            )
        })
        .collect();
    for i in items {
        match i.category.as_str() {
            "allergy" => {
                let name = if i.display.is_empty() {
                    i.code.clone()
                } else {
                    i.display.clone()
                };
                if !out.allergies.iter().any(|(n, _)| *n == name) {
                    out.allergies.push((name, i.facility));
                }
            }
            "contraindication" => out.contraindications.push((i.display.clone(), i.facility)),
            "diagnosis" => {
                let ended = i.end.as_deref().is_some_and(|e| !e.is_empty());
                if !ended && !out.diagnoses.iter().any(|(n, _, _)| *n == i.display) {
                    out.diagnoses.push((
                        i.display.clone(),
                        i.date.clone().unwrap_or_default(),
                        i.facility,
                    ));
                }
            }
            _ => {}
        }
    }
    // Current medicines: the latest prescription of each drug, if it still runs or ended
    // within 90 days.
    let mut latest: HashMap<String, &ViewItem> = HashMap::new();
    // A notebook's own records (memos, OTC medicines, …) are not prescriptions that run.
    for i in items
        .iter()
        .filter(|i| i.category == "prescription" && i.text("source") != "jahis-notebook")
    {
        let name = if i.display.is_empty() {
            i.code.clone()
        } else {
            i.display.clone()
        };
        match latest.get(&name) {
            Some(prev) if prev.date >= i.date => {}
            _ => {
                latest.insert(name, i);
            }
        }
    }
    let mut medicines: Vec<(String, String, String, i64)> = latest
        .into_iter()
        .filter_map(|(name, i)| {
            let date = i.date.clone()?;
            let days: i64 = i.text("days").parse().unwrap_or(0);
            let since = days_between(&date, today)?;
            (since <= days + 90 && since >= 0).then(|| {
                let dose = format!(
                    "{}{} {}",
                    i.text("dose"),
                    i.coded_text("dose_unit"),
                    i.detail
                        .get("usage")
                        .and_then(|u| u.get("display"))
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                );
                (name, dose.trim().to_string(), date, i.facility)
            })
        })
        .collect();
    medicines.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
    out.medicines = medicines;
    out.diagnoses.sort_by(|a, b| b.1.cmp(&a.1));
    out
}

/// An encounter's event in words (外来受診, 入院, 退院, …); anything else as given.
pub fn encounter_label(event: &str) -> &str {
    match event {
        "outpatient_visit" => "外来受診",
        "admission" => "入院",
        "admission_planned" => "入院予定",
        "transfer" => "転科・転棟",
        "transfer_planned" => "転科・転棟予定",
        "leave_of_absence" => "外出・外泊",
        "return_from_leave" => "外出・外泊からの帰院",
        "discharge" => "退院",
        "discharge_planned" => "退院予定",
        "attending_change" => "担当医の変更",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lab(
        id: i64,
        facility: i64,
        code: &str,
        system: &str,
        date: &str,
        value: f64,
        range: &str,
    ) -> ViewItem {
        ViewItem {
            id,
            facility,
            category: "lab_result".into(),
            date: Some(date.into()),
            code: code.into(),
            code_system: system.into(),
            display: "AST".into(),
            status: "F".into(),
            end: None,
            detail: json!({ "value": value.to_string(), "numeric": value, "reference_range": range, "abnormal": "", "unit": { "code": "U/L" } }),
        }
    }

    #[test]
    fn labs_from_two_hospitals_line_up_and_local_codes_map() {
        let items = vec![
            lab(
                1,
                1,
                "3B035000002327201",
                "JC10",
                "2026-10-01",
                24.0,
                "13-30",
            ),
            lab(
                2,
                2,
                "3B035000002399901",
                "JC10",
                "2026-11-01",
                45.0,
                "13-30",
            ),
            lab(3, 3, "K-AST", "99XYZ", "2026-11-15", 20.0, "13-30"),
            lab(4, 3, "K-ZZZ", "99XYZ", "2026-11-15", 1.0, ""),
        ];
        let mut map = HashMap::new();
        map.insert((3, "K-AST".to_string()), "3B035000002327201".to_string());
        let t = lab_table(&items, &map);
        assert_eq!(t.dates, vec!["2026-11-15", "2026-11-01", "2026-10-01"]);
        assert_eq!(t.rows[0].key, "core:AST");
        assert_eq!(t.rows[0].cells.len(), 3, "three facilities, one row");
        assert_eq!(t.rows[0].cells["2026-11-01"][0].flag, "H");
        assert_eq!(t.rows[1].key, "local:3:K-ZZZ");
        assert_eq!(
            trend(&t, "core:AST"),
            vec![
                ("2026-10-01".to_string(), 24.0),
                ("2026-11-01".to_string(), 45.0),
                ("2026-11-15".to_string(), 20.0)
            ]
        );
    }

    #[test]
    fn each_result_is_shown_in_its_own_unit_or_converted_never_under_a_wrong_header() {
        let wbc = |id: i64, facility: i64, date: &str, value: f64, unit: &str| {
            let mut i = lab(id, facility, "2A010000001930101", "JC10", date, value, "");
            i.detail["unit"] = json!({ "code": unit });
            i
        };
        let items = vec![
            wbc(1, 1, "2026-10-01", 6200.0, "/mm3"),
            // The case that was shown as 5.3 /mm3: 10³/µL is converted to 5300 /mm3.
            wbc(2, 2, "2026-11-01", 5.3, "10³/µL"),
            wbc(3, 3, "2026-11-15", 48.0, "×10²/μL"),
            // A unit UCUM cannot relate to counts: a row of its own, under its own unit.
            wbc(4, 3, "2026-11-20", 3.0, "+"),
        ];
        let t = lab_table(&items, &HashMap::new());
        let row = t.rows.iter().find(|r| r.key == "core:WBC").unwrap();
        assert_eq!(row.unit, "/mm3");
        assert_eq!(row.cells["2026-11-01"][0].value, "5300");
        assert_eq!(row.cells["2026-11-01"][0].numeric, Some(5300.0));
        assert_eq!(row.cells["2026-11-15"][0].value, "4800");
        let apart = t.rows.iter().find(|r| r.key == "core:WBC|+").unwrap();
        assert_eq!(
            (apart.unit.as_str(), apart.name.as_str()),
            ("+", "白血球数")
        );
        assert_eq!(t.rows[0].key, "core:WBC", "the item's own row first");
        assert_eq!(t.rows[1].key, "core:WBC|+", "its other unit right after it");
    }

    #[test]
    fn the_calendar_marks_rows_per_facility() {
        let mut admission = lab(9, 2, "A01", "HL70003", "2026-11-03", 0.0, "");
        admission.category = "encounter".into();
        let items = vec![
            lab(1, 1, "3B035000002327201", "JC10", "2026-11-01", 24.0, ""),
            lab(2, 2, "3B035000002327201", "JC10", "2026-11-01", 24.0, ""),
            lab(3, 1, "3B035000002327201", "JC10", "2026-10-20", 24.0, ""),
            admission,
        ];
        let c = calendar(&items, None);
        assert_eq!(c.months, vec!["2026-11", "2026-10"]);
        assert_eq!(c.month, "2026-11");
        assert_eq!(c.days, 30);
        assert_eq!(c.marks[&(CalendarRow::Lab, 1)].len(), 2);
        assert!(c.marks.contains_key(&(CalendarRow::Admission, 3)));
        let t = timeline(&items, Some("2026-11-01"), None);
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].1.len(), 2);
    }

    #[test]
    fn minimum_data_keeps_current_medicines_and_open_diagnoses() {
        let rx = |date: &str, days: &str, name: &str| ViewItem {
            id: 0,
            facility: 1,
            category: "prescription".into(),
            date: Some(date.into()),
            code: name.into(),
            code_system: "HOT9".into(),
            display: name.into(),
            status: "NW".into(),
            end: None,
            detail: json!({ "dose": "1", "dose_unit": { "display": "錠" }, "days": days, "usage": { "display": "1日1回朝食後" } }),
        };
        let dx = |name: &str, end: Option<&str>| ViewItem {
            category: "diagnosis".into(),
            display: name.into(),
            end: end.map(str::to_string),
            ..rx("2020-01-01", "0", name)
        };
        let items = vec![
            rx("2026-11-01", "28", "アムロジピン"),
            rx("2024-01-01", "28", "ロキソプロフェン"),
            dx("高血圧症", None),
            dx("急性気管支炎", Some("2025-02-01")),
        ];
        let m = minimum_data(&items, "2026-11-21");
        assert_eq!(m.medicines.len(), 1);
        assert_eq!(m.medicines[0].0, "アムロジピン");
        assert_eq!(m.medicines[0].1, "1錠 1日1回朝食後");
        assert_eq!(m.diagnoses.len(), 1);
        assert_eq!(m.diagnoses[0].0, "高血圧症");
    }
}
