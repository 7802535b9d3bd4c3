//! The DICOM reader and both renderers on arbitrary bytes: never a panic, and never an
//! allocation past run.sh's `-malloc_limit_mb` (declared lengths, nesting depth, transfer
//! syntaxes, frame and JPEG sizes are all the input's to choose; security issue #18 point 4).
#![no_main]

use libfuzzer_sys::fuzz_target;
use renkei_dicom::{Preset, inspect, is_dicom, render_picture_png, render_png};

fuzz_target!(|data: &[u8]| {
    // Inputs without the preamble and magic get them, so that every input reaches the meta
    // group and the data set instead of stopping at "not DICOM".
    let framed;
    let bytes = if is_dicom(data) {
        data
    } else {
        let mut v = Vec::with_capacity(132 + data.len());
        v.extend_from_slice(&[0u8; 128]);
        v.extend_from_slice(b"DICM");
        v.extend_from_slice(data);
        framed = v;
        &framed[..]
    };
    if let Ok(info) = inspect(bytes) {
        // The last frame too: frame offsets are computed from the file's own numbers.
        let last = info.frames.saturating_sub(1);
        let _ = render_png(bytes, last, Preset::Lung, Some(32));
    }
    let _ = render_png(bytes, 0, Preset::Auto, Some(16));
    let _ = render_picture_png(data, Some(16));
});
