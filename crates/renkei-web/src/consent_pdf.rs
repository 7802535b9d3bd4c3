//! The consent form (同意書) as an A4 PDF for the patient's signature: the patient, the
//! disclosing hospital, the disclosure targets, the information and the period, then signature
//! lines. Japanese text in the deployment's OpenType font (as for cards).

use krilla::Document;
use krilla::geom::{PathBuilder, Point};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};

/// What the form states.
#[derive(Clone, Debug)]
pub struct ConsentForm {
    pub network: String,
    pub hospital: String,
    pub patient_kanji: String,
    pub patient_kana: String,
    pub birth_date: String,
    pub common_id: String,
    pub targets: Vec<String>,
    pub categories: Vec<String>,
    pub period: String,
    /// `2026-11-21`.
    pub created: String,
}

const MM: f32 = 72.0 / 25.4;

/// Splits text into lines of at most `width` characters (Japanese text breaks anywhere).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    chars
        .chunks(width.max(1))
        .map(|c| c.iter().collect())
        .collect()
}

/// Draws one line of text at `x`, `*y` and moves `*y` down by `advance`.
fn put(
    s: &mut krilla::surface::Surface<'_>,
    font: &Font,
    y: &mut f32,
    x: f32,
    size: f32,
    text: &str,
    advance: f32,
) {
    s.draw_text(
        Point::from_xy(x, *y),
        font.clone(),
        size,
        text,
        false,
        TextDirection::Auto,
    );
    *y += advance;
}

pub fn consent_pdf(font_bytes: Vec<u8>, form: &ConsentForm) -> Result<Vec<u8>, String> {
    let font = Font::new(font_bytes.into(), 0)
        .ok_or("the font could not be read (an OpenType/TrueType font or collection is needed)")?;
    let mut document = Document::new();
    let (w, h) = (210.0 * MM, 297.0 * MM);
    let mut page = document.start_page_with(PageSettings::from_wh(w, h).ok_or("page size")?);
    let mut s = page.surface();
    let mut y = 28.0 * MM;
    let left = 22.0 * MM;
    put(
        &mut s,
        &font,
        &mut y,
        62.0 * MM,
        18.0,
        "診療情報の開示に関する同意書",
        12.0 * MM,
    );
    put(
        &mut s,
        &font,
        &mut y,
        left,
        10.5,
        &format!("{} 御中", form.hospital),
        10.0 * MM,
    );
    let body = format!(
        "私は、{}（以下「ネットワーク」）において、{}が保有する私の診療情報を、下記のとおり開示することに同意します。同意はいつでも撤回でき、撤回した時点から開示されなくなることの説明を受けました。",
        form.network, form.hospital
    );
    for l in wrap(&body, 40) {
        put(&mut s, &font, &mut y, left, 10.5, &l, 6.5 * MM);
    }
    y += 4.0 * MM;
    put(&mut s, &font, &mut y, left, 11.0, "記", 9.0 * MM);
    put(&mut s, &font, &mut y, left, 10.5, "1. 開示先", 6.5 * MM);
    for t in &form.targets {
        for l in wrap(t, 36) {
            put(&mut s, &font, &mut y, left + 8.0 * MM, 10.0, &l, 6.0 * MM);
        }
    }
    y += 2.0 * MM;
    put(
        &mut s,
        &font,
        &mut y,
        left,
        10.5,
        "2. 開示する情報",
        6.5 * MM,
    );
    for l in wrap(&form.categories.join("・"), 36) {
        put(&mut s, &font, &mut y, left + 8.0 * MM, 10.0, &l, 6.0 * MM);
    }
    y += 2.0 * MM;
    put(
        &mut s,
        &font,
        &mut y,
        left,
        10.5,
        "3. 開示する期間（診療情報の日付）",
        6.5 * MM,
    );
    put(
        &mut s,
        &font,
        &mut y,
        left + 8.0 * MM,
        10.0,
        &form.period,
        8.0 * MM,
    );
    put(&mut s, &font, &mut y, left, 10.5, "4. 患者", 6.5 * MM);
    put(
        &mut s,
        &font,
        &mut y,
        left + 8.0 * MM,
        9.0,
        &form.patient_kana,
        5.5 * MM,
    );
    put(
        &mut s,
        &font,
        &mut y,
        left + 8.0 * MM,
        12.0,
        &form.patient_kanji,
        7.0 * MM,
    );
    put(
        &mut s,
        &font,
        &mut y,
        left + 8.0 * MM,
        10.0,
        &format!(
            "生年月日 {}　地域共通ID {}",
            form.birth_date, form.common_id
        ),
        14.0 * MM,
    );
    put(
        &mut s,
        &font,
        &mut y,
        left,
        10.5,
        &format!("同意日　{}", form.created),
        14.0 * MM,
    );
    let sign_y = y;
    put(&mut s, &font, &mut y, left, 10.5, "患者署名", 14.0 * MM);
    put(
        &mut s,
        &font,
        &mut y,
        left,
        10.5,
        "代理人署名（続柄）",
        14.0 * MM,
    );
    put(
        &mut s,
        &font,
        &mut y,
        left,
        10.5,
        "説明者（所属・氏名）",
        14.0 * MM,
    );
    // Signature lines.
    let mut pb = PathBuilder::new();
    for i in 0..3 {
        let ly = sign_y + 2.0 * MM + i as f32 * 14.0 * MM;
        pb.move_to(left + 50.0 * MM, ly);
        pb.line_to(w - 22.0 * MM, ly);
    }
    if let Some(path) = pb.finish() {
        s.set_fill(None);
        s.set_stroke(Some(Stroke {
            width: 0.6,
            ..Stroke::default()
        }));
        s.draw_path(&path);
        s.set_stroke(None);
        s.set_fill(Some(Fill::default()));
    }
    s.finish();
    page.finish();
    document.finish().map_err(|e| format!("PDF: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a form and reads its text back (fails, saying what to install, without the font or pdftotext).
    #[test]
    fn renders_a_consent_form_in_japanese() {
        let font = std::fs::read(crate::DEFAULT_CARD_FONT).unwrap_or_else(|e| {
            panic!(
                "{} is needed ({e}): apt-get install fonts-noto-cjk",
                crate::DEFAULT_CARD_FONT
            )
        });
        let form = ConsentForm {
            network: "ひろしま医療情報ネットワーク".into(),
            hospital: "広島中央総合病院".into(),
            patient_kanji: "髙橋 太郎".into(),
            patient_kana: "タカハシ タロウ".into(),
            birth_date: "1948-04-05".into(),
            common_id: "34000000018".into(),
            targets: vec!["みどり内科クリニック".into(), "かわせ整形外科".into()],
            categories: vec!["検査".into(), "処方".into(), "病名".into()],
            period: "2025-01-01 から （現在） まで".into(),
            created: "2026-11-21".into(),
        };
        let pdf = consent_pdf(font, &form).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        if let Ok(out) = std::env::var("RENKEI_CONSENT_OUT") {
            std::fs::write(out, &pdf).unwrap();
        }
        let dir = std::env::temp_dir().join(format!("renkei-consent-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("consent.pdf");
        std::fs::write(&path, &pdf).unwrap();
        match std::process::Command::new("pdftotext")
            .arg(&path)
            .arg("-")
            .output()
        {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                for wanted in [
                    "同意書",
                    "髙橋",
                    "広島中央総合病院",
                    "みどり内科クリニック",
                    "検査",
                    "2025-01-01",
                    "患者署名",
                ] {
                    assert!(text.contains(wanted), "{wanted} missing: {text}");
                }
            }
            Ok(out) => panic!("pdftotext failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => panic!(
                "pdftotext is needed to read the form back ({e}): apt-get install poppler-utils"
            ),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
