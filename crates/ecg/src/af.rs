//! AF screening (placeholder).
/// An AF episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AfEpisode {
    /// First sample.
    pub start: u64,
    /// End sample (exclusive).
    pub end: u64,
}
/// Episodes.
pub fn detect_episodes(_peaks: &[u64], _fs: f64) -> Vec<AfEpisode> {
    Vec::new()
}
