//! Errors of the non-real-time engine API.
//!
//! Every message says what was wrong and what to do about it, because these strings reach
//! Python users unchanged.

use thiserror::Error;

/// Everything that can go wrong in a call to the engine.
///
/// The real-time callbacks never produce these: they count problems in [`crate::Stats`].
#[derive(Debug, Error, Clone, PartialEq)]
pub enum EngineError {
    /// The caller passed a value the engine cannot use (odd-length PCM, a bad rate, ...).
    #[error("{0}")]
    InvalidInput(String),
    /// A chunk that could never fit into the ring, however long the caller waited.
    #[error("{0}")]
    ChunkTooLarge(String),
    /// The playback ring stayed too full for the whole timeout; nothing of the chunk was taken.
    #[error("{0}")]
    PlaybackFull(String),
    /// The engine was stopped or closed; start it again or make a new one.
    #[error("{0}")]
    Closed(String),
    /// No device matches the name or index that was asked for.
    #[error("{0}")]
    UnknownDevice(String),
    /// A device exists but could not be opened or configured.
    #[error("{0}")]
    Device(String),
    /// The real device was lost (the sound server died, the device was unplugged) and did
    /// not come back within the caller's timeout; the engine keeps reopening it.
    #[error("{0}")]
    DeviceLost(String),
    /// A WAV file could not be read or written, or has a format the virtual device cannot use.
    #[error("{0}")]
    Wav(String),
}

/// Result alias for engine calls.
pub type Result<T> = std::result::Result<T, EngineError>;
