//! The JetStream stream: its configuration from the node's settings, creating or updating it,
//! and its epoch.
//!
//! The epoch names the stream's identity: the hexadecimal nanoseconds of the stream's
//! creation time as JetStream records it (kept across server restarts with the same store,
//! identical on every replica, different after the stream is deleted and created again).
//!
//! Owns: `stream::Config` and the epoch. Must not: delete or purge the stream.

use std::fmt;
use std::sync::Arc;

use async_nats::jetstream::{self, stream};

use super::ClusterSettings;
use super::subject::stream_filter;

/// The identity of the stream positions belong to: 1–32 characters of `A-Z a-z 0-9 _ -`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Epoch(Arc<str>);

impl Epoch {
    /// The epoch of a stream created at `created_unix_nanos`.
    pub fn from_created(created_unix_nanos: i128) -> Epoch {
        // Lowercase hex of a non-negative i128 is at most 32 characters.
        Epoch(format!("{:x}", created_unix_nanos.max(0)).into())
    }

    /// The epoch's text, shared.
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }

    /// The epoch's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Epoch({})", self.0)
    }
}

/// The stream's configuration: one subject per topic under `<stream>.*`, file storage, the
/// history limits (per-topic message count, age, total bytes; the oldest is discarded), and
/// direct get enabled (replay reads served by any replica without a consumer).
pub(super) fn stream_config(s: &ClusterSettings) -> stream::Config {
    let limit = |v: Option<u64>| v.map_or(-1, |n| i64::try_from(n).unwrap_or(i64::MAX));
    stream::Config {
        name: s.stream.clone(),
        description: Some("ringcast: every published message, sequenced".into()),
        subjects: vec![stream_filter(&s.stream)],
        retention: stream::RetentionPolicy::Limits,
        discard: stream::DiscardPolicy::Old,
        storage: stream::StorageType::File,
        num_replicas: s.replicas,
        max_messages_per_subject: limit(s.history_size),
        max_age: s.history_ttl.unwrap_or_default(),
        max_bytes: limit(s.history_bytes),
        max_messages: -1,
        allow_direct: true,
        ..Default::default()
    }
}

/// Create the stream or bring an existing one to this node's configuration; the stream
/// handle and its epoch.
pub(super) async fn ensure_stream(
    js: &jetstream::Context,
    settings: &ClusterSettings,
) -> Result<(stream::Stream, Epoch), String> {
    let config = stream_config(settings);
    let info = js
        .create_or_update_stream(config)
        .await
        .map_err(|e| format!("stream {}: {e}", settings.stream))?;
    let epoch = Epoch::from_created(info.created.unix_timestamp_nanos());
    let handle = js
        .get_stream(&settings.stream)
        .await
        .map_err(|e| format!("stream {}: {e}", settings.stream))?;
    Ok((handle, epoch))
}

/// The stream's current epoch and last sequence (one stream-info request).
pub(super) async fn stream_position(stream: &stream::Stream) -> Result<(Epoch, u64), String> {
    let info = stream.get_info().await.map_err(|e| e.to_string())?;
    Ok((
        Epoch::from_created(info.created.unix_timestamp_nanos()),
        info.state.last_sequence,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_text() {
        let e = Epoch::from_created(1_767_225_600_123_456_789);
        assert!(!e.as_str().is_empty() && e.as_str().len() <= 32);
        assert!(e.as_str().bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(e, Epoch::from_created(1_767_225_600_123_456_790));
        assert_eq!(Epoch::from_created(i128::MAX).as_str().len(), 32);
        assert_eq!(Epoch::from_created(-5).as_str(), "0");
    }

    #[test]
    fn limits_from_settings() {
        let mut s = ClusterSettings::new(vec!["nats://127.0.0.1:4222".into()], "n1".into());
        let c = stream_config(&s);
        assert_eq!(c.subjects, vec!["ringcast.*".to_string()]);
        assert_eq!(c.max_messages_per_subject, -1);
        assert_eq!(c.max_bytes, -1);
        s.history_size = Some(100);
        s.history_bytes = Some(1 << 20);
        s.history_ttl = Some(std::time::Duration::from_secs(60));
        s.replicas = 3;
        let c = stream_config(&s);
        assert_eq!(c.max_messages_per_subject, 100);
        assert_eq!(c.max_bytes, 1 << 20);
        assert_eq!(c.max_age, std::time::Duration::from_secs(60));
        assert_eq!(c.num_replicas, 3);
    }
}
