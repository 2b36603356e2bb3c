//! SFTP packets on a byte stream: framing, and decoding that never guesses.
//!
//! The packet types come from `russh-sftp`, which reads strings leniently (bytes that are not
//! UTF-8 become U+FFFD). A path that changed while being read would be checked as one name and
//! mean another, so a request that carries paths is accepted only if encoding what was decoded
//! gives back exactly the bytes that arrived: a path that is not valid UTF-8, a field this proxy
//! would not carry on, or trailing bytes all make it unreadable, and it is refused.

use bytes::Bytes;
use russh_sftp::protocol::{Packet, Status, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The longest packet read from either side: 256 KiB of data plus headers, what OpenSSH's
/// own server accepts.
pub const MAX_FRAME: u32 = 256 * 1024 + 1024;

/// Packet types whose request id is not at bytes 1..5 (the handshake).
const SSH_FXP_INIT: u8 = 1;
const SSH_FXP_VERSION: u8 = 2;
/// The hot path: these carry a handle this proxy issued and no path, so they skip the
/// round-trip check (a handle that is not UTF-8 simply names no open file), as INIT does.
const SSH_FXP_READ: u8 = 5;
const SSH_FXP_WRITE: u8 = 6;

/// Why the stream cannot be read as SFTP.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The stream failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A packet is longer than [`MAX_FRAME`] or empty.
    #[error("a packet of {0} bytes is out of bounds")]
    Length(u32),
    /// The bytes are not an SFTP packet.
    #[error("malformed packet: {0}")]
    Malformed(String),
}

/// Reads one packet (without its length) or `None` at a clean end of the stream.
pub async fn read_frame<R: AsyncRead + Unpin>(stream: &mut R) -> Result<Option<Bytes>, WireError> {
    let mut length = [0u8; 4];
    match stream.read_exact(&mut length).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let length = u32::from_be_bytes(length);
    if length == 0 || length > MAX_FRAME {
        return Err(WireError::Length(length));
    }
    let mut frame = vec![0u8; length as usize];
    stream.read_exact(&mut frame).await?;
    Ok(Some(Bytes::from(frame)))
}

/// The request id of a packet, read from its bytes (every packet but the handshake has one at
/// the same place).
pub fn request_id(frame: &[u8]) -> Option<u32> {
    match frame.first() {
        Some(&SSH_FXP_INIT | &SSH_FXP_VERSION) | None => None,
        Some(_) => frame
            .get(1..5)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
    }
}

/// Decodes a packet as the library reads it.
pub fn decode(frame: &Bytes) -> Result<Packet, WireError> {
    let mut bytes = frame.clone();
    Packet::try_from(&mut bytes).map_err(|e| WireError::Malformed(e.to_string()))
}

/// Decodes a request from a client, accepting it only if it means exactly what its bytes say
/// (see the module documentation). `Err` carries why, for the refusal.
pub fn decode_exact(frame: &Bytes) -> Result<Packet, WireError> {
    let packet = decode(frame)?;
    // INIT carries no path, and its extension pairs need not come back in the same order.
    if matches!(
        frame.first(),
        Some(&SSH_FXP_INIT | &SSH_FXP_READ | &SSH_FXP_WRITE)
    ) {
        return Ok(packet);
    }
    let again = encode(decode(frame)?)?;
    if again.get(4..) != Some(&frame[..]) {
        return Err(WireError::Malformed(
            "a name in it is not valid UTF-8, or it carries fields that are not supported".into(),
        ));
    }
    Ok(packet)
}

/// Encodes a packet with its length, ready to send.
pub fn encode(packet: Packet) -> Result<Bytes, WireError> {
    Bytes::try_from(packet).map_err(|e| WireError::Malformed(e.to_string()))
}

/// A status reply.
pub fn status(id: u32, code: StatusCode, message: impl Into<String>) -> Packet {
    Packet::Status(Status {
        id,
        status_code: code,
        error_message: message.into(),
        language_tag: "en".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh_sftp::protocol::{Open, OpenFlags, Stat};

    fn frame(packet: Packet) -> Bytes {
        encode(packet).unwrap().slice(4..)
    }

    fn raw_stat(id: u32, path: &[u8]) -> Bytes {
        let mut f = vec![17u8];
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&(path.len() as u32).to_be_bytes());
        f.extend_from_slice(path);
        Bytes::from(f)
    }

    #[test]
    fn a_request_that_reads_back_exactly_is_accepted() {
        let open = frame(Packet::Open(Open {
            id: 7,
            filename: "/web-01/var/log/nginx/access.log".into(),
            pflags: OpenFlags::READ,
            attrs: Default::default(),
        }));
        assert_eq!(request_id(&open), Some(7));
        match decode_exact(&open).unwrap() {
            Packet::Open(o) => assert_eq!(o.filename, "/web-01/var/log/nginx/access.log"),
            other => panic!("{other:?}"),
        }
        let stat = frame(Packet::Stat(Stat {
            id: 8,
            path: "/web-01/ü".into(),
        }));
        assert_eq!(stat, raw_stat(8, "/web-01/ü".as_bytes()));
        assert!(decode_exact(&stat).is_ok());
    }

    #[test]
    fn a_path_that_is_not_utf8_or_trailing_bytes_make_it_unreadable() {
        let bad = raw_stat(9, b"/web-01/var/log/\xff/x");
        assert!(decode(&bad).is_ok(), "the library reads it leniently");
        assert!(decode_exact(&bad).is_err());
        assert_eq!(request_id(&bad), Some(9), "so it can still be answered");
        let mut trailing = raw_stat(9, b"/web-01/x").to_vec();
        trailing.push(0);
        assert!(decode_exact(&Bytes::from(trailing)).is_err());
        assert!(decode_exact(&Bytes::from_static(&[17, 0, 0])).is_err());
        assert!(decode_exact(&Bytes::from_static(&[250, 0, 0, 0, 1])).is_err());
        assert_eq!(request_id(&[1, 0, 0, 0, 3]), None, "INIT has no id");
    }

    #[tokio::test]
    async fn frames_are_bounded() {
        let mut ok: &[u8] = &[0, 0, 0, 2, 1, 2];
        assert_eq!(&read_frame(&mut ok).await.unwrap().unwrap()[..], &[1, 2]);
        assert!(read_frame(&mut ok).await.unwrap().is_none(), "clean end");
        let mut huge: &[u8] = &[0xff, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame(&mut huge).await,
            Err(WireError::Length(_))
        ));
        let mut empty: &[u8] = &[0, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut empty).await,
            Err(WireError::Length(0))
        ));
        let mut cut: &[u8] = &[0, 0, 0, 9, 1];
        assert!(read_frame(&mut cut).await.is_err());
    }
}
