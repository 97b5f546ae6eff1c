//! DP database (in progress).
