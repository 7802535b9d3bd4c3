//! Hostile files: declared lengths beyond the file, deep nesting, transfer syntaxes we do not
//! decode, frames bigger than a render's budget. Each must be an error before dicom-rs
//! allocates by what the file declares (security issue #18, point 4).

use super::*;

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// Explicit VR little endian element: 16-bit length for the short VRs, else reserved bytes
/// and a 32-bit length (written as given, so tests can lie).
fn el(group: u16, element: u16, vr: &[u8; 2], len: u32, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend(group.to_le_bytes());
    out.extend(element.to_le_bytes());
    out.extend(vr);
    let short = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"PN",
        b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
    ];
    if short.contains(&vr) {
        out.extend((len as u16).to_le_bytes());
    } else {
        out.extend([0, 0]);
        out.extend(len.to_le_bytes());
    }
    out.extend(value);
    out
}

/// An item or delimiter header (no VR).
fn item(element: u16, len: u32) -> Vec<u8> {
    let mut out = vec![0xFE, 0xFF];
    out.extend(element.to_le_bytes());
    out.extend(len.to_le_bytes());
    out
}

fn padded(text: &str) -> Vec<u8> {
    let mut v = text.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

/// A Part 10 file: preamble, `DICM`, a meta group of `meta` elements after the group length,
/// then `dataset`.
fn part10_with_meta(meta: &[u8], dataset: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; 128];
    out.extend(b"DICM");
    out.extend(el(2, 0, b"UL", 4, &(meta.len() as u32).to_le_bytes()));
    out.extend(meta);
    out.extend(dataset);
    out
}

fn part10(ts: &str, dataset: &[u8]) -> Vec<u8> {
    let uid = padded(ts);
    part10_with_meta(&el(2, 0x10, b"UI", uid.len() as u32, &uid), dataset)
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap()
}

/// Where the data set of a file written by dicom-rs starts (after the meta group).
fn dataset_start(bytes: &[u8]) -> usize {
    let group_length = u32::from_le_bytes(bytes[140..144].try_into().unwrap());
    144 + group_length as usize
}

/// The most resident memory this test process has had (Linux), to show that nothing was
/// reserved by a declared length.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

const GIB: u64 = 1024 * 1024 * 1024;

#[test]
fn pixel_data_declaring_4_gib_is_refused_before_anything_is_reserved() {
    let mut bytes = synthetic_ct(16, 1, ("1.2.3", 1), 1);
    // (7FE0,0010) OW, reserved, then the 32-bit length.
    let at = find(&bytes, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0]);
    bytes[at + 8..at + 12].copy_from_slice(&0xFFFF_FFF0_u32.to_le_bytes());
    let expected = DicomError::DeclaredLength {
        offset: at,
        declared: 0xFFFF_FFF0,
        remaining: bytes.len() - at - 12,
    };
    assert_eq!(inspect(&bytes), Err(expected.clone()));
    assert_eq!(
        render_png(&bytes, 0, Preset::Auto, Some(64)),
        Err(expected.clone())
    );
    assert!(expected.to_string().contains("4294967280"), "{expected}");
    // dicom-rs would have reserved and zero-filled 4 GiB for each call.
    if let Some(peak) = peak_rss() {
        assert!(peak < GIB, "peak resident memory {peak} bytes");
    }
}

#[test]
fn a_meta_string_declaring_a_huge_length_is_refused() {
    // (0002,0003) with a long-form VR: dicom-object reads it as a UID string of that length.
    let mut meta = el(2, 3, b"OB", 0xFFFF_FFF0, b"1.2.3.4\0");
    let uid = padded(EXPLICIT_LE);
    meta.extend(el(2, 0x10, b"UI", uid.len() as u32, &uid));
    let bytes = part10_with_meta(&meta, &[]);
    assert!(
        matches!(
            inspect(&bytes),
            Err(DicomError::DeclaredLength {
                offset: 144,
                declared: 0xFFFF_FFF0,
                ..
            })
        ),
        "{:?}",
        inspect(&bytes)
    );
    // A group length that runs past the end is a cut file, not a wait for more bytes.
    let short = part10_with_meta(&el(2, 0x10, b"UI", 40, b"1.2.840.10008.1.2.1\0"), &[]);
    assert!(inspect(&short).is_err());
}

/// `depth` sequences, each holding one item holding the next, closed with delimiters
/// (undefined lengths) or by their lengths (defined).
fn nested(depth: usize, defined: bool) -> Vec<u8> {
    let innermost = el(0x0008, 0x0100, b"SH", 8, b"T-D3000 ");
    (0..depth).fold(innermost, |inner, _| {
        let mut out;
        if defined {
            let mut content = item(0xE000, inner.len() as u32);
            content.extend(&inner);
            out = el(0x0040, 0xA730, b"SQ", content.len() as u32, &content);
        } else {
            out = el(
                0x0040,
                0xA730,
                b"SQ",
                0xFFFF_FFFF,
                &item(0xE000, 0xFFFF_FFFF),
            );
            out.extend(inner);
            out.extend(item(0xE00D, 0));
            out.extend(item(0xE0DD, 0));
        }
        out
    })
}

/// A synthetic CT with `prefix` placed first in its data set.
fn ct_with(prefix: &[u8]) -> Vec<u8> {
    let ct = synthetic_ct(16, 1, ("1.2.3", 1), 1);
    let start = dataset_start(&ct);
    let mut out = ct[..start].to_vec();
    out.extend(prefix);
    out.extend(&ct[start..]);
    out
}

#[test]
fn ten_thousand_nested_sequences_are_an_error_not_a_stack_overflow() {
    let mut dataset = Vec::new();
    for _ in 0..10_000 {
        dataset.extend(el(0x0040, 0xA730, b"SQ", 0xFFFF_FFFF, &[]));
        dataset.extend(item(0xE000, 0xFFFF_FFFF));
    }
    let bytes = part10(EXPLICIT_LE, &dataset);
    let err = inspect(&bytes).unwrap_err();
    assert!(
        matches!(&err, DicomError::Malformed(m) if m.contains("入れ子")),
        "{err:?}"
    );
    assert!(render_png(&bytes, 0, Preset::Auto, None).is_err());
    // Nesting up to the limit is an ordinary file, with either kind of length.
    for defined in [false, true] {
        let ok = ct_with(&nested(MAX_DEPTH, defined));
        assert_eq!(inspect(&ok).map(|i| i.rows), Ok(16), "defined: {defined}");
        assert!(render_png(&ok, 0, Preset::Auto, None).is_ok());
        let deep = ct_with(&nested(MAX_DEPTH + 1, defined));
        assert!(
            matches!(inspect(&deep), Err(DicomError::Malformed(_))),
            "defined: {defined}"
        );
    }
}

#[test]
fn a_sequence_longer_than_the_file_or_overrunning_its_parent_is_refused() {
    let mut bytes = ct_with(&nested(2, true));
    let start = dataset_start(&bytes);
    // The outer sequence's length (after tag, VR and reserved bytes).
    bytes[start + 8..start + 12].copy_from_slice(&0x7FFF_FFF0_u32.to_le_bytes());
    assert!(matches!(
        inspect(&bytes),
        Err(DicomError::DeclaredLength {
            declared: 0x7FFF_FFF0,
            ..
        })
    ));
    // An item one byte shorter than its content.
    let mut bytes = ct_with(&nested(1, true));
    let item_len = start + 12 + 4;
    let len = u32::from_le_bytes(bytes[item_len..item_len + 4].try_into().unwrap());
    bytes[item_len..item_len + 4].copy_from_slice(&(len - 2).to_le_bytes());
    assert!(inspect(&bytes).is_err());
}

#[test]
fn transfer_syntaxes_we_do_not_decode_are_refused_by_name() {
    for uid in [
        "1.2.840.10008.1.2.1.99",
        "1.2.840.10008.1.2.8.1",
        "1.2.840.10008.1.2.4.90",
        "1.2.3.4.5",
    ] {
        let bytes = part10(uid, &[]);
        let err = inspect(&bytes).unwrap_err();
        assert_eq!(err, DicomError::UnsupportedTransferSyntax(uid.into()));
        assert!(err.to_string().contains(uid), "{err}");
        assert_eq!(
            render_png(&bytes, 0, Preset::Auto, None),
            Err(DicomError::UnsupportedTransferSyntax(uid.into()))
        );
    }
    // No transfer syntax at all.
    let bytes = part10_with_meta(&el(2, 2, b"UI", 6, b"1.2.3\0"), &[]);
    assert!(matches!(inspect(&bytes), Err(DicomError::Malformed(_))));
}

#[test]
fn a_frame_beyond_the_render_budget_is_refused() {
    let mut bytes = synthetic_ct(16, 1, ("1.2.3", 1), 1);
    for element in [0x10_u8, 0x11] {
        let at = find(&bytes, &[0x28, 0x00, element, 0x00, b'U', b'S', 2, 0]);
        bytes[at + 8..at + 10].copy_from_slice(&60000_u16.to_le_bytes());
    }
    // Its identity is still readable; its pixels are not decoded.
    assert_eq!(
        inspect(&bytes).map(|i| (i.rows, i.columns)),
        Ok((60000, 60000))
    );
    assert_eq!(
        render_png(&bytes, 0, Preset::Auto, Some(96)),
        Err(DicomError::TooLarge {
            needed: 60000 * 60000 * 2 * RENDER_COPIES,
            budget: RENDER_BUDGET_BYTES,
        })
    );
    // BitsStored beyond BitsAllocated would size a lookup table of 2^BitsStored entries.
    let mut bytes = synthetic_ct(16, 1, ("1.2.3", 1), 1);
    let at = find(&bytes, &[0x28, 0x00, 0x01, 0x01, b'U', b'S', 2, 0]);
    bytes[at + 8..at + 10].copy_from_slice(&32_u16.to_le_bytes());
    assert!(matches!(
        render_png(&bytes, 0, Preset::Auto, None),
        Err(DicomError::Render(_))
    ));
}

/// An 8-bit 16×16 image as one JPEG baseline fragment.
fn jpeg_ct() -> (Vec<u8>, usize) {
    let picture = image::GrayImage::from_fn(16, 16, |x, y| image::Luma([(x * 16 + y) as u8]));
    let mut jpeg = Vec::new();
    image::DynamicImage::ImageLuma8(picture)
        .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
        .unwrap();
    if jpeg.len() % 2 == 1 {
        jpeg.push(0);
    }
    let us = |element: u16, v: u16| el(0x0028, element, b"US", 2, &v.to_le_bytes());
    let mut dataset = el(0x0008, 0x0060, b"CS", 2, b"OT");
    dataset.extend(us(0x0002, 1));
    dataset.extend(el(0x0028, 0x0004, b"CS", 12, b"MONOCHROME2 "));
    dataset.extend(us(0x0010, 16));
    dataset.extend(us(0x0011, 16));
    dataset.extend(us(0x0100, 8));
    dataset.extend(us(0x0101, 8));
    dataset.extend(us(0x0102, 7));
    dataset.extend(us(0x0103, 0));
    dataset.extend(el(0x7FE0, 0x0010, b"OB", 0xFFFF_FFFF, &[]));
    dataset.extend(item(0xE000, 0));
    dataset.extend(item(0xE000, jpeg.len() as u32));
    let fragment_at = dataset.len();
    dataset.extend(&jpeg);
    dataset.extend(item(0xE0DD, 0));
    let bytes = part10("1.2.840.10008.1.2.4.50", &dataset);
    let fragment_at = bytes.len() - dataset.len() + fragment_at;
    (bytes, fragment_at)
}

#[test]
fn jpeg_frames_render_and_a_jpeg_declaring_a_huge_frame_is_refused() {
    let (bytes, fragment_at) = jpeg_ct();
    assert_eq!(inspect(&bytes).map(|i| (i.rows, i.frames)), Ok((16, 1)));
    let png = render_png(&bytes, 0, Preset::Auto, None).unwrap();
    let decoded = image::load_from_memory(&png).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (16, 16));
    // The JPEG's own frame header (SOF0) says 65535 × 65535, which jpeg-decoder would
    // allocate whatever Rows and Columns say.
    let mut bomb = bytes.clone();
    let sof = fragment_at + find(&bytes[fragment_at..], &[0xFF, 0xC0]);
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert_eq!(
        render_png(&bomb, 0, Preset::Auto, Some(96)),
        Err(DicomError::TooLarge {
            needed: 65535 * 65535 * RENDER_COPIES,
            budget: RENDER_BUDGET_BYTES,
        })
    );
    // A fragment item running past the end.
    let mut cut = bytes.clone();
    let len_at = fragment_at - 4;
    cut[len_at..len_at + 4].copy_from_slice(&0xFFFF_FF00_u32.to_le_bytes());
    assert!(matches!(
        inspect(&cut),
        Err(DicomError::DeclaredLength { .. })
    ));
}

#[test]
fn implicit_and_big_endian_files_with_sequences_are_walked_like_the_parser() {
    use dicom_core::value::{DataSetSequence, Value};
    use dicom_core::{DataElement, Length, PrimitiveValue, VR};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

    let ct = synthetic_ct(16, 2, ("1.2.3", 1), 1);
    let file = OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(Cursor::new(&ct[128..]))
        .unwrap();
    let code = InMemDicomObject::from_element_iter([DataElement::new(
        tags::CODE_VALUE,
        VR::SH,
        PrimitiveValue::from("T-D3000"),
    )]);
    let region = InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from("胸部")),
        DataElement::new(
            tags::ANATOMIC_REGION_MODIFIER_SEQUENCE,
            VR::SQ,
            Value::from(DataSetSequence::new(vec![code], Length::UNDEFINED)),
        ),
    ]);
    let mut obj = file.into_inner();
    obj.put(DataElement::new(
        tags::ANATOMIC_REGION_SEQUENCE,
        VR::SQ,
        Value::from(DataSetSequence::new(vec![region], Length::UNDEFINED)),
    ));
    for ts in ["1.2.840.10008.1.2", "1.2.840.10008.1.2.2", EXPLICIT_LE] {
        let meta = FileMetaTableBuilder::new()
            .transfer_syntax(ts)
            .media_storage_sop_class_uid(dicom_dictionary_std::uids::CT_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("1.2.3.1");
        let mut bytes = Vec::new();
        obj.clone()
            .with_meta(meta)
            .unwrap()
            .write_all(&mut bytes)
            .unwrap();
        let info = inspect(&bytes).unwrap_or_else(|e| panic!("{ts}: {e}"));
        assert_eq!((info.rows, info.frames), (16, 2), "{ts}");
        let png = render_png(&bytes, 1, Preset::Mediastinum, None)
            .unwrap_or_else(|e| panic!("{ts}: {e}"));
        let centre = image::load_from_memory(&png)
            .unwrap()
            .to_luma8()
            .get_pixel(8, 8)[0];
        assert!((110..=145).contains(&centre), "{ts}: {centre}");
    }
}
