//! HL7 v2 for Renkei: parsing that never panics, Japanese character sets, escapes, paths such as
//! `PID-5.2`, and ACKs.
//!
//! Architecture invariant: no IO and no panics on any input. Bytes are decoded to Unicode
//! *before* they are split (ISO-2022-JP kanji bytes collide with `| ^ ~ \ &`); the parsed message
//! keeps the decoded text once and hands out slices of it, so reading a field allocates nothing
//! unless it carries escapes.

mod ack;
mod encoding;
mod escape;
mod message;
pub mod mllp;
mod path;
pub mod ssmix2;

pub use ack::{AckCode, AckError, ack};
pub use encoding::{Charset, Decoded, decode, decode_iso2022jp_checked};
pub use escape::{escape, transcode, unescape};
pub use message::{
    Component, Field, Message, ParseError, Repetition, Segment, Separators, Warning,
};
pub use path::{Path, PathError};
