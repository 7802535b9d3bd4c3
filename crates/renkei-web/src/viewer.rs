//! The integrated viewer's screens: calendar, time line, categories, lab table with a trend
//! chart (SVG, drawn here), documents, and the printable minimum data; the operator's local
//! lab code mapping.

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Redirect, Response};
use renkei_app::AppError;
use renkei_app::consent::Selection;
use renkei_app::viewer::PatientView;
use renkei_app::viewer::view::{self, CalendarRow, LabTable, ViewItem};
use renkei_core::consent::{CategoryScope, ConsentCategory};

use crate::WebState;
use crate::session::{CurrentUser, Operator};
use crate::views::*;

/// Facility colours, by the facility's place in the record: CSS classes `f0`…`f7` (a
/// colour-blind-safe palette in renkei.css; the content security policy allows no inline style).
const COLOURS: [&str; 8] = ["f0", "f1", "f2", "f3", "f4", "f5", "f6", "f7"];

fn colour(view: &PatientView, facility: i64) -> &'static str {
    let at = view
        .facilities
        .iter()
        .position(|(f, _)| *f == facility)
        .unwrap_or(7);
    COLOURS[at % COLOURS.len()]
}

fn facility_name(view: &PatientView, facility: i64) -> String {
    view.facilities
        .iter()
        .find(|(f, _)| *f == facility)
        .map(|(_, n)| n.clone())
        .unwrap_or_default()
}

#[derive(serde::Deserialize, Default)]
pub struct ViewerQuery {
    #[serde(default)]
    tab: String,
    #[serde(default)]
    month: String,
    #[serde(default)]
    day: String,
    #[serde(default)]
    row: String,
    #[serde(default)]
    trend: String,
}

/// What one item shows in lists: its main text and the details a clinician reads.
fn describe(item: &ViewItem) -> (String, String) {
    let d = &item.detail;
    let s = |k: &str| -> String {
        match d.get(k) {
            Some(serde_json::Value::String(v)) => v.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(v) if v.is_object() => v
                .get("display")
                .or_else(|| v.get("code"))
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string(),
            _ => String::new(),
        }
    };
    let title = if item.display.is_empty() {
        item.code.clone()
    } else if item.category == "encounter" {
        view::encounter_label(&item.display).to_string()
    } else {
        item.display.clone()
    };
    let extra = match item.category.as_str() {
        "prescription" | "injection" => {
            let prescriber = d
                .get("prescriber")
                .or_else(|| d.get("orderer"))
                .or_else(|| d.get("ordering_doctor"))
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
                .unwrap_or_default()
                .to_string();
            let days = s("days");
            format!(
                "{}{} {}{}{}",
                s("dose"),
                s("dose_unit"),
                s("usage"),
                if days.is_empty() {
                    String::new()
                } else {
                    format!(" {days}日分")
                },
                if prescriber.is_empty() {
                    String::new()
                } else {
                    format!("（処方医 {prescriber}）")
                }
            )
        }
        "lab_result" => format!(
            "{} {}{} {}",
            s("value"),
            s("unit"),
            match view::abnormal_flag(item).as_str() {
                "" => String::new(),
                "H" | "HH" | ">" => " ▲高値".to_string(),
                "L" | "LL" | "<" => " ▼低値".to_string(),
                other => format!(" 異常（{other}）"),
            },
            {
                let r = s("reference_range");
                if r.is_empty() {
                    String::new()
                } else {
                    format!("（基準 {r}）")
                }
            }
        ),
        "encounter" => [s("patient_class"), s("department"), s("ward")]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        "diagnosis" => item
            .end
            .clone()
            .map(|e| format!("転帰 {e}"))
            .unwrap_or_default(),
        "allergy" => [s("severity"), s("reaction")]
            .into_iter()
            .filter(|x| !x.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    };
    (title, extra.trim().to_string())
}

/// The place of an image item's first DICOM file among its files.
fn first_dicom(item: &ViewItem) -> Option<usize> {
    if item.category != "image" {
        return None;
    }
    item.detail
        .get("files")?
        .as_array()?
        .iter()
        .position(|f| f.get("dicom").and_then(|d| d.as_bool()) == Some(true))
}

fn rows_of(view: &PatientView, items: Vec<&ViewItem>) -> Vec<ItemLine> {
    items
        .into_iter()
        .map(|i| {
            let (title, extra) = describe(i);
            ItemLine {
                id: i.id,
                date: i.date.clone().unwrap_or_default(),
                row: i.row().map_or("", |r| r.label()),
                title,
                extra,
                facility: facility_name(view, i.facility),
                colour: colour(view, i.facility),
                is_document: i.category == "document" || i.category == "image",
                thumbnail: first_dicom(i),
            }
        })
        .collect()
}

/// Escapes text for SVG/XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A trend chart of one lab row as inline SVG: values over time, the reference range shaded,
/// abnormal points in red.
pub fn trend_svg(table: &LabTable, key: &str) -> String {
    let Some(row) = table.rows.iter().find(|r| r.key == key) else {
        return String::new();
    };
    let points = view::trend(table, key);
    let (w, h, left, right, top, bottom) = (640.0, 260.0, 56.0, 16.0, 28.0, 40.0);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{} の推移"><title>{} の推移</title>"#,
        esc(&row.name),
        esc(&row.name)
    );
    if points.is_empty() {
        svg.push_str(r#"<text x="20" y="40">数値の結果がありません</text></svg>"#);
        return svg;
    }
    let reference = row
        .reference
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<f64>().ok()?, b.trim().parse::<f64>().ok()?)));
    let mut lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let mut hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if let Some((a, b)) = reference {
        lo = lo.min(a);
        hi = hi.max(b);
    }
    if (hi - lo).abs() < f64::EPSILON {
        hi += 1.0;
        lo -= 1.0;
    }
    let pad = (hi - lo) * 0.1;
    let (lo, hi) = (lo - pad, hi + pad);
    let n = points.len();
    let x = |i: usize| {
        if n == 1 {
            left + (w - left - right) / 2.0
        } else {
            left + (w - left - right) * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
    if let Some((a, b)) = reference {
        svg.push_str(&format!(
            r##"<rect x="{left}" y="{:.1}" width="{:.1}" height="{:.1}" fill="#e6f4ea"/>"##,
            y(b),
            w - left - right,
            (y(a) - y(b)).max(0.0)
        ));
    }
    svg.push_str(&format!(
        r##"<line x1="{left}" y1="{top}" x2="{left}" y2="{:.1}" stroke="#888"/><line x1="{left}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#888"/>"##,
        h - bottom,
        h - bottom,
        w - right,
        h - bottom
    ));
    for v in [lo + pad, (lo + hi) / 2.0, hi - pad] {
        svg.push_str(&format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="end" fill="#444">{:.1}</text>"##,
            left - 6.0,
            y(v) + 4.0,
            v
        ));
    }
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.1)))
        .collect();
    svg.push_str(&format!(
        r##"<polyline points="{}" fill="none" stroke="#1d6b8f" stroke-width="2"/>"##,
        path.join(" ")
    ));
    for (i, (date, v)) in points.iter().enumerate() {
        let abnormal = reference.is_some_and(|(a, b)| *v < a || *v > b);
        svg.push_str(&format!(
            r##"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{}"><title>{} {}</title></circle>"##,
            x(i),
            y(*v),
            if abnormal { "#c0392b" } else { "#1d6b8f" },
            esc(date),
            v
        ));
    }
    let label = |i: usize| {
        let anchor = if n > 1 && i == n - 1 {
            "end"
        } else if n > 1 {
            "start"
        } else {
            "middle"
        };
        format!(
            r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="{anchor}" fill="#444">{}</text>"##,
            x(i),
            h - bottom + 16.0,
            esc(&points[i].0)
        )
    };
    svg.push_str(&label(0));
    if n > 1 {
        svg.push_str(&label(n - 1));
    }
    svg.push_str(&format!(
        r##"<text x="{left}" y="18" font-size="13" fill="#222">{} ({})</text></svg>"##,
        esc(&row.name),
        esc(&row.unit)
    ));
    svg
}

fn month_bounds(month: &str) -> Option<(String, String)> {
    (month.len() == 7 && month.as_bytes()[4] == b'-')
        .then(|| (format!("{month}-01"), format!("{month}-31")))
}

/// The date `days` before `today` (`YYYY-MM-DD`), approximately (for "recent" windows).
fn days_before(today: &str, days: i64) -> String {
    let y: i64 = today.get(..4).and_then(|v| v.parse().ok()).unwrap_or(2000);
    let m: i64 = today.get(5..7).and_then(|v| v.parse().ok()).unwrap_or(1);
    let months_back = days / 30;
    let total = y * 12 + (m - 1) - months_back;
    format!(
        "{:04}-{:02}-01",
        total.div_euclid(12),
        total.rem_euclid(12) + 1
    )
}

/// Day of the week, 0 = Sunday (Sakamoto's method, Gregorian calendar).
fn weekday(y: i32, m: u32, d: u32) -> usize {
    const T: [i32; 12] = [0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4];
    let y = if m < 3 { y - 1 } else { y };
    let i = (m.clamp(1, 12) - 1) as usize;
    (y + y.div_euclid(4) - y.div_euclid(100) + y.div_euclid(400) + T[i] + d as i32).rem_euclid(7)
        as usize
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The dispensing dates (`YYYY-MM-DD`, newest first, as in the list) as month calendars, newest
/// month first; each marked day links to its first dispensing (`#d<n>`, n from 1 in list
/// order). Dates that are not calendar dates are left out of the calendar (the list keeps them).
fn dispensing_months(dispensings: &[DispensingView]) -> Vec<MonthView> {
    let parse = |d: &str| -> Option<(i32, u32, u32)> {
        let mut p = d.splitn(3, '-');
        let y: i32 = p.next()?.parse().ok()?;
        let m: u32 = p.next()?.parse().ok()?;
        let day: u32 = p.next()?.get(..2)?.parse().ok()?;
        ((1..=12).contains(&m) && day >= 1 && day <= days_in_month(y, m)).then_some((y, m, day))
    };
    // ((year, month), [(day, index in the list)])
    type Month = ((i32, u32), Vec<(u32, usize)>);
    let mut months: Vec<Month> = Vec::new();
    for (n, d) in dispensings.iter().enumerate() {
        let Some((y, m, day)) = parse(&d.date) else {
            continue;
        };
        match months.iter_mut().find(|(k, _)| *k == (y, m)) {
            Some((_, days)) => days.push((day, n)),
            None => months.push(((y, m), vec![(day, n)])),
        }
    }
    months.sort_by_key(|m| std::cmp::Reverse(m.0));
    months
        .into_iter()
        .map(|((y, m), marked)| {
            let first = weekday(y, m, 1);
            let mut weeks: Vec<[Option<DayView>; 7]> = Vec::new();
            for day in 1..=days_in_month(y, m) {
                let slot = (first + day as usize - 1) % 7;
                if slot == 0 || weeks.is_empty() {
                    weeks.push(Default::default());
                }
                let of_day: Vec<usize> = marked
                    .iter()
                    .filter(|(d, _)| *d == day)
                    .map(|(_, n)| *n)
                    .collect();
                let mut marks: Vec<(&'static str, String)> = Vec::new();
                for n in &of_day {
                    let mark = (dispensings[*n].colour, dispensings[*n].pharmacy.clone());
                    if !marks.contains(&mark) {
                        marks.push(mark);
                    }
                }
                if let Some(week) = weeks.last_mut() {
                    week[slot] = Some(DayView {
                        day: day as u8,
                        anchor: of_day.iter().min().map(|n| format!("d{}", n + 1)),
                        marks,
                    });
                }
            }
            MonthView {
                title: format!("{y}年{m}月"),
                weeks,
            }
        })
        .collect()
}

/// A dispensing's note as one line: 「残薬確認: 残薬は5錠」 (older records hold the text alone).
fn note_line(note: &serde_json::Value) -> Option<String> {
    if let Some(text) = note.as_str() {
        return Some(text.to_string());
    }
    let field = |k: &str| note.get(k).and_then(|v| v.as_str()).unwrap_or("");
    let date = match field("date") {
        "" => String::new(),
        d => format!("（{d}）"),
    };
    Some(format!("{}: {}{date}", field("kind"), field("text")))
}

/// The notebooks' own records (患者特記, 一般用医薬品, 手帳メモ, かかりつけ薬剤師) and every
/// allergy the patient's record holds, for the お薬手帳 tab: allergies first, then newest first.
fn notebook_entries(view: &PatientView) -> Vec<(String, String, String, String, &'static str)> {
    let mut entries: Vec<&ViewItem> = view
        .items
        .iter()
        .filter(|i| {
            i.category == "allergy"
                || i.detail.get("source").and_then(|s| s.as_str()) == Some("jahis-notebook")
        })
        .collect();
    entries.sort_by(|a, b| {
        (b.category == "allergy")
            .cmp(&(a.category == "allergy"))
            .then(b.date.cmp(&a.date))
            .then(a.id.cmp(&b.id))
    });
    entries
        .into_iter()
        .map(|i| {
            let kind = match i.detail.get("kind").and_then(|k| k.as_str()) {
                Some(k) => k.to_string(),
                None => "アレルギー".to_string(),
            };
            let text = if i.display.is_empty() {
                i.code.clone()
            } else {
                i.display.clone()
            };
            (
                kind,
                text,
                i.date.clone().unwrap_or_default(),
                facility_name(view, i.facility),
                colour(view, i.facility),
            )
        })
        .collect()
}

/// The お薬手帳: the pharmacies' dispensings (JAHIS records), newest first, grouped by day and
/// pharmacy, each with its prescriber and drugs.
fn dispensings(view: &PatientView, insert_url: &str) -> Vec<DispensingView> {
    let mut out: Vec<DispensingView> = Vec::new();
    let mut items: Vec<&ViewItem> = view
        .items
        .iter()
        .filter(|i| i.detail.get("source").and_then(|s| s.as_str()) == Some("jahis"))
        .collect();
    items.sort_by(|a, b| b.date.cmp(&a.date).then(a.id.cmp(&b.id)));
    let s = |i: &ViewItem, path: &[&str]| -> String {
        let mut v = &i.detail;
        for p in path {
            match v.get(*p) {
                Some(x) => v = x,
                None => return String::new(),
            }
        }
        match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => String::new(),
        }
    };
    for i in items {
        let date = i.date.clone().unwrap_or_default();
        let pharmacy = s(i, &["pharmacy", "name"]);
        let key = (date.clone(), i.facility, pharmacy.clone());
        if out
            .last()
            .is_none_or(|d| (d.date.clone(), d.facility, d.pharmacy.clone()) != key)
        {
            out.push(DispensingView {
                date: date.clone(),
                facility: i.facility,
                colour: colour(view, i.facility),
                pharmacy: pharmacy.clone(),
                pharmacist: s(i, &["pharmacist"]),
                prescriber_facility: s(i, &["prescribing_facility", "name"]),
                doctor: s(i, &["prescriber", "name"]),
                department: s(i, &["department"]),
                drugs: Vec::new(),
                notes: i
                    .detail
                    .get("notes")
                    .and_then(|n| n.as_array())
                    .map(|a| a.iter().filter_map(note_line).collect())
                    .unwrap_or_default(),
            });
        }
        let link = (i.code_system == "YJ" && !insert_url.is_empty() && !i.code.is_empty())
            .then(|| insert_url.replace("{yj}", &i.code));
        if let Some(d) = out.last_mut() {
            d.drugs.push(DrugLine {
                name: i.display.clone(),
                code: format!(
                    "{} {}",
                    match i.code_system.as_str() {
                        "RECEIPT" => "レセ電",
                        "MHLW" => "厚労省",
                        other => other,
                    },
                    i.code
                )
                .trim()
                .to_string(),
                dose: format!("{}{}", s(i, &["dose"]), s(i, &["dose_unit", "display"])),
                usage: s(i, &["usage", "display"]),
                days: format!("{}{}", s(i, &["days"]), s(i, &["quantity_unit"])),
                cautions: i
                    .detail
                    .get("cautions")
                    .and_then(|n| n.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                link,
            });
        }
    }
    out
}

/// `GET /viewer/{person}`: one patient, one tab. Each tab reads only what it shows.
pub async fn patient(
    State(st): State<WebState>,
    user: CurrentUser,
    Path(person): Path<i64>,
    Query(q): Query<ViewerQuery>,
) -> Response {
    let actor = &user.view.actor;
    let tab = match q.tab.as_str() {
        "timeline" | "categories" | "labs" | "documents" | "summary" | "medication" => {
            q.tab.clone()
        }
        _ => "calendar".to_string(),
    };
    if tab == "categories" && q.row == "lab" {
        return Redirect::to(&format!("/viewer/{person}?tab=labs")).into_response();
    }
    let today = st.app.now_jst_date();
    // Read what the tab shows.
    let (view, calendar) = match tab.as_str() {
        "calendar" => {
            match st
                .app
                .patient_calendar(
                    actor,
                    person,
                    Some(q.month.as_str()).filter(|m| !m.is_empty()),
                )
                .await
            {
                Ok(c) => (
                    PatientView {
                        person: c.person.clone(),
                        items: Vec::new(),
                        facilities: c.facilities.clone(),
                        lab_map: Default::default(),
                        messages: Default::default(),
                        link_warnings: c.link_warnings.clone(),
                        scopes: Vec::new(),
                        emergency_until: c.emergency_until,
                    },
                    Some(c.calendar),
                ),
                Err(e) => return error_page(&st.app, e),
            }
        }
        "labs" => match st.app.patient_labs(actor, person).await {
            Ok(v) => (v, None),
            Err(e) => return error_page(&st.app, e),
        },
        _ => {
            let row = CalendarRow::from_key(&q.row);
            let selection = match tab.as_str() {
                "documents" => Selection {
                    categories: Some(vec!["document".into(), "image".into()]),
                    ..Selection::default()
                },
                "medication" => Selection {
                    categories: Some(vec!["prescription".into(), "allergy".into()]),
                    ..Selection::default()
                },
                "summary" => Selection {
                    categories: Some(
                        [
                            "allergy",
                            "contraindication",
                            "diagnosis",
                            "prescription",
                            "encounter",
                        ]
                        .iter()
                        .map(|c| c.to_string())
                        .collect(),
                    ),
                    ..Selection::default()
                },
                "categories" => {
                    let (categories, code) =
                        view::categories_of(row.unwrap_or(CalendarRow::Prescription));
                    Selection {
                        categories: Some(categories.iter().map(|c| c.to_string()).collect()),
                        codes: code.map(|c| vec![c.to_string()]),
                        ..Selection::default()
                    }
                }
                _ => {
                    // The time line: one day, one month, or the last six months.
                    let (since, until) = if !q.day.is_empty() {
                        (Some(q.day.clone()), Some(q.day.clone()))
                    } else if let Some((a, b)) = month_bounds(&q.month) {
                        (Some(a), Some(b))
                    } else {
                        (Some(days_before(&today, 183)), None)
                    };
                    Selection {
                        categories: Some(
                            CalendarRow::ALL
                                .iter()
                                .flat_map(|r| view::categories_of(*r).0.iter())
                                .map(|c| c.to_string())
                                .collect::<std::collections::BTreeSet<_>>()
                                .into_iter()
                                .collect(),
                        ),
                        since,
                        until,
                        ..Selection::default()
                    }
                }
            };
            match st.app.patient_view_of(actor, person, &selection).await {
                Ok(v) => (v, None),
                Err(e) => return error_page(&st.app, e),
            }
        }
    };
    let mut page = ViewerPage {
        layout: user.layout(&st.app, "統合参照Viewer"),
        person: view.person.id,
        link_warnings: view.link_warnings.clone(),
        banner: BannerView::default(),
        tab: tab.clone(),
        legend: view
            .facilities
            .iter()
            .map(|(f, n)| (n.clone(), colour(&view, *f)))
            .collect(),
        months: Vec::new(),
        month: String::new(),
        days: Vec::new(),
        calendar: Vec::new(),
        lines: Vec::new(),
        heading: String::new(),
        categories: CalendarRow::ALL
            .iter()
            .map(|r| (r.key(), r.label()))
            .collect(),
        selected_row: q.row.clone(),
        lab_dates: Vec::new(),
        lab_rows: Vec::new(),
        trend: String::new(),
        trend_key: q.trend.clone(),
        summary: None,
        dispensings: Vec::new(),
        dispensing_months: Vec::new(),
        notebook_entries: Vec::new(),
        empty: view.items.is_empty() && calendar.as_ref().is_none_or(|c| c.months.is_empty()),
    };
    match tab.as_str() {
        "calendar" => {
            let cal = calendar.unwrap_or_default();
            page.months = cal.months.clone();
            page.month = cal.month.clone();
            page.days = (1..=cal.days).collect();
            page.calendar = CalendarRow::ALL
                .into_iter()
                .map(|row| CalendarLine {
                    label: row.label(),
                    cells: (1..=cal.days)
                        .map(|d| {
                            cal.marks
                                .get(&(row, d))
                                .map(|fs| fs.iter().map(|f| colour(&view, *f)).collect())
                                .unwrap_or_default()
                        })
                        .collect(),
                })
                .collect();
        }
        "timeline" | "categories" | "documents" => {
            let row = CalendarRow::from_key(&q.row);
            page.heading = match (tab.as_str(), q.day.as_str(), row) {
                ("documents", _, _) => "文書・画像".to_string(),
                ("categories", _, Some(r)) => r.label().to_string(),
                ("categories", _, None) => CalendarRow::Prescription.label().to_string(),
                (_, d, _) if !d.is_empty() => format!("{d} の診療情報"),
                _ if !q.month.is_empty() => format!("{} の診療情報", q.month),
                _ => "直近6か月の診療情報".to_string(),
            };
            let mut lines = Vec::new();
            for (_, items) in view::timeline(&view.items, None, None) {
                lines.extend(rows_of(&view, items));
            }
            page.lines = lines;
        }
        "labs" => {
            let table = view::lab_table(&view.items, &view.lab_map);
            page.lab_dates = table
                .dates
                .iter()
                .take(renkei_app::viewer::LAB_DATES)
                .cloned()
                .collect();
            page.lab_rows = table
                .rows
                .iter()
                .map(|r| LabLine {
                    key_query: serde_urlencoded::to_string([("trend", &r.key)]).unwrap_or_default(),
                    key: r.key.clone(),
                    name: r.name.clone(),
                    unit: r.unit.clone(),
                    reference: r.reference.clone(),
                    cells: page
                        .lab_dates
                        .iter()
                        .map(|d| {
                            r.cells
                                .get(d)
                                .map(|cells| {
                                    let flag = cells
                                        .iter()
                                        .map(|c| c.flag.as_str())
                                        .find(|f| !f.is_empty())
                                        .unwrap_or("");
                                    (
                                        cells
                                            .iter()
                                            .map(|c| c.value.clone())
                                            .collect::<Vec<_>>()
                                            .join(" / "),
                                        flag.to_string(),
                                    )
                                })
                                .unwrap_or_default()
                        })
                        .collect(),
                })
                .collect();
            if !q.trend.is_empty() {
                match st.app.patient_lab_trend(actor, person, &q.trend).await {
                    Ok(all) => {
                        let table = view::lab_table(&all.items, &all.lab_map);
                        page.trend = trend_svg(&table, &q.trend);
                    }
                    Err(e) => return error_page(&st.app, e),
                }
            }
        }
        "medication" => {
            page.dispensings = dispensings(&view, &st.app.config().package_insert_url);
            page.notebook_entries = notebook_entries(&view);
            page.dispensing_months = dispensing_months(&page.dispensings);
        }
        "summary" => {
            let m = view::minimum_data(&view.items, &today);
            let scope = |c: ConsentCategory| {
                view.scopes
                    .iter()
                    .find(|(k, _)| *k == c)
                    .map_or("", |(_, s)| s.label())
            };
            let excluded: Vec<String> = view
                .scopes
                .iter()
                .filter(|(c, s)| {
                    *s != CategoryScope::Visible
                        && matches!(
                            c,
                            ConsentCategory::Allergy
                                | ConsentCategory::Contraindication
                                | ConsentCategory::Prescription
                                | ConsentCategory::Diagnosis
                                | ConsentCategory::Admission
                        )
                })
                .map(|(c, s)| format!("{}（{}）", c.label(), s.label()))
                .collect();
            page.summary = Some(SummaryView {
                allergy_scope: scope(ConsentCategory::Allergy),
                contraindication_scope: scope(ConsentCategory::Contraindication),
                prescription_scope: scope(ConsentCategory::Prescription),
                diagnosis_scope: scope(ConsentCategory::Diagnosis),
                visit_scope: scope(ConsentCategory::Admission),
                excluded,
                printed_by: format!(
                    "{}（{}）が {} に印刷",
                    user.view.actor.name,
                    user.view.facility_name,
                    st.app.now().jst_minutes()
                ),
                today,
                visits: m
                    .visits
                    .into_iter()
                    .map(|(d, what, f)| (d, what, facility_name(&view, f)))
                    .collect(),
                allergies: m
                    .allergies
                    .into_iter()
                    .map(|(n, f)| (n, facility_name(&view, f)))
                    .collect(),
                contraindications: m
                    .contraindications
                    .into_iter()
                    .map(|(n, f)| (n, facility_name(&view, f)))
                    .collect(),
                medicines: m
                    .medicines
                    .into_iter()
                    .map(|(n, dose, d, f)| (n, dose, d, facility_name(&view, f)))
                    .collect(),
                diagnoses: m
                    .diagnoses
                    .into_iter()
                    .map(|(n, d, f)| (n, d, facility_name(&view, f)))
                    .collect(),
            });
        }
        _ => {}
    }
    page.banner = match st.app.patient_banner(actor, person).await {
        Ok(b) => BannerView::of(&b, &st.app.now().jst_date(), st.app.now().0),
        Err(e) => return error_page(&st.app, e),
    };
    render(&page)
}

/// `GET /viewer/{person}/documents/{item}/{index}`: one file of a document, as it came.
pub async fn document_file(
    State(st): State<WebState>,
    user: CurrentUser,
    Path((person, item, index)): Path<(i64, i64, usize)>,
) -> Response {
    match st
        .app
        .document_file(&user.view.actor, person, item, index)
        .await
    {
        Ok((_, name, bytes)) => {
            let lower = name.to_ascii_lowercase();
            let kind = if lower.ends_with(".pdf") {
                "application/pdf"
            } else if lower.ends_with(".txt") {
                "text/plain; charset=utf-8"
            } else if lower.ends_with(".xml") {
                "text/xml; charset=utf-8"
            } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
                "image/jpeg"
            } else if lower.ends_with(".png") {
                "image/png"
            } else if renkei_dicom::is_dicom(&bytes) {
                "application/dicom"
            } else {
                "application/octet-stream"
            };
            // Sandboxed like every uploaded file; a PDF keeps the page policy only because
            // Chromium will not open its PDF viewer in a sandboxed document (a PDF's own
            // scripts never run as this site).
            let policy = if kind == "application/pdf" {
                crate::session::PAGE_POLICY
            } else {
                crate::session::FILE_POLICY
            };
            (
                [
                    (header::CONTENT_TYPE, kind.to_string()),
                    (header::CONTENT_SECURITY_POLICY, policy.to_string()),
                    (
                        header::CONTENT_DISPOSITION,
                        format!(
                            "inline; filename*=UTF-8''{}",
                            serde_urlencoded::to_string([("v", &name)])
                                .unwrap_or_default()
                                .trim_start_matches("v=")
                        ),
                    ),
                ],
                bytes,
            )
                .into_response()
        }
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize, Default)]
pub struct ImageQuery {
    #[serde(default)]
    file: Option<usize>,
    #[serde(default)]
    frame: u32,
    #[serde(default)]
    preset: String,
    /// Longest edge in pixels (thumbnails).
    #[serde(default)]
    size: Option<u32>,
}

/// `GET /viewer/{person}/documents/{item}`: a document's files (text shown inline), or an
/// image study: the selected DICOM image with window presets, its frames, and the series as
/// thumbnails in order.
pub async fn document(
    State(st): State<WebState>,
    user: CurrentUser,
    Path((person, item)): Path<(i64, i64)>,
    Query(q): Query<ImageQuery>,
) -> Response {
    let files = match st.app.document_files(&user.view.actor, person, item).await {
        Ok(f) => f,
        Err(e) => return error_page(&st.app, e),
    };
    // Reading every DICOM file and stripping XML is decoding work: off the async workers.
    let (images, files) = match crate::render::off_worker(move || document_contents(files)).await {
        Ok(contents) => contents,
        Err(e) => return crate::render::refused(&st.app, e),
    };
    let shown = q
        .file
        .and_then(|f| images.iter().position(|(i, _)| *i == f))
        .unwrap_or(0);
    let viewer = images.get(shown).map(|(index, info)| {
        let preset = renkei_dicom::Preset::from_key(&q.preset);
        let frame = q.frame.min(info.frames.saturating_sub(1));
        DicomViewer {
            index: *index,
            frame,
            frames: info.frames,
            preset: preset.key(),
            presets: renkei_dicom::Preset::for_modality(&info.modality)
                .iter()
                .map(|p| (p.key(), p.label()))
                .collect(),
            title: format!(
                "{} シリーズ{} {} 画像{}（{}×{}）",
                info.modality,
                info.series_number,
                info.series_description,
                info.instance_number,
                info.columns,
                info.rows
            ),
            previous: shown
                .checked_sub(1)
                .and_then(|p| images.get(p))
                .map(|(i, _)| *i),
            next: images.get(shown + 1).map(|(i, _)| *i),
            series: images.iter().map(|(i, _)| *i).collect(),
        }
    });
    let banner = match st.app.patient_banner(&user.view.actor, person).await {
        Ok(b) => BannerView::of(&b, &st.app.now().jst_date(), st.app.now().0),
        Err(e) => return error_page(&st.app, e),
    };
    render(&DocumentPage {
        layout: user.layout(&st.app, "文書・画像"),
        banner,
        person,
        item,
        viewer,
        files,
    })
}

/// Images of a document page, in series order: (file index, what the image is).
type Images = Vec<(usize, renkei_dicom::DicomInfo)>;
/// Its other files, as they came: (file index, name, the text shown when it is text).
type OtherFiles = Vec<(usize, String, Option<String>)>;

/// A document's DICOM images in series order, and its other files with the text shown inline.
/// Runs on the blocking pool (see `render::off_worker`).
fn document_contents(files: Vec<(String, Vec<u8>)>) -> (Images, OtherFiles) {
    let mut images: Images = files
        .iter()
        .enumerate()
        .filter_map(|(i, (_, bytes))| renkei_dicom::inspect(bytes).ok().map(|info| (i, info)))
        .collect();
    images.sort_by_key(|(i, info)| (info.series_number, info.instance_number, *i));
    let others = files
        .into_iter()
        .enumerate()
        .filter(|(_, (_, bytes))| !renkei_dicom::is_dicom(bytes))
        .map(|(i, (name, bytes))| {
            let lower = name.to_ascii_lowercase();
            let text = if lower.ends_with(".xml") {
                Some(inline_text(&bytes, true))
            } else {
                lower.ends_with(".txt").then(|| inline_text(&bytes, false))
            };
            (i, name, text)
        })
        .collect();
    (images, others)
}

/// The most of a text or XML file shown inline. Files may be 64 MiB: shown whole, one view
/// would hold a blocking thread for seconds and send a page of hundreds of megabytes; the file
/// itself is one click away.
const INLINE_TEXT_MAX: usize = 1024 * 1024;

/// A text file's first [`INLINE_TEXT_MAX`] bytes as shown on the page (XML made readable),
/// with a note when there is more.
fn inline_text(bytes: &[u8], xml: bool) -> String {
    let mut end = bytes.len().min(INLINE_TEXT_MAX);
    // Not in the middle of a UTF-8 character (continuation bytes are 0b10xx_xxxx).
    for _ in 0..3 {
        if bytes.get(end).is_some_and(|b| b & 0xC0 == 0x80) {
            end = end.saturating_sub(1);
        }
    }
    let head = String::from_utf8_lossy(bytes.get(..end).unwrap_or(bytes));
    let mut text = if xml {
        readable_xml(&head)
    } else {
        head.into_owned()
    };
    if end < bytes.len() {
        text.push_str(
            "\n\n……（表示はここまでです。続きは上のファイル名からダウンロードしてご覧ください）",
        );
    }
    text
}

/// A CDA (or other XML) document as readable text: its title, then its text content with the
/// markup taken out and entities decoded.
fn readable_xml(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut in_tag = false;
    let mut tag = String::new();
    for c in xml.chars() {
        match c {
            '<' => {
                in_tag = true;
                tag.clear();
            }
            '>' if in_tag => {
                in_tag = false;
                // Block-level ends become line breaks.
                let name = tag
                    .trim_start_matches('/')
                    .split_whitespace()
                    .next()
                    .unwrap_or("");
                if matches!(
                    name,
                    "title" | "paragraph" | "br" | "item" | "tr" | "section"
                ) || tag.starts_with('/') && matches!(name, "td" | "text")
                {
                    out.push('\n');
                }
            }
            _ if in_tag => tag.push(c),
            _ => out.push(c),
        }
    }
    let decoded = out
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    decoded
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("?xml"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `GET /viewer/{person}/documents/{item}/{index}/image`: a DICOM frame as PNG.
pub async fn image(
    State(st): State<WebState>,
    user: CurrentUser,
    Path((person, item, index)): Path<(i64, i64, usize)>,
    Query(q): Query<ImageQuery>,
) -> Response {
    let (_, _, bytes) = match st
        .app
        .document_file(&user.view.actor, person, item, index)
        .await
    {
        Ok(f) => f,
        Err(e) => return error_page(&st.app, e),
    };
    let preset = renkei_dicom::Preset::from_key(&q.preset);
    let rendered = crate::render::off_worker(move || {
        renkei_dicom::render_png(&bytes, q.frame, preset, q.size.map(|s| s.clamp(16, 2048)))
    })
    .await;
    match rendered {
        Ok(Ok(png)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "private, max-age=300"),
            ],
            png,
        )
            .into_response(),
        Ok(Err(e)) => error_page(&st.app, AppError::Invalid(e.to_string())),
        Err(e) => crate::render::refused(&st.app, e),
    }
}

/// `GET /admin/lab-codes`.
pub async fn lab_codes(State(st): State<WebState>, Operator(user): Operator) -> Response {
    match st.app.local_lab_codes(&user.view.actor).await {
        Ok(codes) => render(&LabCodesPage {
            layout: user.layout(&st.app, "検査コードのJLAC10対応"),
            codes,
        }),
        Err(e) => error_page(&st.app, e),
    }
}

#[derive(serde::Deserialize)]
pub struct MapForm {
    #[serde(default)]
    facility_id: i64,
    #[serde(default)]
    local_code: String,
    #[serde(default)]
    jlac10: String,
}

/// `POST /admin/lab-codes`.
pub async fn map_lab_code(
    State(st): State<WebState>,
    Operator(user): Operator,
    axum::extract::Form(f): axum::extract::Form<MapForm>,
) -> Response {
    match st
        .app
        .map_lab_code(&user.view.actor, f.facility_id, &f.local_code, &f.jlac10)
        .await
    {
        Ok(()) => Redirect::to("/admin/lab-codes").into_response(),
        Err(AppError::Invalid(m)) => match st.app.local_lab_codes(&user.view.actor).await {
            Ok(codes) => render(&LabCodesPage {
                layout: user
                    .layout(&st.app, "検査コードのJLAC10対応")
                    .with_error(Some(m)),
                codes,
            }),
            Err(e) => error_page(&st.app, e),
        },
        Err(e) => error_page(&st.app, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dispensed(date: &str, pharmacy: &str, colour: &'static str) -> DispensingView {
        DispensingView {
            date: date.into(),
            facility: 1,
            colour,
            pharmacy: pharmacy.into(),
            pharmacist: String::new(),
            prescriber_facility: String::new(),
            doctor: String::new(),
            department: String::new(),
            drugs: Vec::new(),
            notes: Vec::new(),
        }
    }

    #[test]
    fn dispensing_dates_fall_on_their_weekdays() {
        // 2026-03-01 is a Sunday; 2024-02-29 a Thursday; 2000-01-01 a Saturday.
        assert_eq!(weekday(2026, 3, 1), 0);
        assert_eq!(weekday(2024, 2, 29), 4);
        assert_eq!(weekday(2000, 1, 1), 6);
        let list = [
            dispensed("2026-03-12", "駅前薬局", "f1"),
            dispensed("2026-03-12", "駅前薬局", "f1"),
            dispensed("2026-03-10", "みなと薬局", "f2"),
            dispensed("2026-01-31", "駅前薬局", "f1"),
            dispensed("2026-02-30", "駅前薬局", "f1"),
        ];
        let months = dispensing_months(&list);
        assert_eq!(
            months.iter().map(|m| m.title.as_str()).collect::<Vec<_>>(),
            ["2026年3月", "2026年1月"],
            "newest first; 2月30日 is no date"
        );
        let march = &months[0];
        assert_eq!(march.weeks.len(), 5);
        let day = |w: usize, d: usize| march.weeks[w][d].as_ref();
        assert_eq!(day(0, 0).map(|d| d.day), Some(1), "the 1st on Sunday");
        // The 12th is a Thursday of the second week: one mark, linked to the first of its two.
        let twelfth = day(1, 4).unwrap();
        assert_eq!((twelfth.day, twelfth.anchor.as_deref()), (12, Some("d1")));
        assert_eq!(twelfth.marks, [("f1", "駅前薬局".to_string())]);
        assert_eq!(day(1, 2).unwrap().anchor.as_deref(), Some("d3"));
        assert!(day(1, 3).unwrap().anchor.is_none());
        // January 2026 starts on a Thursday and the 31st is a Saturday.
        let january = &months[1];
        assert!(january.weeks[0][3].is_none() && january.weeks[0][4].is_some());
        assert_eq!(
            january.weeks.last().unwrap()[6].as_ref().map(|d| d.day),
            Some(31)
        );
    }

    #[test]
    fn only_the_first_mebibyte_of_a_text_file_is_shown_inline() {
        assert_eq!(inline_text("経過良好".as_bytes(), false), "経過良好");
        // 3-byte characters, so the cut falls inside one unless it backs off.
        let long = "経過良好。".repeat(100_000);
        assert!(long.len() > 1_400_000);
        let shown = inline_text(long.as_bytes(), false);
        assert!(shown.len() <= INLINE_TEXT_MAX + 200, "{}", shown.len());
        assert!(shown.starts_with("経過良好。経過良好。"));
        assert!(!shown.contains('\u{FFFD}'), "cut inside a character");
        assert!(shown.ends_with("ダウンロードしてご覧ください）"));
        let xml = format!(
            "<ClinicalDocument><title>退院時サマリー</title><text>{long}</text></ClinicalDocument>"
        );
        let shown = inline_text(xml.as_bytes(), true);
        assert!(shown.starts_with("退院時サマリー\n経過良好。"));
        assert!(shown.len() <= INLINE_TEXT_MAX + 200);
        assert!(shown.contains("表示はここまでです"));
    }

    #[test]
    fn a_notebooks_records_are_shown_in_words() {
        let note = serde_json::json!({ "kind": "残薬確認", "text": "残薬は5錠", "date": null });
        assert_eq!(note_line(&note).as_deref(), Some("残薬確認: 残薬は5錠"));
        let dated =
            serde_json::json!({ "kind": "患者等記入", "text": "飲み忘れ", "date": "2026-11-02" });
        assert_eq!(
            note_line(&dated).as_deref(),
            Some("患者等記入: 飲み忘れ（2026-11-02）")
        );
        assert_eq!(
            note_line(&serde_json::json!("古い形式")).as_deref(),
            Some("古い形式")
        );
        let item =
            |id: i64, category: &str, date: &str, detail: serde_json::Value, display: &str| {
                ViewItem {
                    id,
                    facility: 3,
                    category: category.into(),
                    date: Some(date.into()),
                    code: String::new(),
                    code_system: String::new(),
                    display: display.into(),
                    status: "noted".into(),
                    end: None,
                    detail,
                }
            };
        let view = PatientView {
            person: renkei_app::identity::PersonRow {
                id: 1,
                common_id: "34000000018".into(),
                kanji_name: "山田 花子".into(),
                kana_name: "ヤマダ ハナコ".into(),
                birth_date: Some("1958-03-03".into()),
                sex: "F".into(),
                issuer_facility: 1,
                created_at: 0,
                merged_into: None,
                phone: String::new(),
                postal_code: String::new(),
                address: String::new(),
            },
            items: vec![
                item(
                    1,
                    "prescription",
                    "2026-11-01",
                    serde_json::json!({"source": "jahis-notebook", "kind": "手帳メモ"}),
                    "血圧手帳も持参",
                ),
                item(
                    2,
                    "allergy",
                    "2020-01-01",
                    serde_json::json!({"source": "jahis-notebook", "kind": "アレルギー歴"}),
                    "ペニシリン",
                ),
                item(3, "allergy", "2019-01-01", serde_json::json!({}), "卵"),
                item(
                    4,
                    "prescription",
                    "2026-11-02",
                    serde_json::json!({"source": "jahis"}),
                    "アムロジピン錠",
                ),
            ],
            facilities: vec![(3, "駅前薬局".into())],
            lab_map: Default::default(),
            messages: Default::default(),
            link_warnings: Vec::new(),
            scopes: Vec::new(),
            emergency_until: None,
        };
        let entries = notebook_entries(&view);
        let shown: Vec<(&str, &str)> = entries
            .iter()
            .map(|e| (e.0.as_str(), e.1.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                ("アレルギー歴", "ペニシリン"),
                ("アレルギー", "卵"),
                ("手帳メモ", "血圧手帳も持参")
            ],
            "allergies first (any source), then the notebook's own records; drugs are not entries"
        );
        assert_eq!(entries[0].3, "駅前薬局");
    }

    #[test]
    fn the_time_line_marks_abnormal_values_and_names_encounters_in_words() {
        let item = |category: &str, display: &str, detail: serde_json::Value| ViewItem {
            id: 1,
            facility: 1,
            category: category.into(),
            date: Some("2026-11-01".into()),
            code: String::new(),
            code_system: String::new(),
            display: display.into(),
            status: "F".into(),
            end: None,
            detail,
        };
        let high = item(
            "lab_result",
            "AST",
            serde_json::json!({"value": "45", "numeric": 45.0, "unit": {"code": "U/L"}, "reference_range": "13-30"}),
        );
        assert_eq!(describe(&high).1, "45 U/L ▲高値 （基準 13-30）");
        let low = item(
            "lab_result",
            "Hb",
            serde_json::json!({"value": "9.1", "abnormal": "L", "unit": "g/dL"}),
        );
        assert_eq!(describe(&low).1, "9.1 g/dL ▼低値");
        let normal = item(
            "lab_result",
            "AST",
            serde_json::json!({"value": "20", "numeric": 20.0, "unit": "U/L", "reference_range": "13-30"}),
        );
        assert_eq!(describe(&normal).1, "20 U/L （基準 13-30）");
        assert_eq!(
            describe(&item(
                "encounter",
                "outpatient_visit",
                serde_json::json!({})
            ))
            .0,
            "外来受診"
        );
    }

    #[test]
    fn cda_documents_read_as_text() {
        let xml = "<?xml version=\"1.0\"?>\n<ClinicalDocument><title>退院時サマリー</title><component><nonXMLBody><text mediaType=\"text/plain\">経過: 軽快 &amp; 退院</text></nonXMLBody></component></ClinicalDocument>";
        assert_eq!(readable_xml(xml), "退院時サマリー\n経過: 軽快 & 退院");
    }

    #[test]
    fn the_trend_chart_escapes_text_and_draws_points() {
        let items = vec![
            ViewItem {
                id: 1,
                facility: 1,
                category: "lab_result".into(),
                date: Some("2026-10-01".into()),
                code: "3B035000002327201".into(),
                code_system: "JC10".into(),
                display: "AST".into(),
                status: "F".into(),
                end: None,
                detail: serde_json::json!({ "value": "45", "numeric": 45.0, "reference_range": "13-30" }),
            },
            ViewItem {
                id: 2,
                date: Some("2026-11-01".into()),
                detail: serde_json::json!({ "value": "20", "numeric": 20.0, "reference_range": "13-30" }),
                ..ViewItem {
                    id: 0,
                    facility: 1,
                    category: "lab_result".into(),
                    date: None,
                    code: "3B035000002327201".into(),
                    code_system: "JC10".into(),
                    display: "AST".into(),
                    status: "F".into(),
                    end: None,
                    detail: serde_json::Value::Null,
                }
            },
        ];
        let table = view::lab_table(&items, &Default::default());
        let svg = trend_svg(&table, "core:AST");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(
            svg.contains("#c0392b"),
            "the 45 U/L point is marked abnormal"
        );
        assert!(!svg.contains("<script"));
    }
}
