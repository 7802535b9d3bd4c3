//! Medical images for the viewer: a DICOM file's identity (study, series, instance, frames)
//! and its frames rendered to PNG with a window (center/width) chosen from presets that
//! radiologists use, or the file's own.
//!
//! Architecture invariant: no IO, and never a panic on input: files come from hospitals and
//! clinics, so a malformed one is an error value. The decoding libraries are called behind
//! `catch_unwind` as a last line, since their guarantees are not ours.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption, WindowLevel};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DicomError {
    #[error("DICOM ファイルではありません（128 バイトのプリアンブルの後に DICM がありません）")]
    NotDicom,
    #[error("DICOM ファイルを読めません: {0}")]
    Unreadable(String),
    #[error("画像を含まない DICOM です")]
    NoImage,
    #[error("フレーム {frame} はありません（全 {frames} フレーム）")]
    NoSuchFrame { frame: u32, frames: u32 },
    #[error("画像に変換できません: {0}")]
    Render(String),
}

/// What the viewer shows about an image file and how it orders it.
#[derive(Clone, Debug, PartialEq)]
pub struct DicomInfo {
    pub modality: String,
    pub study_uid: String,
    pub series_uid: String,
    pub series_number: i32,
    pub series_description: String,
    pub instance_number: i32,
    pub study_date: String,
    pub frames: u32,
    pub rows: u32,
    pub columns: u32,
    /// The file's own window (center, width), if it has one.
    pub window: Option<(f64, f64)>,
}

/// A window preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The file's own window (or the full range of its values).
    Auto,
    Lung,
    Mediastinum,
    Abdomen,
    Bone,
    Brain,
}

impl Preset {
    pub const ALL: [Preset; 6] = [
        Preset::Auto,
        Preset::Lung,
        Preset::Mediastinum,
        Preset::Abdomen,
        Preset::Bone,
        Preset::Brain,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Preset::Auto => "auto",
            Preset::Lung => "lung",
            Preset::Mediastinum => "mediastinum",
            Preset::Abdomen => "abdomen",
            Preset::Bone => "bone",
            Preset::Brain => "brain",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Preset::Auto => "標準",
            Preset::Lung => "肺野",
            Preset::Mediastinum => "縦隔",
            Preset::Abdomen => "腹部",
            Preset::Bone => "骨",
            Preset::Brain => "頭部",
        }
    }

    pub fn from_key(key: &str) -> Preset {
        Self::ALL
            .into_iter()
            .find(|p| p.key() == key)
            .unwrap_or(Preset::Auto)
    }

    /// The window (center, width) in Hounsfield units; `None` for the file's own.
    pub fn window(self) -> Option<(f64, f64)> {
        match self {
            Preset::Auto => None,
            Preset::Lung => Some((-600.0, 1500.0)),
            Preset::Mediastinum => Some((40.0, 400.0)),
            Preset::Abdomen => Some((50.0, 350.0)),
            Preset::Bone => Some((400.0, 1800.0)),
            Preset::Brain => Some((40.0, 80.0)),
        }
    }

    /// The presets that make sense for a modality (HU windows are for CT).
    pub fn for_modality(modality: &str) -> &'static [Preset] {
        if modality == "CT" {
            &Preset::ALL
        } else {
            &[Preset::Auto]
        }
    }
}

/// Whether bytes look like a DICOM Part 10 file.
pub fn is_dicom(bytes: &[u8]) -> bool {
    bytes.get(128..132) == Some(b"DICM")
}

fn open(bytes: &[u8]) -> Result<DefaultDicomObject, DicomError> {
    if !is_dicom(bytes) {
        return Err(DicomError::NotDicom);
    }
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        OpenFileOptions::new().from_reader(Cursor::new(&bytes[128..]))
    }));
    match attempt {
        Ok(Ok(obj)) => Ok(obj),
        Ok(Err(e)) => Err(DicomError::Unreadable(e.to_string())),
        Err(_) => Err(DicomError::Unreadable("malformed data".into())),
    }
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.element(tag)
        .ok()
        .and_then(|e| {
            e.to_str()
                .ok()
                .map(|s| s.trim().trim_end_matches('\0').to_string())
        })
        .unwrap_or_default()
}

fn int(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    obj.element(tag).ok().and_then(|e| e.to_int::<i64>().ok())
}

fn float(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<f64> {
    obj.element(tag).ok().and_then(|e| e.to_float64().ok())
}

/// The identity and shape of an image file.
pub fn inspect(bytes: &[u8]) -> Result<DicomInfo, DicomError> {
    let obj = open(bytes)?;
    if obj.element(tags::PIXEL_DATA).is_err() {
        return Err(DicomError::NoImage);
    }
    let window = match (
        float(&obj, tags::WINDOW_CENTER),
        float(&obj, tags::WINDOW_WIDTH),
    ) {
        (Some(c), Some(w)) if w > 0.0 => Some((c, w)),
        _ => None,
    };
    Ok(DicomInfo {
        modality: text(&obj, tags::MODALITY),
        study_uid: text(&obj, tags::STUDY_INSTANCE_UID),
        series_uid: text(&obj, tags::SERIES_INSTANCE_UID),
        series_number: int(&obj, tags::SERIES_NUMBER).unwrap_or(0) as i32,
        series_description: text(&obj, tags::SERIES_DESCRIPTION),
        instance_number: int(&obj, tags::INSTANCE_NUMBER).unwrap_or(0) as i32,
        study_date: text(&obj, tags::STUDY_DATE),
        frames: int(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32,
        rows: int(&obj, tags::ROWS).unwrap_or(0) as u32,
        columns: int(&obj, tags::COLUMNS).unwrap_or(0) as u32,
        window,
    })
}

/// One frame as PNG, windowed by `preset` (or the file's own window), scaled down so that its
/// longer edge is at most `max_edge` pixels when given (thumbnails).
pub fn render_png(
    bytes: &[u8],
    frame: u32,
    preset: Preset,
    max_edge: Option<u32>,
) -> Result<Vec<u8>, DicomError> {
    let info = inspect(bytes)?;
    if frame >= info.frames {
        return Err(DicomError::NoSuchFrame {
            frame,
            frames: info.frames,
        });
    }
    let obj = open(bytes)?;
    let voi = match preset.window().or(info.window) {
        Some((center, width)) => VoiLutOption::Custom(WindowLevel { center, width }),
        None => VoiLutOption::Normalize,
    };
    let rendered = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, DicomError> {
        let pixels = obj
            .decode_pixel_data()
            .map_err(|e| DicomError::Render(e.to_string()))?;
        let options = ConvertOptions::new().with_voi_lut(voi).force_8bit();
        let mut image = pixels
            .to_dynamic_image_with_options(frame, &options)
            .map_err(|e| DicomError::Render(e.to_string()))?;
        if let Some(edge) = max_edge {
            let edge = edge.max(1);
            if image.width().max(image.height()) > edge {
                image = image.thumbnail(edge, edge);
            }
        }
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| DicomError::Render(e.to_string()))?;
        Ok(png)
    }));
    match rendered {
        Ok(r) => r,
        Err(_) => Err(DicomError::Render("malformed pixel data".into())),
    }
}

/// A synthetic CT slice (for tests and demonstrations): a disc of soft tissue (40 HU) with a
/// ring of bone (1000 HU) in air (-1000 HU), `frames` frames, stored as 16-bit values with a
/// rescale of -1024.
pub fn synthetic_ct(size: u16, frames: u16, series: (&str, i32), instance: i32) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let (series_uid, series_number) = series;
    let n = usize::from(size);
    let mut pixels: Vec<u16> = Vec::with_capacity(n * n * usize::from(frames));
    for f in 0..usize::from(frames) {
        for y in 0..n {
            for x in 0..n {
                let (dx, dy) = (x as f64 - n as f64 / 2.0, y as f64 - n as f64 / 2.0);
                let r = (dx * dx + dy * dy).sqrt() / (n as f64 / 2.0);
                let hu: f64 = if r > 0.9 {
                    -1000.0
                } else if r > 0.75 {
                    1000.0
                } else {
                    40.0 + f as f64
                };
                pixels.push((hu + 1024.0).clamp(0.0, 65535.0) as u16);
            }
        }
    }
    let instance_uid = format!("{series_uid}.{instance}");
    let el = |tag, vr, value: PrimitiveValue| DataElement::new(tag, vr, value);
    let obj = InMemDicomObject::from_element_iter([
        // UTF-8, for the Japanese series description.
        el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192".into()),
        el(
            tags::SOP_CLASS_UID,
            VR::UI,
            dicom_dictionary_std::uids::CT_IMAGE_STORAGE.into(),
        ),
        el(tags::SOP_INSTANCE_UID, VR::UI, instance_uid.clone().into()),
        el(tags::STUDY_DATE, VR::DA, "20261120".into()),
        el(tags::MODALITY, VR::CS, "CT".into()),
        el(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            "1.2.392.200284.99.1".into(),
        ),
        el(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.into()),
        el(
            tags::SERIES_NUMBER,
            VR::IS,
            series_number.to_string().into(),
        ),
        el(tags::SERIES_DESCRIPTION, VR::LO, "胸部単純".into()),
        el(tags::INSTANCE_NUMBER, VR::IS, instance.to_string().into()),
        el(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        el(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        ),
        el(tags::NUMBER_OF_FRAMES, VR::IS, frames.to_string().into()),
        el(tags::ROWS, VR::US, PrimitiveValue::from(size)),
        el(tags::COLUMNS, VR::US, PrimitiveValue::from(size)),
        el(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        el(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16)),
        el(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16)),
        el(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0_u16),
        ),
        el(tags::RESCALE_INTERCEPT, VR::DS, "-1024".into()),
        el(tags::RESCALE_SLOPE, VR::DS, "1".into()),
        el(tags::WINDOW_CENTER, VR::DS, "40".into()),
        el(tags::WINDOW_WIDTH, VR::DS, "400".into()),
        el(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ]);
    let meta = FileMetaTableBuilder::new()
        .transfer_syntax(dicom_dictionary_std::uids::EXPLICIT_VR_LITTLE_ENDIAN)
        .media_storage_sop_class_uid(dicom_dictionary_std::uids::CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(instance_uid);
    let mut out = Vec::new();
    match obj.with_meta(meta) {
        Ok(file) => {
            if file.write_all(&mut out).is_err() {
                out.clear();
            }
        }
        Err(_) => out.clear(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(png: &[u8]) -> image::GrayImage {
        image::load_from_memory(png).unwrap().to_luma8()
    }

    #[test]
    fn a_ct_slice_renders_with_each_preset() {
        let bytes = synthetic_ct(64, 2, ("1.2.392.200284.99.1.1", 1), 3);
        assert!(is_dicom(&bytes));
        let info = inspect(&bytes).unwrap();
        assert_eq!(info.modality, "CT");
        assert_eq!((info.rows, info.columns, info.frames), (64, 64, 2));
        assert_eq!(info.instance_number, 3);
        assert_eq!(info.window, Some((40.0, 400.0)));
        // Soft tissue (40 HU) at the centre: mid-grey in a mediastinal window, near white in a
        // lung window, dark in a bone window.
        let centre =
            |p: Preset| decode(&render_png(&bytes, 0, p, None).unwrap()).get_pixel(32, 32)[0];
        let (mediastinum, lung, bone) = (
            centre(Preset::Mediastinum),
            centre(Preset::Lung),
            centre(Preset::Bone),
        );
        assert!((110..=145).contains(&mediastinum), "{mediastinum}");
        assert!(lung > 200, "{lung}");
        assert!(bone < 90, "{bone}");
        // Air stays black, bone white, in the file's own window.
        let auto = decode(&render_png(&bytes, 0, Preset::Auto, None).unwrap());
        assert!(auto.get_pixel(0, 0)[0] < 10);
        assert!(auto.get_pixel(32, 5)[0] > 245);
        // A thumbnail, and the second frame.
        let thumb = decode(&render_png(&bytes, 1, Preset::Auto, Some(16)).unwrap());
        assert_eq!(thumb.dimensions(), (16, 16));
        assert_eq!(
            render_png(&bytes, 2, Preset::Auto, None),
            Err(DicomError::NoSuchFrame {
                frame: 2,
                frames: 2
            })
        );
        assert_eq!(Preset::for_modality("CR"), &[Preset::Auto]);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let good = synthetic_ct(16, 1, ("1.2.3", 1), 1);
        assert_eq!(inspect(b"not a dicom file"), Err(DicomError::NotDicom));
        let mut cut = good.clone();
        cut.truncate(good.len() / 2);
        assert!(render_png(&cut, 0, Preset::Auto, None).is_err());
        // Every truncation and a byte flipped at many offsets: errors or images, never a panic.
        for at in (132..good.len()).step_by(97) {
            let _ = render_png(&good[..at], 0, Preset::Auto, Some(8));
            let mut flipped = good.clone();
            flipped[at] ^= 0xFF;
            let _ = render_png(&flipped, 0, Preset::Lung, Some(8));
        }
    }
}

/// The largest picture decoded (each side), and the most memory a decoder may take: a hostile
/// file cannot make the server allocate gigabytes.
const MAX_PICTURE_SIDE: u32 = 20_000;
const MAX_PICTURE_ALLOC: u64 = 512 * 1024 * 1024;

/// An ordinary picture (JPEG, PNG, BMP, GIF, TIFF; the format is read from the bytes) as PNG,
/// scaled down so that its longer edge is at most `max_edge` when given. Used for files sent in
/// consultations, so that the browser only ever decodes PNG made here.
pub fn render_picture_png(bytes: &[u8], max_edge: Option<u32>) -> Result<Vec<u8>, DicomError> {
    let rendered = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, DicomError> {
        let mut reader = image::ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|e| DicomError::Render(e.to_string()))?;
        if reader.format().is_none() {
            return Err(DicomError::Render(
                "対応していない画像形式です（JPEG・PNG・BMP・GIF・TIFF・DICOM に対応）".into(),
            ));
        }
        let mut limits = image::Limits::default();
        limits.max_image_width = Some(MAX_PICTURE_SIDE);
        limits.max_image_height = Some(MAX_PICTURE_SIDE);
        limits.max_alloc = Some(MAX_PICTURE_ALLOC);
        reader.limits(limits);
        let mut image = reader
            .decode()
            .map_err(|e| DicomError::Render(e.to_string()))?;
        if let Some(edge) = max_edge {
            let edge = edge.max(1);
            if image.width().max(image.height()) > edge {
                image = image.thumbnail(edge, edge);
            }
        }
        let mut png = Vec::new();
        image
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .map_err(|e| DicomError::Render(e.to_string()))?;
        Ok(png)
    }));
    match rendered {
        Ok(r) => r,
        Err(_) => Err(DicomError::Render("malformed picture".into())),
    }
}

#[cfg(test)]
#[allow(clippy::panic)]
mod picture_tests {
    use super::*;

    fn encode(format: image::ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), format)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        out
    }

    #[test]
    fn every_consultation_picture_format_becomes_png() {
        for format in [
            image::ImageFormat::Jpeg,
            image::ImageFormat::Png,
            image::ImageFormat::Bmp,
            image::ImageFormat::Gif,
            image::ImageFormat::Tiff,
        ] {
            let png = render_picture_png(&encode(format, 300, 200), Some(150))
                .unwrap_or_else(|e| panic!("{format:?}: {e}"));
            let back = image::load_from_memory(&png).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!((back.width(), back.height()), (150, 100), "{format:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(render_picture_png(b"not a picture", None).is_err());
        let mut png = encode(image::ImageFormat::Png, 10, 10);
        png.truncate(40);
        assert!(render_picture_png(&png, None).is_err());
    }
}
