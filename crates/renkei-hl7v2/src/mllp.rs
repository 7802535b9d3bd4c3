//! MLLP framing (HL7 v2 transport, Appendix C): `0x0B message 0x1C 0x0D`. Sans-IO: bytes in,
//! frames out; the listener owns the socket.

pub const START: u8 = 0x0B;
pub const END: [u8; 2] = [0x1C, 0x0D];

/// Wraps a message in a frame.
pub fn frame(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 3);
    out.push(START);
    out.extend_from_slice(message);
    out.extend_from_slice(&END);
    out
}

/// What went wrong in the byte stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame is longer than the limit of {0} bytes")]
    TooLong(usize),
    #[error("{0} bytes arrived outside a frame and were discarded")]
    OutsideFrame(usize),
}

/// Collects bytes and yields complete frames (the bytes between 0x0B and 0x1C 0x0D).
#[derive(Debug)]
pub struct Decoder {
    buffer: Vec<u8>,
    max_len: usize,
    /// Scan position: no end marker before it.
    scanned: usize,
}

impl Decoder {
    pub fn new(max_len: usize) -> Decoder {
        Decoder {
            buffer: Vec::new(),
            max_len,
            scanned: 0,
        }
    }

    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// Bytes held that do not yet form a frame.
    pub fn pending(&self) -> usize {
        self.buffer.len()
    }

    /// The next complete frame, an error about the stream, or `None` when more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Vec<u8>, FrameError>> {
        // Discard anything before the start byte (keep-alive newlines are common).
        match memchr::memchr(START, &self.buffer) {
            Some(0) => {}
            Some(at) => {
                let junk = self
                    .buffer
                    .drain(..at)
                    .filter(|b| !b.is_ascii_whitespace())
                    .count();
                self.scanned = 0;
                if junk > 0 {
                    return Some(Err(FrameError::OutsideFrame(junk)));
                }
            }
            None => {
                let junk = self
                    .buffer
                    .iter()
                    .filter(|b| !b.is_ascii_whitespace())
                    .count();
                self.buffer.clear();
                self.scanned = 0;
                return (junk > 0).then_some(Err(FrameError::OutsideFrame(junk)));
            }
        }
        let from = self.scanned.max(1);
        let found = memchr::memmem::find(self.buffer.get(from..)?, &END).map(|i| i + from);
        match found {
            Some(end) => {
                let message = self
                    .buffer
                    .get(1..end)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default();
                self.buffer.drain(..end + 2);
                self.scanned = 0;
                if message.len() > self.max_len {
                    return Some(Err(FrameError::TooLong(self.max_len)));
                }
                Some(Ok(message))
            }
            None => {
                self.scanned = self.buffer.len().saturating_sub(1).max(1);
                if self.buffer.len() > self.max_len + 3 {
                    // Drop what we hold and wait for the next start byte.
                    self.buffer.clear();
                    self.scanned = 0;
                    return Some(Err(FrameError::TooLong(self.max_len)));
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_across_reads() {
        let mut d = Decoder::new(1000);
        let a = frame(b"MSH|one");
        let b = frame(b"MSH|two");
        let stream = [a.clone(), b"\r\n".to_vec(), b.clone()].concat();
        for chunk in stream.chunks(3) {
            d.push(chunk);
        }
        assert_eq!(d.next_frame(), Some(Ok(b"MSH|one".to_vec())));
        assert_eq!(d.next_frame(), Some(Ok(b"MSH|two".to_vec())));
        assert_eq!(d.next_frame(), None);
        // Byte by byte, with the end marker split.
        for byte in &a {
            assert!(d.next_frame().is_none() || d.pending() == 0);
            d.push(&[*byte]);
        }
        assert_eq!(d.next_frame(), Some(Ok(b"MSH|one".to_vec())));
    }

    #[test]
    fn limits_and_junk() {
        let mut d = Decoder::new(4);
        d.push(&frame(b"MSH|too long"));
        assert_eq!(d.next_frame(), Some(Err(FrameError::TooLong(4))));
        d.push(b"junk");
        assert_eq!(d.next_frame(), Some(Err(FrameError::OutsideFrame(4))));
        d.push(&frame(b"ok"));
        assert_eq!(d.next_frame(), Some(Ok(b"ok".to_vec())));
        let mut d = Decoder::new(4);
        d.push(&[START, b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h']);
        assert_eq!(d.next_frame(), Some(Err(FrameError::TooLong(4))));
    }
}
