//! The `aws-config` loader every account's STS and default-chain providers are built with:
//! STS and the chain are `aws-config`'s; this module only builds them with one process-wide
//! rustls/ring HTTPS client (`aws-config` is built without a bundled one), our clock and
//! our limits.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_async::rt::sleep::TokioSleep;
use aws_smithy_async::time::TimeSource;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::Provider as TlsProvider;
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use gateway_core::clock::SharedClock;

const STS_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const STS_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const STS_MAX_ATTEMPTS: u32 = 3;

/// The one HTTPS client every account's STS and chain providers share (connection pools
/// included); `aws-config` is built without a default client.
fn http_client() -> SharedHttpClient {
    static CLIENT: OnceLock<SharedHttpClient> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            aws_smithy_http_client::Builder::new()
                .tls_provider(TlsProvider::Rustls(CryptoMode::Ring))
                .build_https()
        })
        .clone()
}

/// `aws-config`'s loader with our HTTP client, sleep, clock and limits. It builds the default
/// chain (which reads only the environment and files here) and the STS settings
/// (`endpoint_url` is the AssumeRole endpoint override).
pub(super) async fn load_sdk_config(
    region: &str,
    sts_endpoint: Option<&str>,
    clock: &SharedClock,
) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client())
        .sleep_impl(TokioSleep::new())
        .time_source(ClockTimeSource(clock.clone()))
        .region(Region::new(region.to_owned()))
        // STS signs with our clock, exactly like the Bedrock signer; the SDK's skew correction
        // would shift only the STS half by the server's `Date` header.
        .disable_clock_skew_correction(true)
        .retry_config(RetryConfig::standard().with_max_attempts(STS_MAX_ATTEMPTS))
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(STS_CONNECT_TIMEOUT)
                .operation_attempt_timeout(STS_ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(endpoint) = sts_endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// Our clock as the SDK's time source, so STS signing and the cache agree on "now".
#[derive(Debug, Clone)]
struct ClockTimeSource(SharedClock);

impl TimeSource for ClockTimeSource {
    fn now(&self) -> SystemTime {
        self.0.now()
    }
}
