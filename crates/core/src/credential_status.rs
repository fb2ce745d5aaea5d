//! Where a provider account's credentials stand, as operators see it (the console's status
//! page): plain data a provider adapter reports and an HTTP adapter shows, so neither knows
//! the other. It holds times and a message naming the account and role, never a key or
//! token.

use std::time::SystemTime;

/// An account's credentials now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialStatus {
    pub state: CredentialState,
    /// When the held credentials expire; `None` for keys that do not (or when none are held).
    pub valid_until: Option<SystemTime>,
    /// When credentials were last obtained; `None` for fixed keys and before the first fetch.
    pub last_refresh: Option<SystemTime>,
    /// Why the latest fetch failed, when it did.
    pub last_error: Option<String>,
}

impl CredentialStatus {
    /// Fixed keys (or an API key): always usable, never fetched.
    pub fn fixed() -> Self {
        Self {
            state: CredentialState::Valid,
            valid_until: None,
            last_refresh: None,
            last_error: None,
        }
    }
}

/// The state in [`CredentialStatus`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialState {
    /// Usable credentials are held (fixed keys and API keys always are).
    Valid,
    /// Usable credentials are held and new ones are being (or are due to be) fetched.
    Refreshing,
    /// The held credentials expired and none were fetched since.
    Expired,
    /// The latest fetch failed and no usable credentials are held.
    Error,
    /// Nothing was fetched yet.
    Unknown,
}

impl CredentialState {
    /// The state's name: `valid`, `refreshing`, `expired`, `error`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Refreshing => "refreshing",
            Self::Expired => "expired",
            Self::Error => "error",
            Self::Unknown => "unknown",
        }
    }
}
