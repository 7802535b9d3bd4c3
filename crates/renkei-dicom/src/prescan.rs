//! A walk over a DICOM file's element headers before any decoder sees it.
//!
//! Why: dicom-rs (0.10) reserves and zero-fills the length an element *declares* before it
//! reads the value, so a 312-byte file declaring a 4 GiB element made the server take 4 GiB on
//! every view; it recurses once per nested sequence (a deep file overflows the stack and aborts
//! the process); it inflates deflated data sets without a limit; and it has no option to bound
//! any of this. So every file is first walked here, allocation-free and without recursion, and
//! refused unless every declared length fits in the bytes that follow it, nesting is shallow,
//! the element count is bounded and the transfer syntax is one we decode.
//!
//! The walk mirrors dicom-parser's `DataSetReader` token by token (same header decoding, same
//! rules for what is a sequence, an item, encapsulated pixel data, a delimiter, and where a
//! defined-length sequence or item ends), so that every length the parser will act on has been
//! checked here. Where the parser would read a different number of bytes than a length says
//! (a numeric value whose length is not a multiple of its size), the walk refuses the file
//! instead of guessing, since after that the two would no longer see the same headers.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

use crate::DicomError;

/// The deepest nesting of sequences accepted (dicom-object recurses once per level; real files,
/// structured reports included, stay well below this).
pub const MAX_DEPTH: usize = 16;

/// The most element, item and delimiter headers accepted in one file: each becomes a map entry
/// of a hundred bytes or more in memory, so a file of tiny elements would otherwise cost many
/// times its size.
pub const MAX_HEADERS: usize = 200_000;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const PIXEL_DATA: Tag = Tag(0x7FE0, 0x0010);
const ITEM: Tag = Tag(0xFFFE, 0xE000);
const ITEM_END: Tag = Tag(0xFFFE, 0xE00D);
const SEQUENCE_END: Tag = Tag(0xFFFE, 0xE0DD);
const GROUP_LENGTH: Tag = Tag(0x0002, 0x0000);
const TRANSFER_SYNTAX: Tag = Tag(0x0002, 0x0010);

/// How a data set's element headers are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    ImplicitLe,
    ExplicitLe,
    ExplicitBe,
}

/// How the pixel data is stored, which decides what a render may allocate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pixels {
    Native,
    Rle,
    Jpeg,
}

/// The transfer syntaxes we open. Deflated ones are left out on purpose (a few kilobytes
/// inflate to gigabytes, and the inflater has no limit), and so are JPEG 2000, JPEG-LS and
/// JPEG XL: this build has no decoder for them (dicom-pixeldata's `native` feature set only has
/// RLE and the jpeg-decoder codecs), so opening them could only fail later, after the parse.
const SYNTAXES: [(&str, Encoding, Pixels); 8] = [
    ("1.2.840.10008.1.2", Encoding::ImplicitLe, Pixels::Native),
    ("1.2.840.10008.1.2.1", Encoding::ExplicitLe, Pixels::Native),
    ("1.2.840.10008.1.2.2", Encoding::ExplicitBe, Pixels::Native),
    ("1.2.840.10008.1.2.5", Encoding::ExplicitLe, Pixels::Rle),
    ("1.2.840.10008.1.2.4.50", Encoding::ExplicitLe, Pixels::Jpeg),
    ("1.2.840.10008.1.2.4.51", Encoding::ExplicitLe, Pixels::Jpeg),
    ("1.2.840.10008.1.2.4.57", Encoding::ExplicitLe, Pixels::Jpeg),
    ("1.2.840.10008.1.2.4.70", Encoding::ExplicitLe, Pixels::Jpeg),
];

/// What the walk learnt about a file that passed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scanned {
    pub pixels: Pixels,
    /// Whether the top-level data set has a Pixel Data element.
    pub pixel_data: bool,
}

/// Walks a DICOM Part 10 file (preamble and `DICM` included) and returns what a render needs
/// to know, or the reason the file must not reach the decoders.
pub fn prescan(bytes: &[u8]) -> Result<Scanned, DicomError> {
    if bytes.get(128..132) != Some(b"DICM") {
        return Err(DicomError::NotDicom);
    }
    let (start, uid) = meta_group(bytes)?;
    let uid = uid.ok_or_else(|| malformed(132, "転送構文 (0002,0010) がありません"))?;
    let (encoding, pixels) = syntax(uid)?;
    let mut walk = Walk {
        r: Reader {
            data: bytes,
            pos: start,
            big: encoding == Encoding::ExplicitBe,
        },
        encoding,
        open: Vec::with_capacity(2 * MAX_DEPTH + 2),
        in_sequence: false,
        check_pending: false,
        offset_table_next: false,
        pending: None,
        headers: 0,
        pixel_data: false,
    };
    walk.run()?;
    Ok(Scanned {
        pixels,
        pixel_data: walk.pixel_data,
    })
}

fn malformed(offset: usize, what: &str) -> DicomError {
    DicomError::Malformed(format!("{offset} バイト目: {what}"))
}

fn cut(offset: usize) -> DicomError {
    malformed(offset, "ヘッダーが途中で切れています")
}

/// The transfer syntax named by the meta group, if we open it. Trimmed as dicom-object trims
/// it (trailing whitespace and NULs), and required to be ASCII, so that both read the same UID.
fn syntax(raw: &[u8]) -> Result<(Encoding, Pixels), DicomError> {
    let shown = || {
        let text: String = String::from_utf8_lossy(raw)
            .chars()
            .filter(|c| !c.is_control())
            .take(64)
            .collect();
        DicomError::UnsupportedTransferSyntax(text.trim().to_string())
    };
    let text = std::str::from_utf8(raw).map_err(|_| shown())?;
    if !text.is_ascii() {
        return Err(shown());
    }
    let uid = text.trim_end_matches(|c: char| c.is_whitespace() || c == '\0');
    SYNTAXES
        .iter()
        .find(|(known, _, _)| *known == uid)
        .map(|(_, encoding, pixels)| (*encoding, *pixels))
        .ok_or_else(shown)
}

/// The file meta group, read as dicom-object reads it: a (0002,0000) group length of four
/// bytes first, then elements (explicit VR little endian, whatever their group) until that
/// many bytes are consumed. Returns where the data set starts and the raw transfer syntax.
fn meta_group(bytes: &[u8]) -> Result<(usize, Option<&[u8]>), DicomError> {
    let mut r = Reader {
        data: bytes,
        pos: 132,
        big: false,
    };
    let first = element_header(&mut r, Encoding::ExplicitLe)?.ok_or_else(|| cut(132))?;
    if first.tag != GROUP_LENGTH || first.len != 4 {
        return Err(malformed(
            132,
            "ファイルメタ情報が (0002,0000) で始まっていません",
        ));
    }
    let group_length = r.u32().ok_or_else(|| cut(r.pos))?;
    let mut total: u32 = 0;
    let mut uid = None;
    let mut headers = 0usize;
    while total < group_length {
        let at = r.pos;
        let h = element_header(&mut r, Encoding::ExplicitLe)?.ok_or_else(|| cut(at))?;
        headers += 1;
        if headers > MAX_HEADERS {
            return Err(malformed(at, "ファイルメタ情報の要素が多すぎます"));
        }
        if h.len == UNDEFINED {
            return Err(malformed(at, "ファイルメタ情報の要素の長さが不定です"));
        }
        let header_bytes = r.pos - at;
        let value = r.value(h.len, at)?;
        if h.tag == TRANSFER_SYNTAX {
            uid = Some(value);
        }
        total = total
            .saturating_add(header_bytes as u32)
            .saturating_add(h.len);
    }
    Ok((r.pos, uid))
}

/// Bytes read in the data set's byte order, never past the end, never panicking.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    big: bool,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let bytes: [u8; N] = self.data.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(bytes)
    }

    fn u16(&mut self) -> Option<u16> {
        let big = self.big;
        self.array::<2>().map(|b| {
            if big {
                u16::from_be_bytes(b)
            } else {
                u16::from_le_bytes(b)
            }
        })
    }

    fn u32(&mut self) -> Option<u32> {
        let big = self.big;
        self.array::<4>().map(|b| {
            if big {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        })
    }

    /// The next `len` bytes, or the error naming the element at `at` that declared more than
    /// the file holds.
    fn value(&mut self, len: u32, at: usize) -> Result<&'a [u8], DicomError> {
        let remaining = self.remaining();
        let too_long = || DicomError::DeclaredLength {
            offset: at,
            declared: len,
            remaining,
        };
        let n = usize::try_from(len).map_err(|_| too_long())?;
        if n > remaining {
            return Err(too_long());
        }
        let end = self.pos.checked_add(n).ok_or_else(too_long)?;
        let value = self.data.get(self.pos..end).ok_or_else(too_long)?;
        self.pos = end;
        Ok(value)
    }
}

#[derive(Clone, Copy, Debug)]
struct Header {
    tag: Tag,
    vr: VR,
    len: u32,
    /// Where the header starts in the file, for messages.
    at: usize,
}

/// The VRs whose explicit header has a 16-bit length (PS3.5 7.1.2), exactly the list
/// dicom-encoding uses; every other VR, unknown ones included, has 2 reserved bytes and a
/// 32-bit length.
fn short_length(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::AT
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::FL
            | VR::FD
            | VR::IS
            | VR::LO
            | VR::LT
            | VR::PN
            | VR::SH
            | VR::SL
            | VR::SS
            | VR::ST
            | VR::TM
            | VR::UI
            | VR::UL
            | VR::US
    )
}

/// The VR dicom-encoding's implicit VR decoder gives a tag: OW for pixel and overlay data,
/// else the standard dictionary's, else UN.
fn implicit_vr(tag: Tag) -> VR {
    if tag == PIXEL_DATA || (tag.0 >> 8 == 0x60 && tag.1 == 0x3000) {
        VR::OW
    } else {
        StandardDataDictionary
            .by_tag(tag)
            .map(|e| e.vr().relaxed())
            .unwrap_or(VR::UN)
    }
}

/// The size of one value of a VR as dicom-parser reads it: it reads `len / size` values but
/// counts `len` bytes, so a length that is not a multiple would leave the parser and this walk
/// at different offsets. Tags the dictionary gives as US-or-SS are read as SS when pixels are
/// signed, whatever the header says, so they are held to 2 as well.
fn value_size(tag: Tag, vr: VR) -> u32 {
    let size = match vr {
        VR::US | VR::SS | VR::OW => 2,
        VR::AT | VR::FL | VR::OF | VR::UL | VR::SL | VR::OL => 4,
        VR::FD | VR::OD | VR::SV | VR::UV | VR::OV => 8,
        _ => 1,
    };
    let signed_pixels = StandardDataDictionary
        .by_tag(tag)
        .is_some_and(|e| e.vr() == VirtualVr::Xs);
    if signed_pixels { size.max(2) } else { size }
}

/// The next element header; `None` when fewer than four bytes are left, where dicom-parser
/// ends the data set without an error.
fn element_header(r: &mut Reader, encoding: Encoding) -> Result<Option<Header>, DicomError> {
    let at = r.pos;
    if r.remaining() < 4 {
        return Ok(None);
    }
    let group = r.u16().ok_or_else(|| cut(at))?;
    let element = r.u16().ok_or_else(|| cut(at))?;
    let tag = Tag(group, element);
    if encoding == Encoding::ImplicitLe {
        let len = r.u32().ok_or_else(|| cut(at))?;
        let vr = implicit_vr(tag);
        return Ok(Some(Header { tag, vr, len, at }));
    }
    if group == 0xFFFE {
        // Items and delimiters have no VR in any syntax.
        let len = r.u32().ok_or_else(|| cut(at))?;
        return Ok(Some(Header {
            tag,
            vr: VR::UN,
            len,
            at,
        }));
    }
    let code = r.array::<2>().ok_or_else(|| cut(at))?;
    let vr = VR::from_binary(code).unwrap_or(VR::UN);
    let len = if short_length(vr) {
        u32::from(r.u16().ok_or_else(|| cut(at))?)
    } else {
        r.array::<2>().ok_or_else(|| cut(at))?;
        r.u32().ok_or_else(|| cut(at))?
    };
    Ok(Some(Header { tag, vr, len, at }))
}

/// An item, item delimiter or sequence delimiter header where the parser expects one.
enum ItemHeader {
    Item(u32),
    ItemEnd,
    SequenceEnd,
}

/// The next item header; `None` when fewer than 8 bytes are left.
fn item_header(r: &mut Reader) -> Result<Option<ItemHeader>, DicomError> {
    let at = r.pos;
    if r.remaining() < 8 {
        return Ok(None);
    }
    let group = r.u16().ok_or_else(|| cut(at))?;
    let element = r.u16().ok_or_else(|| cut(at))?;
    let len = r.u32().ok_or_else(|| cut(at))?;
    match Tag(group, element) {
        ITEM => Ok(Some(ItemHeader::Item(len))),
        ITEM_END if len == 0 => Ok(Some(ItemHeader::ItemEnd)),
        SEQUENCE_END => Ok(Some(ItemHeader::SequenceEnd)),
        _ => Err(malformed(at, "シーケンスの中に項目以外の要素があります")),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Sequence,
    Item,
}

/// A sequence or item the walk is inside (dicom-parser's `SeqToken`).
#[derive(Clone, Copy, Debug)]
struct Open {
    kind: Kind,
    pixel_data: bool,
    len: u32,
    /// Where its content starts: a defined length ends it at `base + len`.
    base: usize,
}

/// The walk's state: the same fields, with the same meaning, as dicom-parser's
/// `DataSetReader`.
struct Walk<'a> {
    r: Reader<'a>,
    encoding: Encoding,
    open: Vec<Open>,
    in_sequence: bool,
    check_pending: bool,
    offset_table_next: bool,
    pending: Option<Header>,
    headers: usize,
    pixel_data: bool,
}

impl Walk<'_> {
    /// One parser token per turn, in the parser's order of cases, until the data set ends.
    fn run(&mut self) -> Result<(), DicomError> {
        loop {
            if self.check_pending && self.close_by_length()? {
                continue;
            }
            if self.in_sequence {
                if !self.item()? {
                    return Ok(());
                }
                continue;
            }
            if let Some(top) = self.open.last().copied()
                && top.kind == Kind::Item
                && top.pixel_data
            {
                self.fragment(top.len)?;
                continue;
            }
            if let Some(h) = self.pending.take() {
                self.value(h)?;
                continue;
            }
            if !self.element()? {
                return Ok(());
            }
        }
    }

    fn count(&mut self, at: usize) -> Result<(), DicomError> {
        self.headers += 1;
        if self.headers > MAX_HEADERS {
            return Err(malformed(at, "要素が多すぎます"));
        }
        Ok(())
    }

    /// Enters a sequence or item, refusing deep nesting before dicom-object would recurse
    /// into it, and a defined length longer than the rest of the file.
    fn enter(
        &mut self,
        kind: Kind,
        len: u32,
        pixel_data: bool,
        at: usize,
    ) -> Result<(), DicomError> {
        if len != UNDEFINED && !usize::try_from(len).is_ok_and(|n| n <= self.r.remaining()) {
            return Err(DicomError::DeclaredLength {
                offset: at,
                declared: len,
                remaining: self.r.remaining(),
            });
        }
        let depth = self
            .open
            .iter()
            .filter(|o| o.kind == Kind::Sequence)
            .count();
        if (kind == Kind::Sequence && depth >= MAX_DEPTH) || self.open.len() > 2 * MAX_DEPTH {
            return Err(malformed(at, "シーケンスの入れ子が深すぎます"));
        }
        self.open.push(Open {
            kind,
            pixel_data,
            len,
            base: self.r.pos,
        });
        Ok(())
    }

    /// The end of a defined-length sequence or item, reached exactly; true when one closed
    /// (the parser keeps checking after each, so nested ends close in turn).
    fn close_by_length(&mut self) -> Result<bool, DicomError> {
        if let Some(top) = self.open.last().copied()
            && top.len != UNDEFINED
        {
            let end = top.base.saturating_add(top.len as usize);
            if end == self.r.pos {
                self.in_sequence = top.kind == Kind::Item;
                self.open.pop();
                return Ok(true);
            }
            if end < self.r.pos {
                return Err(malformed(
                    top.base,
                    "シーケンスまたは項目の中身が宣言した長さを超えています",
                ));
            }
        }
        self.check_pending = false;
        Ok(false)
    }

    /// Inside a sequence: an item starts or ends, or the sequence ends. False at the end of
    /// the file inside encapsulated pixel data, which dicom-parser accepts as the end (explicit
    /// VR syntaxes only, as there).
    fn item(&mut self) -> Result<bool, DicomError> {
        let at = self.r.pos;
        let Some(header) = item_header(&mut self.r)? else {
            let top_is_pixels = self.open.last().is_some_and(|o| o.pixel_data);
            if top_is_pixels && self.encoding != Encoding::ImplicitLe {
                return Ok(false);
            }
            return Err(cut(at));
        };
        self.count(at)?;
        match header {
            ItemHeader::Item(len) => {
                self.in_sequence = false;
                let pixel_data = self
                    .open
                    .last()
                    .map(|o| o.pixel_data)
                    .ok_or_else(|| malformed(at, "シーケンスの外に項目があります"))?;
                self.enter(Kind::Item, len, pixel_data, at)?;
                if len == 0 {
                    self.check_pending = true;
                }
            }
            ItemHeader::ItemEnd => {
                self.open.pop();
                self.in_sequence = true;
                self.check_pending = true;
            }
            ItemHeader::SequenceEnd => {
                self.open.pop();
                self.in_sequence = false;
                self.check_pending = true;
            }
        }
        Ok(true)
    }

    /// An item of encapsulated pixel data: the offset table first, then the fragments.
    fn fragment(&mut self, len: u32) -> Result<(), DicomError> {
        let at = self.r.pos;
        if len == UNDEFINED {
            return Err(malformed(at, "画素データの断片の長さが不定です"));
        }
        if self.offset_table_next {
            // Read as 32-bit offsets: another length would leave the parser elsewhere.
            if !len.is_multiple_of(4) {
                return Err(malformed(
                    at,
                    "画素データのオフセット表の長さが 4 の倍数ではありません",
                ));
            }
            self.r.value(len, at)?;
            self.offset_table_next = false;
        } else {
            self.r.value(len, at)?;
        }
        self.check_pending = true;
        Ok(())
    }

    /// After an element header: encapsulated pixel data opens its item sequence, any other
    /// element's value is passed over.
    fn value(&mut self, h: Header) -> Result<(), DicomError> {
        if h.tag == PIXEL_DATA && h.len == UNDEFINED {
            self.enter(Kind::Sequence, UNDEFINED, true, h.at)?;
            let at = self.r.pos;
            match item_header(&mut self.r)? {
                Some(ItemHeader::Item(len)) => {
                    self.count(at)?;
                    self.in_sequence = false;
                    self.enter(Kind::Item, len, true, at)?;
                    if len == 0 {
                        self.check_pending = true;
                    } else {
                        self.offset_table_next = true;
                    }
                }
                Some(ItemHeader::SequenceEnd) => {
                    self.count(at)?;
                    self.open.pop();
                    self.in_sequence = false;
                }
                Some(ItemHeader::ItemEnd) => {
                    return Err(malformed(at, "画素データが項目で始まっていません"));
                }
                None => return Err(cut(at)),
            }
        } else {
            self.r.value(h.len, h.at)?;
            self.check_pending = true;
        }
        Ok(())
    }

    /// An element header where one is expected; false at the end of the data set.
    fn element(&mut self) -> Result<bool, DicomError> {
        let Some(h) = element_header(&mut self.r, self.encoding)? else {
            return Ok(false);
        };
        self.count(h.at)?;
        if self.open.is_empty() && h.tag == PIXEL_DATA {
            self.pixel_data = true;
        }
        if h.vr == VR::SQ {
            self.enter(Kind::Sequence, h.len, false, h.at)?;
            self.in_sequence = true;
            if h.len == 0 {
                self.check_pending = true;
            }
        } else if h.tag == ITEM_END {
            // Outside any sequence the parser skips it; inside, it ends the item.
            if !self.open.is_empty() {
                self.in_sequence = true;
                self.open.pop();
                self.check_pending = true;
            }
        } else if h.tag == PIXEL_DATA && h.len == UNDEFINED {
            self.pending = Some(h);
        } else if h.len == UNDEFINED {
            // Any other undefined length is read as a sequence of items.
            self.enter(Kind::Sequence, UNDEFINED, false, h.at)?;
            self.in_sequence = true;
        } else {
            let remaining = self.r.remaining();
            if !usize::try_from(h.len).is_ok_and(|n| n <= remaining) {
                return Err(DicomError::DeclaredLength {
                    offset: h.at,
                    declared: h.len,
                    remaining,
                });
            }
            if !h.len.is_multiple_of(value_size(h.tag, h.vr)) {
                return Err(malformed(h.at, "値の長さが値の大きさの倍数ではありません"));
            }
            self.pending = Some(h);
        }
        Ok(true)
    }
}
