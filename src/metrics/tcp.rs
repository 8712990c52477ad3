//! The listen backlog of the server's socket, decoded from the `struct tcp_info` that
//! getsockopt(2) `TCP_INFO` returns (tcp(7); the struct is in include/uapi/linux/tcp.h).
//!
//! On a listening socket the kernel fills only a few fields and reuses two of them
//! (`tcp_get_info` in net/ipv4/tcp.c): "tcpi_unacked -> Number of children ready for
//! accept()" and "tcpi_sacked -> max backlog". This module only decodes those bytes; the
//! getsockopt call itself belongs with the other system calls, and this file has no
//! `unsafe` and no I/O.

/// The accept queue of a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenQueue {
    /// Connections fully established and waiting for accept(2) (`sk_ack_backlog`).
    pub depth: u32,
    /// The most the queue holds: the listen(2) backlog, capped by `net.core.somaxconn`
    /// (`sk_max_ack_backlog`).
    pub limit: u32,
}

/// TCP_LISTEN in the kernel's tcp state numbering.
///
/// include/net/tcp_states.h: `TCP_ESTABLISHED = 1`, ..., `TCP_LISTEN` (10), the value of
/// `tcpi_state` for a listening socket.
pub const TCP_LISTEN: u8 = 10;

/// Offset of `tcpi_state`, the first `__u8` of `struct tcp_info`.
const STATE_OFFSET: usize = 0;
/// Offset of `tcpi_unacked`, after eight `__u8`s (state, ca_state, retransmits, probes,
/// backoff, options, the two wscale nibbles, the rate/fastopen bits) and four `__u32`s
/// (rto, ato, snd_mss, rcv_mss).
const UNACKED_OFFSET: usize = 24;
/// Offset of `tcpi_sacked`, the `__u32` after `tcpi_unacked`.
const SACKED_OFFSET: usize = 28;
/// The bytes needed to reach the end of `tcpi_sacked`.
const MIN_LEN: usize = SACKED_OFFSET + 4;

/// The native-endian `__u32` at `offset`, if the buffer holds it.
fn u32_at(info: &[u8], offset: usize) -> Option<u32> {
    let bytes = info.get(offset..offset.checked_add(4)?)?;
    Some(u32::from_ne_bytes(bytes.try_into().ok()?))
}

/// Decodes the accept queue from the bytes getsockopt(TCP_INFO) wrote on a listening
/// socket, trimmed to the length it returned.
///
/// The `__u32` fields are in host byte order: the kernel copies its struct as is. Returns
/// `None` if fewer than 32 bytes came back (the fields are not there) or the socket is not
/// in `TCP_LISTEN`, where `tcpi_unacked` and `tcpi_sacked` mean something else.
pub fn decode_listen_queue(info: &[u8]) -> Option<ListenQueue> {
    if info.len() < MIN_LEN || *info.get(STATE_OFFSET)? != TCP_LISTEN {
        return None;
    }
    Some(ListenQueue {
        depth: u32_at(info, UNACKED_OFFSET)?,
        limit: u32_at(info, SACKED_OFFSET)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lays out the start of a `struct tcp_info` as the kernel would, in `len` bytes (at
    /// least 32), followed by zeros as for the fields a listener leaves unset.
    fn tcp_info(state: u8, unacked: u32, sacked: u32, len: usize) -> Vec<u8> {
        let mut info = vec![state, 0, 0, 0, 0, 0, 0x77, 0];
        for u32_field in [200_000u32, 40_000, 536, 536, unacked, sacked] {
            // rto, ato, snd_mss, rcv_mss, unacked, sacked.
            info.extend_from_slice(&u32_field.to_ne_bytes());
        }
        info.resize(len.max(info.len()), 0);
        info
    }

    /// The size of `struct tcp_info` on a 6.x kernel.
    const FULL_LEN: usize = 248;

    #[test]
    fn listening_socket() {
        let info = tcp_info(TCP_LISTEN, 3, 1024, FULL_LEN);
        assert_eq!(
            decode_listen_queue(&info),
            Some(ListenQueue {
                depth: 3,
                limit: 1024
            })
        );
    }

    #[test]
    fn exactly_32_bytes_is_enough() {
        let info = tcp_info(TCP_LISTEN, 0, 128, 32);
        assert_eq!(info.len(), 32);
        assert_eq!(
            decode_listen_queue(&info),
            Some(ListenQueue {
                depth: 0,
                limit: 128
            })
        );
    }

    #[test]
    fn large_values_in_native_byte_order() {
        let info = tcp_info(TCP_LISTEN, 0x0102_0304, u32::MAX, FULL_LEN);
        assert_eq!(
            decode_listen_queue(&info),
            Some(ListenQueue {
                depth: 0x0102_0304,
                limit: u32::MAX
            })
        );
    }

    #[test]
    fn short_buffers_are_none() {
        let info = tcp_info(TCP_LISTEN, 3, 1024, 32);
        for len in 0..32 {
            assert_eq!(decode_listen_queue(&info[..len]), None, "len {len}");
        }
        assert_eq!(decode_listen_queue(&[]), None);
    }

    #[test]
    fn other_states_are_none() {
        // 1 TCP_ESTABLISHED, 7 TCP_CLOSE, 8 TCP_CLOSE_WAIT, 0 and 255 are not states.
        for state in [0u8, 1, 7, 8, 9, 11, 12, 255] {
            let info = tcp_info(state, 3, 1024, FULL_LEN);
            assert_eq!(decode_listen_queue(&info), None, "state {state}");
        }
    }
}
