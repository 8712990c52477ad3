//! (placeholder until the chunked decoder lands)

use super::{Error, Limits};

/// Decodes the chunked transfer coding.
#[derive(Debug)]
pub struct ChunkedDecoder;

/// One decoding step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// Input bytes consumed.
    pub consumed: usize,
    /// Body bytes written.
    pub written: usize,
    /// The body is complete.
    pub done: bool,
}

impl ChunkedDecoder {
    /// A decoder under `limits`.
    pub fn new(_limits: &Limits) -> ChunkedDecoder {
        ChunkedDecoder
    }

    /// Decodes (placeholder: refuses everything).
    pub fn decode(&mut self, _input: &[u8], _out: &mut [u8]) -> Result<Step, Error> {
        Err(Error::UnsupportedTransferCoding)
    }
}
