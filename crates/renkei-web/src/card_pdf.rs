//! The printable card (85.6 × 54 mm, ID-1 size) and its seal label, as PDF.
//!
//! Text is set in a Japanese OpenType font supplied by the deployment (Debian's
//! `fonts-noto-cjk` by default); krilla embeds only the glyphs used.

use krilla::Document;
use krilla::geom::{PathBuilder, Point, Rect};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::text::{Font, TextDirection};
use qrcode::QrCode;

/// What a card shows.
#[derive(Clone, Debug)]
pub struct CardContent {
    /// `HMカード` or `診療情報開示カード`.
    pub title: String,
    pub network: String,
    /// `34-0000-0001-8`.
    pub printed_id: String,
    pub kanji_name: String,
    pub kana_name: String,
    pub issuer: String,
    /// `2026-11-21`.
    pub issued_on: String,
    /// What the QR code holds.
    pub payload: String,
    /// The verification code, printed for reading the card by hand.
    pub code: String,
}

const MM: f32 = 72.0 / 25.4;

fn qr(
    surface: &mut krilla::surface::Surface<'_>,
    text: &str,
    x: f32,
    y: f32,
    size: f32,
) -> Result<(), String> {
    let code = QrCode::new(text.as_bytes()).map_err(|e| format!("QR: {e}"))?;
    let width = code.width();
    let quiet = 2usize;
    let module = size / (width + 2 * quiet) as f32;
    let mut pb = PathBuilder::new();
    for (i, color) in code.to_colors().iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (cx, cy) = (i % width + quiet, i / width + quiet);
            if let Some(r) = Rect::from_xywh(
                x + cx as f32 * module,
                y + cy as f32 * module,
                module,
                module,
            ) {
                pb.push_rect(r);
            }
        }
    }
    if let Some(path) = pb.finish() {
        surface.set_fill(Some(Fill::default()));
        surface.draw_path(&path);
    }
    Ok(())
}

fn border(surface: &mut krilla::surface::Surface<'_>, w: f32, h: f32) {
    let mut pb = PathBuilder::new();
    if let Some(r) = Rect::from_xywh(1.0, 1.0, w - 2.0, h - 2.0) {
        pb.push_rect(r);
    }
    if let Some(path) = pb.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            width: 0.6,
            ..Stroke::default()
        }));
        surface.draw_path(&path);
        surface.set_stroke(None);
        surface.set_fill(Some(Fill::default()));
    }
}

/// The card (page 1) and a seal label (page 2, 62 × 29 mm) for the paper chart.
pub fn card_pdf(font_bytes: Vec<u8>, card: &CardContent) -> Result<Vec<u8>, String> {
    let font = Font::new(font_bytes.into(), 0).ok_or(
        "the card font could not be read (an OpenType/TrueType font or collection is needed)",
    )?;
    let mut document = Document::new();
    let text = |s: &mut krilla::surface::Surface<'_>, x: f32, y: f32, size: f32, t: &str| {
        s.draw_text(
            Point::from_xy(x, y),
            font.clone(),
            size,
            t,
            false,
            TextDirection::Auto,
        );
    };
    {
        let (w, h) = (85.6 * MM, 54.0 * MM);
        let mut page = document.start_page_with(PageSettings::from_wh(w, h).ok_or("page size")?);
        let mut s = page.surface();
        border(&mut s, w, h);
        text(&mut s, 4.0 * MM, 7.0 * MM, 11.0, &card.title);
        text(&mut s, 4.0 * MM, 11.0 * MM, 6.5, &card.network);
        text(&mut s, 4.0 * MM, 22.0 * MM, 7.0, &card.kana_name);
        text(&mut s, 4.0 * MM, 29.0 * MM, 13.0, &card.kanji_name);
        text(&mut s, 4.0 * MM, 37.0 * MM, 7.0, "地域共通ID");
        text(&mut s, 4.0 * MM, 42.5 * MM, 11.0, &card.printed_id);
        text(
            &mut s,
            4.0 * MM,
            49.5 * MM,
            6.0,
            &format!("発行 {} {}", card.issuer, card.issued_on),
        );
        qr(&mut s, &card.payload, w - 30.0 * MM, 14.0 * MM, 27.0 * MM)?;
        // For reading the card by hand; not on the chart label below.
        text(
            &mut s,
            w - 30.0 * MM,
            45.5 * MM,
            6.5,
            &format!("確認コード {}", card.code),
        );
        s.finish();
        page.finish();
    }
    {
        let (w, h) = (62.0 * MM, 29.0 * MM);
        let mut page = document.start_page_with(PageSettings::from_wh(w, h).ok_or("label size")?);
        let mut s = page.surface();
        border(&mut s, w, h);
        qr(&mut s, &card.payload, 1.5 * MM, 1.5 * MM, 26.0 * MM)?;
        text(&mut s, 29.0 * MM, 7.0 * MM, 7.0, &card.title);
        text(&mut s, 29.0 * MM, 14.0 * MM, 9.0, &card.kanji_name);
        text(&mut s, 29.0 * MM, 19.0 * MM, 6.0, &card.kana_name);
        text(&mut s, 29.0 * MM, 25.0 * MM, 8.0, &card.printed_id);
        s.finish();
        page.finish();
    }
    document.finish().map_err(|e| format!("PDF: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Renders a card with the system's Japanese font and reads the text back out of the PDF
    /// (the glyphs map back to the right characters); fails, saying what to install, without the
    /// font or pdftotext.
    #[test]
    fn renders_a_card_with_japanese_text() {
        let font = std::fs::read(crate::DEFAULT_CARD_FONT).unwrap_or_else(|e| {
            panic!(
                "{} is needed ({e}): apt-get install fonts-noto-cjk",
                crate::DEFAULT_CARD_FONT
            )
        });
        let card = CardContent {
            title: "HMカード".into(),
            network: "ひろしま医療情報ネットワーク".into(),
            printed_id: "34-0000-0001-8".into(),
            kanji_name: "髙橋 太郎".into(),
            kana_name: "タカハシ タロウ".into(),
            issuer: "広島中央総合病院".into(),
            issued_on: "2026-11-21".into(),
            payload: "RENKEI1:34000000018::ABCDEFGHIJKLMNOP".into(),
            code: "123456".into(),
        };
        let pdf = card_pdf(font, &card).unwrap();
        assert!(pdf.starts_with(b"%PDF"));
        if let Ok(out) = std::env::var("RENKEI_CARD_OUT") {
            std::fs::write(out, &pdf).unwrap();
        }
        assert!(
            pdf.len() < 200_000,
            "only the used glyphs are embedded ({} bytes)",
            pdf.len()
        );
        let dir = std::env::temp_dir().join(format!("renkei-card-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("card.pdf");
        std::fs::write(&path, &pdf).unwrap();
        match std::process::Command::new("pdftotext")
            .arg(&path)
            .arg("-")
            .output()
        {
            Ok(out) if out.status.success() => {
                let text = String::from_utf8_lossy(&out.stdout);
                for wanted in [
                    "HMカード",
                    "髙橋",
                    "太郎",
                    "タカハシ",
                    "34-0000-0001-8",
                    "広島中央総合病院",
                    "確認コード 123456",
                ] {
                    assert!(
                        text.contains(wanted),
                        "{wanted} missing from the PDF text: {text}"
                    );
                }
            }
            Ok(out) => panic!("pdftotext failed: {}", String::from_utf8_lossy(&out.stderr)),
            Err(e) => panic!(
                "pdftotext is needed to read the card back ({e}): apt-get install poppler-utils"
            ),
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
