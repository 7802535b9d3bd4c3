//! Medical images for the viewer: a DICOM file's identity (study, series, instance, frames)
//! and its frames rendered to PNG with a window (center/width) chosen from presets that
//! radiologists use, or the file's own.
//!
//! Architecture invariant: no IO, and never a panic on input: files come from hospitals and
//! clinics, so a malformed one is an error value. The decoding libraries are called behind
//! `catch_unwind` as a last line, since their guarantees are not ours.
//!
//! Memory invariant: one file cannot take the server's memory. Every file is walked by
//! `prescan` before dicom-rs sees it (declared lengths within the file, shallow nesting, a
//! bounded element count, a transfer syntax we decode), and a frame is decoded only when its
//! decoded size fits [`RENDER_BUDGET_BYTES`].

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption, WindowLevel};

mod prescan;

pub use prescan::{MAX_DEPTH, MAX_HEADERS};
use prescan::{Pixels, Scanned, prescan};

/// The most memory one render may need, in bytes. A decoded frame, its windowed 8-bit copy,
/// the scaled copy and the PNG are alive together, so a frame is decoded only when
/// [`RENDER_COPIES`] times its decoded size fits. 256 MiB lets through a 16-bit frame of about
/// 5,800 × 5,800 pixels (mammography and large radiographs are smaller); the web server also
/// bounds how many renders run at once.
pub const RENDER_BUDGET_BYTES: u64 = 256 * 1024 * 1024;

/// How many times a decoded frame's size a render holds at its peak (see
/// [`RENDER_BUDGET_BYTES`]).
pub const RENDER_COPIES: u64 = 4;

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum DicomError {
    #[error("DICOM ファイルではありません（128 バイトのプリアンブルの後に DICM がありません）")]
    NotDicom,
    #[error("DICOM ファイルを読めません: {0}")]
    Unreadable(String),
    /// An element, sequence or item declares more bytes than the file has after it.
    #[error(
        "DICOM ファイルが壊れています（{offset} バイト目の要素が {declared} バイトを宣言していますが、残りは {remaining} バイトです）"
    )]
    DeclaredLength {
        offset: usize,
        declared: u32,
        remaining: usize,
    },
    /// The structure is not one dicom-rs may be given (too deep, too many elements, lengths
    /// that do not add up).
    #[error("DICOM ファイルの構造が不正です（{0}）")]
    Malformed(String),
    #[error("対応していない転送構文です: {0}")]
    UnsupportedTransferSyntax(String),
    #[error("画像を含まない DICOM です")]
    NoImage,
    #[error("フレーム {frame} はありません（全 {frames} フレーム）")]
    NoSuchFrame { frame: u32, frames: u32 },
    /// Decoding the frame would need more memory than one render may take.
    #[error(
        "画像が大きすぎて表示できません（展開に約 {needed} バイト必要で、上限は {budget} バイトです）。ファイルをダウンロードしてご覧ください"
    )]
    TooLarge { needed: u64, budget: u64 },
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

/// Checks a file with [`prescan`] and parses it: everything up to the pixel data when
/// `with_pixels` is false (enough for [`inspect`], and the pixels are not copied), else all.
/// Files without top-level pixel data are refused here, before the parse.
fn open(bytes: &[u8], with_pixels: bool) -> Result<(Scanned, DefaultDicomObject), DicomError> {
    let scanned = prescan(bytes)?;
    if !scanned.pixel_data {
        return Err(DicomError::NoImage);
    }
    let body = bytes.get(128..).ok_or(DicomError::NotDicom)?;
    // The preamble is skipped here, never detected: detection looks for another `DICM` 128
    // bytes further, and would then read a meta group other than the one just checked.
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    if !with_pixels {
        options = options.read_until(tags::PIXEL_DATA);
    }
    let attempt = catch_unwind(AssertUnwindSafe(|| options.from_reader(Cursor::new(body))));
    match attempt {
        Ok(Ok(obj)) => Ok((scanned, obj)),
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
    let (_, obj) = open(bytes, false)?;
    Ok(info(&obj))
}

fn info(obj: &DefaultDicomObject) -> DicomInfo {
    let window = match (
        float(obj, tags::WINDOW_CENTER),
        float(obj, tags::WINDOW_WIDTH),
    ) {
        (Some(c), Some(w)) if w > 0.0 => Some((c, w)),
        _ => None,
    };
    DicomInfo {
        modality: text(obj, tags::MODALITY),
        study_uid: text(obj, tags::STUDY_INSTANCE_UID),
        series_uid: text(obj, tags::SERIES_INSTANCE_UID),
        series_number: int(obj, tags::SERIES_NUMBER).unwrap_or(0) as i32,
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        instance_number: int(obj, tags::INSTANCE_NUMBER).unwrap_or(0) as i32,
        study_date: text(obj, tags::STUDY_DATE),
        frames: int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1).max(1) as u32,
        rows: int(obj, tags::ROWS).unwrap_or(0) as u32,
        columns: int(obj, tags::COLUMNS).unwrap_or(0) as u32,
        window,
    }
}

/// The bytes one decoded frame takes, refused when it is nothing, when its sample layout is
/// one the renderer does not draw (its lookup tables grow with 2^BitsStored), or when
/// [`RENDER_COPIES`] of it exceed [`RENDER_BUDGET_BYTES`]. JPEG frames are also measured by
/// their own headers, which is what jpeg-decoder allocates by.
fn check_budget(obj: &DefaultDicomObject, scanned: &Scanned) -> Result<u64, DicomError> {
    let attribute = |tag| int(obj, tag).and_then(|v| u64::try_from(v).ok());
    let bits_allocated = attribute(tags::BITS_ALLOCATED).unwrap_or(0);
    if !matches!(bits_allocated, 1 | 8 | 16) {
        return Err(DicomError::Render(format!(
            "BitsAllocated {bits_allocated} には対応していません（1・8・16 のみ）"
        )));
    }
    if let Some(stored) = attribute(tags::BITS_STORED)
        && (stored == 0 || stored > bits_allocated)
    {
        return Err(DicomError::Render(format!(
            "BitsStored {stored} が BitsAllocated {bits_allocated} と矛盾しています"
        )));
    }
    let frame = [
        attribute(tags::ROWS).unwrap_or(0),
        attribute(tags::COLUMNS).unwrap_or(0),
        attribute(tags::SAMPLES_PER_PIXEL).unwrap_or(1),
        bits_allocated.div_ceil(8),
    ]
    .into_iter()
    .try_fold(1u64, u64::checked_mul);
    let frame = match frame {
        Some(0) => {
            return Err(DicomError::Render(
                "画像の大きさ（Rows・Columns）がありません".into(),
            ));
        }
        Some(n) => n,
        None => u64::MAX,
    };
    let jpeg = if scanned.pixels == Pixels::Jpeg {
        largest_jpeg_frame(obj)?
    } else {
        0
    };
    let needed = frame.max(jpeg).saturating_mul(RENDER_COPIES);
    if needed > RENDER_BUDGET_BYTES {
        return Err(DicomError::TooLarge {
            needed,
            budget: RENDER_BUDGET_BYTES,
        });
    }
    // dicom-pixeldata copies the decoded JPEG into a buffer sized by Rows and Columns, and
    // panics when it is bigger.
    if jpeg > frame {
        return Err(DicomError::Render(
            "JPEG の画像が Rows・Columns より大きくなっています".into(),
        ));
    }
    Ok(frame)
}

/// The most bytes any JPEG frame in the pixel data declares (width × height × bytes per
/// pixel). jpeg-decoder sizes its buffers by the JPEG's own frame header, not by Rows and
/// Columns, and dicom-pixeldata hands it a frame that starts at a fragment; so every fragment
/// that starts a JPEG stream (SOI) is read up to its frame header, which reads nothing more.
/// A stream whose frame header is not in its first fragment is refused: it cannot be measured
/// without assembling the frame.
fn largest_jpeg_frame(obj: &DefaultDicomObject) -> Result<u64, DicomError> {
    let fragments = obj
        .element(tags::PIXEL_DATA)
        .ok()
        .and_then(|e| e.value().fragments())
        .ok_or_else(|| DicomError::Render("JPEG の画素データが断片になっていません".into()))?;
    let measured = catch_unwind(AssertUnwindSafe(|| -> Result<u64, DicomError> {
        let mut largest = 0u64;
        for fragment in fragments.iter().filter(|f| f.starts_with(&[0xFF, 0xD8])) {
            let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(fragment.as_slice()));
            decoder
                .read_info()
                .map_err(|e| DicomError::Render(format!("JPEG のヘッダーを読めません: {e}")))?;
            let info = decoder
                .info()
                .ok_or_else(|| DicomError::Render("JPEG のヘッダーを読めません".into()))?;
            let size = u64::from(info.width)
                * u64::from(info.height)
                * info.pixel_format.pixel_bytes() as u64;
            largest = largest.max(size);
        }
        Ok(largest)
    }));
    match measured {
        Ok(r) => r,
        Err(_) => Err(DicomError::Render("malformed JPEG header".into())),
    }
}

/// One frame as PNG, windowed by `preset` (or the file's own window), scaled down so that its
/// longer edge is at most `max_edge` pixels when given (thumbnails). The file is parsed once,
/// and only the requested frame is decoded.
pub fn render_png(
    bytes: &[u8],
    frame: u32,
    preset: Preset,
    max_edge: Option<u32>,
) -> Result<Vec<u8>, DicomError> {
    let (scanned, obj) = open(bytes, true)?;
    let info = info(&obj);
    if frame >= info.frames {
        return Err(DicomError::NoSuchFrame {
            frame,
            frames: info.frames,
        });
    }
    check_budget(&obj, &scanned)?;
    let voi = match preset.window().or(info.window) {
        Some((center, width)) => VoiLutOption::Custom(WindowLevel { center, width }),
        None => VoiLutOption::Normalize,
    };
    let rendered = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, DicomError> {
        let pixels = obj
            .decode_pixel_data_frame(frame)
            .map_err(|e| DicomError::Render(e.to_string()))?;
        let options = ConvertOptions::new().with_voi_lut(voi).force_8bit();
        // The decoded data holds only the requested frame, now frame 0.
        let mut image = pixels
            .to_dynamic_image_with_options(0, &options)
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
mod limit_tests;

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

/// The largest picture decoded (each side), and the most memory a decoder may take (the same
/// budget as a DICOM render): a hostile file cannot make the server allocate gigabytes.
const MAX_PICTURE_SIDE: u32 = 20_000;
const MAX_PICTURE_ALLOC: u64 = RENDER_BUDGET_BYTES;

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
