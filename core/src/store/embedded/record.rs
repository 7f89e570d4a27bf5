//! On-disk encoding of the embedded store: a key's record and one revision's events.
//! Fixed-width little-endian integers and length-prefixed bytes: compact and cheap to decode.

use bytes::{Buf, BufMut};

use crate::store::{EventKind, KeyValue, WatchEvent};
use crate::{Error, Result};

/// Everything stored for a key besides the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Record {
    pub create_revision: i64,
    pub mod_revision: i64,
    pub version: i64,
    pub lease: i64,
    pub value: Vec<u8>,
}

impl Record {
    pub fn into_kv(self, key: &str) -> KeyValue {
        KeyValue {
            key: key.to_string(),
            value: self.value,
            create_revision: self.create_revision,
            mod_revision: self.mod_revision,
            version: self.version,
            lease: self.lease,
        }
    }
}

/// Create revision, mod revision, version, lease: the metadata every record and event carries.
fn put_meta(buf: &mut Vec<u8>, meta: [i64; 4]) {
    for v in meta {
        buf.put_i64_le(v);
    }
}

pub(super) fn encode_record(r: &Record) -> Vec<u8> {
    let mut buf = Vec::with_capacity(32 + r.value.len());
    put_meta(
        &mut buf,
        [r.create_revision, r.mod_revision, r.version, r.lease],
    );
    buf.put_slice(&r.value);
    buf
}

fn corrupt(key: &str, what: &str) -> Error {
    Error::Corrupt {
        key: key.to_string(),
        reason: format!("embedded store: {what}"),
    }
}

fn get_i64(buf: &mut &[u8], key: &str) -> Result<i64> {
    buf.try_get_i64_le()
        .map_err(|_| corrupt(key, "record truncated"))
}

fn get_bytes<'a>(buf: &mut &'a [u8], key: &str) -> Result<&'a [u8]> {
    let len = buf
        .try_get_u32_le()
        .map_err(|_| corrupt(key, "length truncated"))? as usize;
    if buf.len() < len {
        return Err(corrupt(key, "bytes truncated"));
    }
    let (head, tail) = buf.split_at(len);
    *buf = tail;
    Ok(head)
}

pub(super) fn decode_record(key: &str, mut buf: &[u8]) -> Result<Record> {
    Ok(Record {
        create_revision: get_i64(&mut buf, key)?,
        mod_revision: get_i64(&mut buf, key)?,
        version: get_i64(&mut buf, key)?,
        lease: get_i64(&mut buf, key)?,
        value: buf.to_vec(),
    })
}

pub(super) fn encode_events(events: &[WatchEvent]) -> Vec<u8> {
    let mut buf = Vec::new();
    for e in events {
        buf.put_u8(match e.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        });
        buf.put_u32_le(e.kv.key.len() as u32);
        buf.put_slice(e.kv.key.as_bytes());
        buf.put_u32_le(e.kv.value.len() as u32);
        buf.put_slice(&e.kv.value);
        let kv = &e.kv;
        put_meta(
            &mut buf,
            [kv.create_revision, kv.mod_revision, kv.version, kv.lease],
        );
    }
    buf
}

/// Decodes the events logged for `revision`.
pub(super) fn decode_events(revision: i64, mut buf: &[u8]) -> Result<Vec<WatchEvent>> {
    let ctx = format!("log revision {revision}");
    let mut events = Vec::new();
    while buf.has_remaining() {
        let kind = match buf.get_u8() {
            0 => EventKind::Put,
            1 => EventKind::Delete,
            other => return Err(corrupt(&ctx, &format!("unknown event kind {other}"))),
        };
        let key = std::str::from_utf8(get_bytes(&mut buf, &ctx)?)
            .map_err(|_| corrupt(&ctx, "key is not UTF-8"))?
            .to_string();
        let value = get_bytes(&mut buf, &ctx)?.to_vec();
        let kv = KeyValue {
            key,
            value,
            create_revision: get_i64(&mut buf, &ctx)?,
            mod_revision: get_i64(&mut buf, &ctx)?,
            version: get_i64(&mut buf, &ctx)?,
            lease: get_i64(&mut buf, &ctx)?,
        };
        events.push(WatchEvent { kind, kv });
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_events_round_trip() {
        let r = Record {
            create_revision: 3,
            mod_revision: 9,
            version: 4,
            lease: 77,
            value: b"hello".to_vec(),
        };
        assert_eq!(decode_record("k", &encode_record(&r)).unwrap(), r);
        let events = vec![
            WatchEvent {
                kind: EventKind::Put,
                kv: r.clone().into_kv("/a"),
            },
            WatchEvent {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: "/b".into(),
                    value: vec![],
                    create_revision: 0,
                    mod_revision: 9,
                    version: 0,
                    lease: 0,
                },
            },
        ];
        assert_eq!(decode_events(9, &encode_events(&events)).unwrap(), events);
        assert!(decode_record("k", &[1, 2, 3]).is_err());
        assert!(decode_events(9, &[7]).is_err());
    }
}
