//! The on-disk envelope of events and snapshots: MessagePack with field names (self-describing),
//! so adding a field with `#[serde(default)]` keeps old journals readable, and a format version
//! that a future upcaster can switch on. What is stored is the envelope packed against a frozen
//! dictionary (`packing`), which takes the names' bytes back; records written unpacked by
//! earlier builds read as before.

use crate::domain::time::Timestamp;
use crate::persistence::{JournalError, packing};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// The envelope version written today.
pub const FORMAT_VERSION: u16 = 1;

#[derive(Serialize, Deserialize)]
struct EventEnvelope<E> {
    v: u16,
    at: Timestamp,
    event: E,
}

#[derive(Serialize, Deserialize)]
struct SnapshotEnvelope<S> {
    v: u16,
    state: S,
}

pub fn encode_event<E: Serialize>(event: &E, at: Timestamp) -> Result<Vec<u8>, JournalError> {
    let encoded = rmp_serde::to_vec_named(&EventEnvelope {
        v: FORMAT_VERSION,
        at,
        event,
    })
    .map_err(|e| JournalError::Corrupt(e.to_string()))?;
    Ok(packing::pack(encoded))
}

pub fn decode_event<E: DeserializeOwned>(bytes: &[u8]) -> Result<(E, Timestamp), JournalError> {
    let env: EventEnvelope<E> = rmp_serde::from_slice(&packing::unpack(bytes)?)
        .map_err(|e| JournalError::Corrupt(e.to_string()))?;
    check_version(env.v)?;
    Ok((env.event, env.at))
}

pub fn encode_snapshot<S: Serialize>(state: &S) -> Result<Vec<u8>, JournalError> {
    let encoded = rmp_serde::to_vec_named(&SnapshotEnvelope {
        v: FORMAT_VERSION,
        state,
    })
    .map_err(|e| JournalError::Corrupt(e.to_string()))?;
    Ok(packing::pack(encoded))
}

pub fn decode_snapshot<S: DeserializeOwned>(bytes: &[u8]) -> Result<S, JournalError> {
    let env: SnapshotEnvelope<S> = rmp_serde::from_slice(&packing::unpack(bytes)?)
        .map_err(|e| JournalError::Corrupt(e.to_string()))?;
    check_version(env.v)?;
    Ok(env.state)
}

fn check_version(v: u16) -> Result<(), JournalError> {
    if v > FORMAT_VERSION {
        return Err(JournalError::Corrupt(format!(
            "record format v{v} is newer than this build (v{FORMAT_VERSION})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct V1 {
        a: u32,
    }

    #[derive(Serialize, Deserialize, PartialEq, Debug)]
    struct V2 {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[test]
    fn round_trips_an_event() {
        let bytes = encode_event(&V1 { a: 7 }, Timestamp(5)).unwrap();
        let (e, at): (V1, _) = decode_event(&bytes).unwrap();
        assert_eq!((e, at), (V1 { a: 7 }, Timestamp(5)));
    }

    #[test]
    fn an_added_field_reads_old_records() {
        let bytes = encode_event(&V1 { a: 7 }, Timestamp(5)).unwrap();
        let (e, _): (V2, _) = decode_event(&bytes).unwrap();
        assert_eq!(e, V2 { a: 7, b: None });
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_event::<V1>(b"\xff\x00garbage").is_err());
        assert!(decode_snapshot::<V1>(&[]).is_err());
    }

    #[test]
    fn a_newer_format_is_refused() {
        let bytes = rmp_serde::to_vec_named(&SnapshotEnvelope { v: 99, state: 1u8 }).unwrap();
        assert!(decode_snapshot::<u8>(&bytes).is_err());
    }
}
