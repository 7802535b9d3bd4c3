//! `renkei dev generate-ssmix2`: writes a realistic synthetic SS-MIX2 standardized storage
//! (ISO-2022-JP, CR segments, trailing 0x1C) for benchmarks and demonstrations: demographics,
//! allergies, diagnoses, outpatient visits with prescriptions and lab results, admissions with
//! injections and discharges, spread over years. Deterministic for a given seed.

use std::path::Path;

use anyhow::{Context, Result};
use renkei_hl7v2::Charset;
use renkei_hl7v2::ssmix2::{Condition, FileName};

/// SplitMix64: a tiny, fixed pseudo-random sequence. Kept here rather than taken from `rand`
/// because the generated storages must stay identical across dependency upgrades (benchmarks
/// compare runs), which `rand` does not promise for its generators.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

const FAMILY: &[(&str, &str)] = &[
    ("山田", "ヤマダ"),
    ("佐藤", "サトウ"),
    ("髙橋", "タカハシ"),
    ("渡邊", "ワタナベ"),
    ("中村", "ナカムラ"),
    ("小林", "コバヤシ"),
    ("加藤", "カトウ"),
    ("吉田", "ヨシダ"),
    ("山本", "ヤマモト"),
    ("斎藤", "サイトウ"),
    ("松本", "マツモト"),
    ("井上", "イノウエ"),
    ("木村", "キムラ"),
    ("林", "ハヤシ"),
    ("清水", "シミズ"),
    ("山崎", "ヤマザキ"),
    ("森", "モリ"),
    ("池田", "イケダ"),
    ("橋本", "ハシモト"),
    ("岡田", "オカダ"),
];
const GIVEN_M: &[(&str, &str)] = &[
    ("太郎", "タロウ"),
    ("一郎", "イチロウ"),
    ("健", "ケン"),
    ("翔太", "ショウタ"),
    ("大輔", "ダイスケ"),
    ("蓮", "レン"),
    ("誠", "マコト"),
    ("茂", "シゲル"),
];
const GIVEN_F: &[(&str, &str)] = &[
    ("花子", "ハナコ"),
    ("美咲", "ミサキ"),
    ("陽菜", "ヒナ"),
    ("結衣", "ユイ"),
    ("恵子", "ケイコ"),
    ("幸子", "サチコ"),
    ("明美", "アケミ"),
    ("和子", "カズコ"),
];
const ADDRESSES: &[(&str, &str)] = &[
    ("730-0011", "広島県広島市中区基町"),
    ("732-0052", "広島県広島市東区光町"),
    ("734-0004", "広島県広島市南区宇品神田"),
    ("720-0065", "広島県福山市東桜町"),
    ("728-0013", "広島県三次市十日市東"),
    ("737-0029", "広島県呉市宝町"),
];
/// (MEDIS code, name, ICD-10)
const DIAGNOSES: &[(&str, &str, &str)] = &[
    ("20061617", "高血圧症", "I109"),
    ("20058546", "２型糖尿病", "E119"),
    ("20083386", "脂質異常症", "E785"),
    ("20054174", "胃炎", "K297"),
    ("20060987", "気管支喘息", "J459"),
    ("20057213", "慢性腎臓病", "N189"),
    ("20081409", "心房細動", "I489"),
    ("20062463", "骨粗鬆症", "M8199"),
];
/// (HOT9, name, unit code, unit name, usage code, usage name)
const DRUGS: &[(&str, &str, &str, &str, &str, &str)] = &[
    (
        "108665201",
        "アムロジピン錠５ｍｇ",
        "TAB",
        "錠",
        "1013044400000000",
        "内服・経口・１日１回朝食後",
    ),
    (
        "110626901",
        "メトホルミン塩酸塩錠２５０ｍｇ",
        "TAB",
        "錠",
        "1013044400000000",
        "内服・経口・１日３回朝昼夕食後",
    ),
    (
        "100607002",
        "ロスバスタチン錠２．５ｍｇ",
        "TAB",
        "錠",
        "1012040400000000",
        "内服・経口・１日１回夕食後",
    ),
    (
        "620004224",
        "ロキソプロフェンＮａ錠６０ｍｇ",
        "TAB",
        "錠",
        "1013044400000000",
        "内服・経口・１日３回朝昼夕食後",
    ),
    (
        "103835401",
        "ランソプラゾールＯＤ錠１５ｍｇ",
        "TAB",
        "錠",
        "1011010400000000",
        "内服・経口・１日１回朝食前",
    ),
    (
        "111248701",
        "ワルファリンＫ錠１ｍｇ",
        "TAB",
        "錠",
        "1013044400000000",
        "内服・経口・１日１回朝食後",
    ),
];
/// (JLAC10, name, unit, low, high, typical)
const LABS: &[(&str, &str, &str, f64, f64, f64)] = &[
    (
        "3D010000001926101",
        "グルコース",
        "mg/dL",
        73.0,
        109.0,
        105.0,
    ),
    ("3D046000001906202", "HbA1c", "%", 4.9, 6.0, 6.2),
    ("3B035000002327201", "AST", "U/L", 13.0, 30.0, 24.0),
    ("3B045000002327201", "ALT", "U/L", 10.0, 42.0, 25.0),
    (
        "3C015000002327101",
        "クレアチニン",
        "mg/dL",
        0.65,
        1.07,
        0.9,
    ),
    (
        "3F077000002327101",
        "LDLコレステロール",
        "mg/dL",
        65.0,
        163.0,
        130.0,
    ),
    ("2A990000001930952", "白血球数", "10*3/uL", 3.3, 8.6, 6.0),
    (
        "2A030000001930101",
        "ヘモグロビン",
        "g/dL",
        13.7,
        16.8,
        14.0,
    ),
];

fn date_plus(base: (i32, u32, u32), days: i64) -> (i32, u32, u32) {
    // Civil-from-days (Howard Hinnant's algorithm): exact for the Gregorian calendar.
    let (y, m, d) = (base.0 as i64, base.1 as i64, base.2 as i64);
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let z = era * 146_097 + doe - 719_468 + days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    ((if m <= 2 { y + 1 } else { y }) as i32, m as u32, d as u32)
}

fn ymd(d: (i32, u32, u32)) -> String {
    format!("{:04}{:02}{:02}", d.0, d.1, d.2)
}

struct Writer<'a> {
    root: &'a Path,
    files: usize,
}

impl Writer<'_> {
    /// Writes one message under its SS-MIX2 path.
    fn put(&mut self, name: &FileName, body: &str) -> Result<()> {
        let pid = name.patient_id.as_str();
        let date_dir = name.care_date.as_deref().unwrap_or("-");
        let dir = self
            .root
            .join(pid.get(..3).unwrap_or(pid))
            .join(pid.get(3..6).unwrap_or(pid))
            .join(pid)
            .join(date_dir)
            .join(&name.data_kind);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("{} を作成できません", dir.display()))?;
        let mut bytes = Charset::Iso2022Jp.encode(body);
        bytes.push(0x1c);
        std::fs::write(dir.join(name.to_string()), bytes)?;
        self.files += 1;
        Ok(())
    }
}

/// The file name of a current (`_1`) storage entry.
fn entry(pid: &str, date: Option<&str>, kind: &str, order: &str, at: &str, dept: &str) -> FileName {
    FileName {
        patient_id: pid.to_string(),
        care_date: date.map(str::to_string),
        data_kind: kind.to_string(),
        order_no: order.to_string(),
        occurred_at: at.to_string(),
        department: (dept != "-").then(|| dept.to_string()),
        condition: Condition::Current,
    }
}

fn msh(kind: &str, control: &str, at: &str) -> String {
    format!(
        "MSH|^~\\&|HIS|RENKEI-DEMO|GW|RENKEI|{at}||{kind}|{control}|P|2.5||||||~ISO IR87||ISO 2022-1994|SS-MIX2_1.20^SS-MIX2^1.2.392.200250.2.1.100.1.2.120^ISO\r"
    )
}

/// Generates `patients` patients with `years` of history ending at `end` (YYYY, MM, DD);
/// returns how many files were written.
pub fn generate(
    root: &Path,
    patients: usize,
    years: u32,
    seed: u64,
    end: (i32, u32, u32),
) -> Result<usize> {
    let mut rng = Rng(seed);
    let mut w = Writer { root, files: 0 };
    let span_days = i64::from(years) * 365;
    for p in 0..patients {
        let pid = format!("{:010}", 1_000_000 + p as u64 + seed % 1000 * 100_000);
        let male = rng.chance(50);
        let (fam, fam_kana) = *rng.pick(FAMILY);
        let (giv, giv_kana) = *rng.pick(if male { GIVEN_M } else { GIVEN_F });
        let birth = date_plus((1935, 1, 1), rng.below(365 * 60) as i64);
        let (postal, city) = *rng.pick(ADDRESSES);
        let address = format!("{city}{}－{}", rng.below(9) + 1, rng.below(30) + 1);
        let pid_seg = format!(
            "PID|0001||{pid}^^^^PI||{fam}^{giv}^^^^^L^I~{fam_kana}^{giv_kana}^^^^^L^P||{}|{}|||^^^^{postal}^JPN^H^{address}||^PRN^PH^^^^^^^^^082-{:03}-{:04}\r",
            ymd(birth),
            if male { "M" } else { "F" },
            rng.below(1000),
            rng.below(10000)
        );
        let stamp = format!("{}0900000", ymd(end).get(..8).unwrap_or("20261121"));
        let stamp17 = format!("{stamp}00");
        // Demographics, allergies, diagnoses: date-less data.
        let body = format!(
            "{}EVN||{}0900\r{pid_seg}PV1|0001|O\r",
            msh("ADT^A08^ADT_A01", &format!("D{pid}"), &stamp),
            ymd(end)
        );
        w.put(
            &entry(&pid, None, "ADT-00", "999999999999999", &stamp17, "-"),
            &body,
        )?;
        if rng.chance(30) {
            let body = format!(
                "{}EVN||{}\r{pid_seg}IAM|1|DA^薬剤アレルギー^HL70127|1^ペニシリン^99XYZ|MO^中等度^HL70128|発疹|A^追加^HL70323\r",
                msh("ADT^A60^ADT_A60", &format!("A{pid}"), &stamp),
                ymd(end)
            );
            w.put(
                &entry(&pid, None, "ADT-61", "999999999999999", &stamp17, "-"),
                &body,
            )?;
        }
        let n_dx = 1 + rng.below(3);
        let mut ppr = format!(
            "{}{pid_seg}",
            msh("PPR^ZD1^PPR_ZD1", &format!("P{pid}"), &stamp)
        );
        let mut chronic = Vec::new();
        for i in 0..n_dx {
            let (code, name, icd) = *rng.pick(DIAGNOSES);
            chronic.push(name);
            let onset = ymd(date_plus(end, -(rng.below(span_days as usize) as i64)));
            ppr.push_str(&format!(
                "PRB|AD|{onset}|{code}^{name}^MDCDX2|{pid}{i:03}|||{onset}||||{icd}^^I10^O^外来時^JHSD0004||||||{onset}||{}^{}^JHSD0007\r",
                if i == 0 { "1" } else { "2" },
                if i == 0 { "主診断" } else { "副診断" }
            ));
        }
        w.put(
            &entry(&pid, None, "PPR-01", "999999999999999", &stamp17, "01"),
            &ppr,
        )?;
        // Outpatient visits about monthly: a visit, a prescription, often labs.
        let visits = (span_days / 30).max(1) as usize;
        for v in 0..visits {
            let day = date_plus(end, -(span_days - (v as i64) * 30 - rng.below(7) as i64));
            let d = ymd(day);
            let at = format!("{d}1000");
            let order = format!("{:015}", (p as u64) * 10_000 + v as u64);
            let body = format!(
                "{}EVN||{at}\r{pid_seg}PV1|0001|O|01^^^^^C||||110^医師^一郎^^^^^^^L^^^^^I|||01|||||||||||||||||||||||||||||||||{at}\r",
                msh("ADT^A04^ADT_A01", &format!("V{order}"), &at)
            );
            w.put(
                &entry(
                    &pid,
                    Some(&d),
                    "ADT-12",
                    "999999999999999",
                    &format!("{d}100000000"),
                    "01",
                ),
                &body,
            )?;
            let mut rde = format!(
                "{}{pid_seg}PV1|0001|O|01^^^^^C||||110^医師^一郎^^^^^^^L^^^^^I|||01\r",
                msh("RDE^O11^RDE_O11", &format!("R{order}"), &at)
            );
            for rp in 0..1 + rng.below(3) {
                let (hot, name, unit, unit_name, usage, usage_name) = *rng.pick(DRUGS);
                let days = *rng.pick(&[14u32, 28, 30]);
                rde.push_str(&format!(
                    "ORC|NW|{order}||{}|||||{at}|||110^医師^一郎^^^^^^^L^^^^^I|||||01^内科^99XY1\rRXE||{hot}^{name}^HOT9|1||{unit}^{unit_name}^MR9P|||||{days}|{unit}^{unit_name}^MR9P||||||||1^{unit}&{unit_name}&MR9P||OHP^外来処方^MR9P\rTQ1|1||{usage}&{usage_name}&JAMISDP01|||{days}^d|{d}\rRXR|PO^口^HL70162\r",
                    rp + 1
                ));
            }
            w.put(
                &entry(
                    &pid,
                    Some(&d),
                    "OMP-01",
                    &order,
                    &format!("{d}103000000"),
                    "01",
                ),
                &rde,
            )?;
            if rng.chance(60) {
                let mut oul = format!(
                    "{}{pid_seg}PV1|0001|O|01^^^^^C\rSPM|1|{order}||023^血清^JC10|||||||||||||{d}0930\rOBR|1|{order}||E001^生化学検査^99O03|||{d}\r",
                    msh("OUL^R22^OUL_R22", &format!("L{order}"), &at)
                );
                for (i, (code, name, unit, low, high, typical)) in LABS.iter().enumerate() {
                    let drift =
                        if chronic.iter().any(|c| c.contains("糖尿病")) && name.contains("A1c") {
                            1.4
                        } else {
                            0.0
                        };
                    let value = typical
                        + drift
                        + (rng.below(200) as f64 - 100.0) / 100.0 * (high - low) * 0.2;
                    let flag = if value > *high {
                        "H"
                    } else if value < *low {
                        "L"
                    } else {
                        ""
                    };
                    oul.push_str(&format!("OBX|{}|NM|{code}^{name}^JC10||{value:.1}|{unit}^{unit}^ISO+|{low}-{high}|{flag}|||F|||{d}0930\r", i + 1));
                }
                w.put(
                    &entry(
                        &pid,
                        Some(&d),
                        "OML-11",
                        &order,
                        &format!("{d}150000000"),
                        "01",
                    ),
                    &oul,
                )?;
            }
        }
        // Now and then an admission with injections and a discharge.
        if p == 0 || rng.chance(25) {
            let start = date_plus(end, -(rng.below(span_days as usize) as i64));
            let stop = date_plus(start, 3 + rng.below(10) as i64);
            let (ds, de) = (ymd(start), ymd(stop));
            let body = format!(
                "{}EVN||{ds}1000\r{pid_seg}PV1|0001|I|32^302^1^^^N||||110^医師^一郎^^^^^^^L^^^^^I|||01|||||||||||||||||||||||||||||||||{ds}1000\r",
                msh("ADT^A01^ADT_A01", &format!("I{pid}"), &format!("{ds}1000"))
            );
            w.put(
                &entry(
                    &pid,
                    Some(&ds),
                    "ADT-22",
                    "999999999999999",
                    &format!("{ds}100000000"),
                    "01",
                ),
                &body,
            )?;
            let order = format!("{:015}", 900_000_000 + p as u64);
            let body = format!(
                "{}{pid_seg}PV1|0001|I|32^302^1^^^N||||110^医師^一郎^^^^^^^L^^^^^I|||01\rORC|NW|{order}||{order}_01_001|||||{ds}1100|||110^医師^一郎^^^^^^^L^^^^^I|||||01^内科^99XY1\rRXE||00^一般^99I02|500||ML^ミリリットル^MR9P|INJ^注射剤^MR9P||||||||||||||IHP^入院処方^MR9P\rTQ1|1||||||{ds}1200|{ds}1700\rRXR|IV^静脈内^HL70162\rRXC|B|620007329^ソリタ－Ｔ３号輸液５００ｍＬ^HOT9|1|HON^本^MR9P\r",
                msh(
                    "RDE^O11^RDE_O11",
                    &format!("J{order}"),
                    &format!("{ds}1100")
                )
            );
            w.put(
                &entry(
                    &pid,
                    Some(&ds),
                    "OMP-02",
                    &order,
                    &format!("{ds}110000000"),
                    "01",
                ),
                &body,
            )?;
            let body = format!(
                "{}EVN||{de}1000\r{pid_seg}PV1|0001|I|32^302^1^^^N||||110^医師^一郎^^^^^^^L^^^^^I|||01|||||||||||||||||||01|||||||||{de}1000\r",
                msh("ADT^A03^ADT_A03", &format!("O{pid}"), &format!("{de}1000"))
            );
            w.put(
                &entry(
                    &pid,
                    Some(&de),
                    "ADT-52",
                    "999999999999999",
                    &format!("{de}100000000"),
                    "01",
                ),
                &body,
            )?;
            // The discharge summary, in the extended storage: a content folder with the main
            // document and an attachment.
            let kind = "^退院時サマリー^^18842-5^退院時サマリー^LN";
            let key = format!("{:015}", 800_000_000 + p as u64);
            let folder = w
                .root
                .join(&pid[..3])
                .join(&pid[3..6])
                .join(&pid)
                .join(&de)
                .join(kind)
                .join(format!("{pid}_{de}_{kind}_{key}_{de}170000000_01_1"));
            std::fs::create_dir_all(&folder)?;
            let diagnosis = chronic.first().copied().unwrap_or("精査");
            let summary = format!(
                "退院時サマリー\n患者: {fam} {giv}\n入院日: {ds}\n退院日: {de}\n診断: {diagnosis}\n経過: 点滴加療にて軽快し退院となった。\n"
            );
            let cda = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ClinicalDocument xmlns=\"urn:hl7-org:v3\"><code code=\"18842-5\" codeSystem=\"2.16.840.1.113883.6.1\" displayName=\"退院時サマリー\"/><title>退院時サマリー</title><effectiveTime value=\"{de}\"/><component><nonXMLBody><text mediaType=\"text/plain\">{summary}</text></nonXMLBody></component></ClinicalDocument>\n"
            );
            std::fs::write(folder.join("main_document.xml"), cda)?;
            std::fs::write(folder.join("summary.txt"), summary)?;
            w.files += 2;
        }
        if p % 3 == 0 {
            // A chest CT in the extended storage: the report and a short series of DICOM slices.
            let day = ymd(date_plus(end, -30 - rng.below(300) as i64));
            let kind = "^胸部CT^^18748-4^画像診断^LN";
            let key = format!("{:015}", 900_000_000 + p as u64);
            let folder = w
                .root
                .join(&pid[..3])
                .join(&pid[3..6])
                .join(&pid)
                .join(&day)
                .join(kind)
                .join(format!("{pid}_{day}_{kind}_{key}_{day}110000000_01_1"));
            std::fs::create_dir_all(&folder)?;
            std::fs::write(
                folder.join("main_document.txt"),
                format!(
                    "胸部CT（単純）\n検査日: {day}\n所見: 両肺野に明らかな結節影なし。縦隔リンパ節の腫大なし。\n"
                ),
            )?;
            let series = format!("1.2.392.200284.99.{seed}.{p}.1");
            for i in 1..=3 {
                let dicom = renkei_dicom::synthetic_ct(64, 1, (&series, 1), i);
                std::fs::write(folder.join(format!("ct_{i:03}.dcm")), dicom)?;
            }
            w.files += 4;
        }
    }
    Ok(w.files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_move_across_months_and_years() {
        assert_eq!(date_plus((2026, 11, 21), 10), (2026, 12, 1));
        assert_eq!(date_plus((2026, 12, 31), 1), (2027, 1, 1));
        assert_eq!(date_plus((2024, 3, 1), -1), (2024, 2, 29));
        assert_eq!(date_plus((2026, 11, 21), -365), (2025, 11, 21));
    }
}
