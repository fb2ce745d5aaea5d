//! What `/ready` reports for `gateway serve`: ready once every account's credentials can be
//! obtained, otherwise 503 naming each account that cannot, with the reason (which names the
//! account and role, never a secret).
//!
//! Each account is asked through the cache its requests use, so a check costs nothing while
//! the credentials are fresh, renews them ahead of requests when they near expiry, and calls
//! STS (or the default chain) again while they cannot be obtained: the gateway turns ready
//! within [`CHECK_INTERVAL`] of STS recovering. No check calls Bedrock.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use gateway_adapter_bedrock::AccountCredentials;
use gateway_adapter_http::Readiness;
use tokio::sync::watch;

/// How often every account is checked again (and at once after a reload).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);

/// A source that has not answered in this long is unusable for now, so one slow account
/// never holds the others' report back.
const CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// Until the first check ends: not ready, naming every account.
pub(crate) fn not_checked_yet(readiness: &Readiness, accounts: &[AccountCredentials]) {
    readiness.report(
        accounts
            .iter()
            .map(|account| (account.account(), "credentials not checked yet")),
    );
}

/// Checks the accounts `accounts` holds every [`CHECK_INTERVAL`], and at once when it
/// changes (a reload), and reports to `readiness`; logs each change of the outcome. Ends when
/// the sender is dropped.
pub(crate) async fn keep_checking(
    readiness: Readiness,
    mut accounts: watch::Receiver<Vec<AccountCredentials>>,
) {
    let mut last_outcome = None;
    loop {
        let checked = accounts.borrow_and_update().clone();
        let unusable = unusable_accounts(&checked).await;
        // A reload during the check: its accounts are the ones to report on.
        if !accounts.has_changed().unwrap_or(false) {
            readiness.report(
                unusable
                    .iter()
                    .map(|(account, reason)| (account.as_str(), reason.as_str())),
            );
            if last_outcome.as_ref() != Some(&unusable) {
                log_outcome(&unusable);
                last_outcome = Some(unusable);
            }
        }
        tokio::select! {
            changed = accounts.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            () = tokio::time::sleep(CHECK_INTERVAL) => {}
        }
    }
}

/// Every account whose credentials cannot be obtained now, with why; all asked at once.
async fn unusable_accounts(accounts: &[AccountCredentials]) -> BTreeMap<String, String> {
    let checks = accounts.iter().map(|account| async move {
        let reason = match tokio::time::timeout(CHECK_TIMEOUT, account.probe()).await {
            Ok(Ok(())) => return None,
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!(
                "credentials not obtained within {} s",
                CHECK_TIMEOUT.as_secs()
            ),
        };
        Some((account.account().to_owned(), reason))
    });
    join_all(checks).await.into_iter().flatten().collect()
}

fn log_outcome(unusable: &BTreeMap<String, String>) {
    if unusable.is_empty() {
        tracing::info!("ready: every account's credentials are usable");
    }
    for (account, reason) in unusable {
        tracing::warn!(
            account,
            reason,
            "not ready: an account's credentials are unusable"
        );
    }
}
