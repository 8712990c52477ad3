//! The limits the chunked and body targets pick from with two control bits: small, the
//! server's defaults, no body limit, and tiny ones that short inputs can reach.

use runicorn::fuzzing::Limits;

pub const LIMITS: [Limits; 4] = [
    // Small.
    Limits {
        request_line: 256,
        fields: 16,
        field_size: 256,
        body: 1 << 20,
    },
    // The server's defaults.
    Limits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        body: 100 * 1024 * 1024,
    },
    // No body limit (0).
    Limits {
        request_line: 8190,
        fields: 100,
        field_size: 8190,
        body: 0,
    },
    // Tiny: the limits themselves are reachable with short inputs (for the body target, in
    // its large mode too).
    Limits {
        request_line: 32,
        fields: 4,
        field_size: 32,
        body: 16,
    },
];
