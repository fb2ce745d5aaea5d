//! Request authentication: SigV4 (signing name `bedrock`) or a Bedrock API key.
//!
//! SigV4 uses `aws-sigv4`'s default settings: the canonical URI is the request path encoded
//! once more (`%3A` becomes `%253A`), which every AWS service but S3 expects and every model
//! id with a `:` depends on. The signed headers are exactly `content-type`, `host`,
//! `x-amz-date` and, with temporary credentials, `x-amz-security-token`; headers a request
//! gains later (`accept`, `content-length`, `user-agent`) stay unsigned, so proxies and the
//! HTTP stack can set them freely. The time comes from a [`SharedClock`], so tests sign
//! deterministically.
//!
//! The requests the adapter sends (no query, an already-encoded model path, plain header
//! values) are signed by a short fast path with the derived signing key cached per secret,
//! day and region; anything else, and any request where a fast-path step fails its own
//! check, goes through `aws-sigv4`'s general signer. Unit tests
//! compare the two byte for byte, and `tests/sigv4_vectors.rs` checks the result against botocore.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use gateway_core::clock::{civil_from_days, SharedClock};
use http::header::{AUTHORIZATION, CONTENT_TYPE};
use http::{HeaderName, HeaderValue, Request};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::credentials::RequestAuth;

/// SigV4 signing name of Bedrock Runtime (not its endpoint prefix `bedrock-runtime`).
pub const SIGNING_NAME: &str = "bedrock";

const X_AMZ_DATE: HeaderName = HeaderName::from_static("x-amz-date");
const X_AMZ_SECURITY_TOKEN: HeaderName = HeaderName::from_static("x-amz-security-token");

/// Why a request could not be authenticated. Never carries a credential.
#[derive(Debug, Error)]
pub enum SigningError {
    #[error("could not sign the request: {0}")]
    Sign(String),
    #[error("the API key is not a valid HTTP header value")]
    InvalidApiKey,
}

/// Adds authentication headers to requests.
#[derive(Clone)]
pub struct Signer {
    clock: SharedClock,
    /// Built once: `SigningSettings::default()` allocates its excluded-header list.
    settings: SigningSettings,
    keys: SigningKeys,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// The same signer with an empty key cache of its own: per-core servers each take one,
    /// so signing never contends on a lock another core holds.
    pub fn with_own_key_cache(&self) -> Self {
        Self {
            keys: SigningKeys::default(),
            ..self.clone()
        }
    }

    pub fn new(clock: SharedClock) -> Self {
        let mut settings = SigningSettings::default();
        // Only the headers chosen below are ever handed to the signer, so the default
        // exclusion list (authorization, user-agent, ...) has nothing to exclude; dropping it
        // makes the per-request clone free. Encoding and normalization stay the defaults.
        settings.excluded_headers = None;
        Self {
            clock,
            settings,
            keys: SigningKeys::default(),
        }
    }

    /// Authenticates `request`, whose URI must be absolute. `host` is the `Host` value the
    /// HTTP client will send (the URI's host, with the port unless it is the scheme's
    /// default); `body` is the exact body. Adds `authorization`, and for SigV4 `x-amz-date`
    /// and `x-amz-security-token` when the credentials carry a session token.
    pub fn authorize<B>(
        &self,
        auth: &RequestAuth,
        region: &str,
        host: &str,
        request: &mut Request<B>,
        body: &[u8],
    ) -> Result<(), SigningError> {
        match auth {
            RequestAuth::Bearer(key) => {
                let mut value = HeaderValue::try_from(format!("Bearer {key}"))
                    .map_err(|_| SigningError::InvalidApiKey)?;
                value.set_sensitive(true);
                request.headers_mut().insert(AUTHORIZATION, value);
                Ok(())
            }
            RequestAuth::SigV4(credentials) => {
                let time = self.clock.now();
                match self.fast_sigv4(credentials, region, host, request, body, time) {
                    Some(signed) => {
                        // The order `aws-sigv4` adds them in.
                        let target = request.headers_mut();
                        target.insert(X_AMZ_DATE, signed.date);
                        target.insert(AUTHORIZATION, signed.authorization);
                        if let Some(token) = signed.token {
                            target.insert(X_AMZ_SECURITY_TOKEN, token);
                        }
                        Ok(())
                    }
                    None => self.sdk_sigv4(credentials, region, host, request, body, time),
                }
            }
        }
    }

    /// Signs with `aws-sigv4` itself: the reference, and the path for every request the fast
    /// path does not handle byte for byte.
    fn sdk_sigv4<B>(
        &self,
        credentials: &Credentials,
        region: &str,
        host: &str,
        request: &mut Request<B>,
        body: &[u8],
        time: SystemTime,
    ) -> Result<(), SigningError> {
        let identity = Identity::from(credentials.clone());
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(region)
            .name(SIGNING_NAME)
            .time(time)
            .settings(self.settings.clone())
            .build()
            .map_err(|error| SigningError::Sign(error.to_string()))?
            .into();
        let uri = request.uri().to_string();
        let content_type = request
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|value| value.to_str().ok());
        let headers = std::iter::once(("host", host))
            .chain(content_type.map(|value| ("content-type", value)));
        let signable = SignableRequest::new(
            request.method().as_str(),
            uri,
            headers,
            SignableBody::Bytes(body),
        )
        .map_err(|error| SigningError::Sign(error.to_string()))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|error| SigningError::Sign(error.to_string()))?
            .into_parts();
        let (new_headers, _query) = instructions.into_parts();
        for header in new_headers {
            let name = HeaderName::from_static(header.name());
            let mut value = HeaderValue::from_str(header.value()).map_err(|_| {
                SigningError::Sign(format!("the signer produced an invalid `{name}`"))
            })?;
            value.set_sensitive(header.sensitive() || name == AUTHORIZATION);
            request.headers_mut().insert(name, value);
        }
        Ok(())
    }

    /// SigV4 for the one request shape the adapter sends, without `aws-sigv4`'s general
    /// machinery (which re-derives the signing key and builds the canonical request through
    /// a header map and many small strings: a sixth of the gateway's CPU per request).
    ///
    /// Returns `x-amz-date`, `authorization` and `x-amz-security-token`, or `None` when the
    /// request is anything but the plain shape, so that `aws-sigv4` decides (and errs)
    /// exactly as before. Every step that can fail (a key or digest of an unexpected
    /// length, a timestamp that does not format) also answers `None`: a wrong signature must
    /// never leave here, the general signer runs instead. The canonical request is the one `aws-sigv4`'s default settings
    /// build: path normalized (the plain shape has nothing to normalize) and encoded once
    /// more, no query, signed headers `content-type`, `host`, `x-amz-date` and the session
    /// token; no payload-hash header.
    fn fast_sigv4<B>(
        &self,
        credentials: &Credentials,
        region: &str,
        host: &str,
        request: &Request<B>,
        body: &[u8],
        time: SystemTime,
    ) -> Option<SigV4Headers> {
        let uri = request.uri();
        let path = uri.path();
        if uri.query().is_some() || !plain_path(path) {
            return None;
        }
        let content_type = match request.headers().get(CONTENT_TYPE) {
            Some(value) => Some(value.to_str().ok().filter(|v| plain_value(v))?),
            None => None,
        };
        let token = credentials.session_token();
        if !plain_value(host) || !token.is_none_or(plain_value) {
            return None;
        }
        let stamp = Stamp::new(time)?;
        let date_time = stamp.date_time_str()?;
        let date = date_time.get(..8)?;
        let key = self
            .keys
            .get(credentials.secret_access_key(), &stamp, time, region)?;

        let signed_headers = match (content_type.is_some(), token.is_some()) {
            (true, true) => "content-type;host;x-amz-date;x-amz-security-token",
            (true, false) => "content-type;host;x-amz-date",
            (false, true) => "host;x-amz-date;x-amz-security-token",
            (false, false) => "host;x-amz-date",
        };
        let method = request.method().as_str();
        let mut canonical =
            String::with_capacity(256 + path.len() + host.len() + token.map_or(0, str::len));
        canonical.push_str(method);
        canonical.push('\n');
        // The path is already encoded once; the canonical URI encodes it again, and the
        // plain shape has no byte but `%` that a second encoding changes.
        for piece in path.split_inclusive('%') {
            canonical.push_str(piece);
            if piece.ends_with('%') {
                canonical.push_str("25");
            }
        }
        canonical.push_str("\n\n");
        if let Some(content_type) = content_type {
            canonical.push_str("content-type:");
            canonical.push_str(content_type);
            canonical.push('\n');
        }
        canonical.push_str("host:");
        canonical.push_str(host);
        canonical.push_str("\nx-amz-date:");
        canonical.push_str(date_time);
        canonical.push('\n');
        if let Some(token) = token {
            canonical.push_str("x-amz-security-token:");
            canonical.push_str(token);
            canonical.push('\n');
        }
        canonical.push('\n');
        canonical.push_str(signed_headers);
        canonical.push('\n');
        push_sha256_hex(&mut canonical, body)?;

        let scope_len = 8 + 1 + region.len() + 1 + SIGNING_NAME.len() + "/aws4_request".len();
        let mut string_to_sign = String::with_capacity(17 + 16 + scope_len + 1 + 64 + 2);
        string_to_sign.push_str("AWS4-HMAC-SHA256\n");
        string_to_sign.push_str(date_time);
        string_to_sign.push('\n');
        let scope_start = string_to_sign.len();
        string_to_sign.push_str(date);
        string_to_sign.push('/');
        string_to_sign.push_str(region);
        string_to_sign.push('/');
        string_to_sign.push_str(SIGNING_NAME);
        string_to_sign.push_str("/aws4_request");
        let scope_end = string_to_sign.len();
        string_to_sign.push('\n');
        push_sha256_hex(&mut string_to_sign, canonical.as_bytes())?;
        let signature = v4::calculate_signature(key, string_to_sign.as_bytes());

        let mut authorization = String::with_capacity(
            "AWS4-HMAC-SHA256 Credential=/, SignedHeaders=, Signature=".len()
                + credentials.access_key_id().len()
                + scope_len
                + signed_headers.len()
                + signature.len(),
        );
        authorization.push_str("AWS4-HMAC-SHA256 Credential=");
        authorization.push_str(credentials.access_key_id());
        authorization.push('/');
        authorization.push_str(string_to_sign.get(scope_start..scope_end)?);
        authorization.push_str(", SignedHeaders=");
        authorization.push_str(signed_headers);
        authorization.push_str(", Signature=");
        authorization.push_str(&signature);

        let date = HeaderValue::from_str(date_time).ok()?;
        let mut authorization = HeaderValue::try_from(authorization).ok()?;
        authorization.set_sensitive(true);
        let token = match token {
            Some(token) => {
                let mut value = HeaderValue::from_str(token).ok()?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        Some(SigV4Headers {
            date,
            authorization,
            token,
        })
    }
}

/// What SigV4 adds to a request.
struct SigV4Headers {
    date: HeaderValue,
    authorization: HeaderValue,
    token: Option<HeaderValue>,
}

/// A path whose SigV4 normalization changes nothing and whose second encoding only turns
/// `%` into `%25`: absolute, no empty, `.` or `..` segment, no trailing `/`, and only
/// unreserved characters, `/` and `%`.
fn plain_path(path: &str) -> bool {
    path.len() > 1
        && path.starts_with('/')
        && path.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/' | b'%')
        })
        && path
            .get(1..)
            .is_some_and(|rest| rest.split('/').all(|s| !matches!(s, "" | "." | "..")))
}

/// A header value SigV4 signs as it is: visible ASCII without spaces (no trimming or
/// space folding applies) that is also a valid HTTP header value.
fn plain_value(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic())
}

/// Appends the lowercase hex SHA-256 of `data`; `None`, with `out` unchanged, if the digest
/// does not encode to 64 hex digits.
fn push_sha256_hex(out: &mut String, data: &[u8]) -> Option<()> {
    let digest = Sha256::digest(data);
    let digest = seam::corrupt(seam::Step::DigestHex, digest.as_slice());
    let mut hex = [0u8; 64];
    hex::encode_to_slice(digest, &mut hex).ok()?;
    out.push_str(std::str::from_utf8(&hex).ok()?);
    Some(())
}

/// A signing time in SigV4's format `YYYYMMDD'T'HHMMSS'Z'` (its first 8 bytes are the
/// date), UTC.
struct Stamp {
    text: [u8; 16],
}

impl Stamp {
    /// `None` for a time before 1970 or past year 9999, which the format cannot hold.
    fn new(time: SystemTime) -> Option<Self> {
        let seconds = time.duration_since(UNIX_EPOCH).ok()?.as_secs();
        let days = i64::try_from(seconds / 86_400).ok()?;
        let of_day = seconds % 86_400;
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            return None;
        }
        let [y0, y1, y2, y3] = digits(year.unsigned_abs());
        let [mo0, mo1] = digits(u64::from(month));
        let [d0, d1] = digits(u64::from(day));
        let [h0, h1] = digits(of_day / 3600);
        let [mi0, mi1] = digits(of_day / 60 % 60);
        let [s0, s1] = digits(of_day % 60);
        Some(Self {
            text: [
                y0, y1, y2, y3, mo0, mo1, d0, d1, b'T', h0, h1, mi0, mi1, s0, s1, b'Z',
            ],
        })
    }

    /// The text, or `None` if it is not the 16 ASCII bytes it must be.
    fn date_time_str(&self) -> Option<&str> {
        let text = seam::corrupt(seam::Step::StampText, &self.text);
        std::str::from_utf8(text)
            .ok()
            .filter(|text| text.len() == 16)
    }

    /// The date part, `YYYYMMDD`.
    fn date(&self) -> [u8; 8] {
        let [y0, y1, y2, y3, mo0, mo1, d0, d1, ..] = self.text;
        [y0, y1, y2, y3, mo0, mo1, d0, d1]
    }
}

/// The last `N` decimal digits of `value`, zero-padded, as ASCII.
fn digits<const N: usize>(value: u64) -> [u8; N] {
    let mut out = [b'0'; N];
    let mut rest = value;
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    out
}

/// Derived SigV4 signing keys, by secret, date and region: deriving one takes four HMACs,
/// and a key stays valid for the whole UTC day.
#[derive(Clone, Default)]
struct SigningKeys {
    entries: Arc<Mutex<Vec<KeyEntry>>>,
}

struct KeyEntry {
    secret: Arc<str>,
    date: [u8; 8],
    region: Arc<str>,
    key: [u8; 32],
}

/// Enough for every account and region of a large configuration; past it the oldest go.
const MAX_SIGNING_KEYS: usize = 64;

impl SigningKeys {
    /// The key for `secret` and `region` on the UTC day of `stamp` (which is `time`), or
    /// `None` (and nothing cached) if the derivation gave something else than 32 bytes.
    fn get(&self, secret: &str, stamp: &Stamp, time: SystemTime, region: &str) -> Option<[u8; 32]> {
        let date = stamp.date();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = entries
            .iter()
            .find(|e| e.date == date && &*e.region == region && &*e.secret == secret)
        {
            return Some(entry.key);
        }
        let key = derive_signing_key(secret, time, region)?;
        // Keys of other days are of no further use.
        entries.retain(|e| e.date == date);
        if entries.len() >= MAX_SIGNING_KEYS {
            entries.remove(0);
        }
        entries.push(KeyEntry {
            secret: Arc::from(secret),
            date,
            region: Arc::from(region),
            key,
        });
        Some(key)
    }
}

/// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"),
/// via `aws-sigv4`'s own derivation so the two paths cannot disagree.
/// `None` if the derived key is not 32 bytes long.
fn derive_signing_key(secret: &str, time: SystemTime, region: &str) -> Option<[u8; 32]> {
    let derived = v4::generate_signing_key(secret, time, region, SIGNING_NAME);
    let derived = seam::corrupt(seam::Step::SigningKeyLength, derived.as_ref());
    <[u8; 32]>::try_from(derived).ok()
}

/// Lets tests make each fallible step of the fast path fail, to prove a failure falls back
/// to `aws-sigv4` rather than signing wrongly. Outside tests it changes nothing.
mod seam {
    /// A step of the fast path that checks what it computed.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(super) enum Step {
        SigningKeyLength,
        DigestHex,
        StampText,
    }

    #[cfg(not(test))]
    #[inline(always)]
    pub(super) fn corrupt(_step: Step, bytes: &[u8]) -> &[u8] {
        bytes
    }

    #[cfg(test)]
    pub(super) use armed::{arm, corrupt, hits};

    #[cfg(test)]
    mod armed {
        use std::cell::Cell;

        use super::Step;

        thread_local! {
            static ARMED: Cell<Option<Step>> = const { Cell::new(None) };
            static HITS: Cell<usize> = const { Cell::new(0) };
        }

        /// From now on, on this thread, `step` sees its input one byte short.
        pub(in crate::signing) fn arm(step: Option<Step>) {
            ARMED.set(step);
            HITS.set(0);
        }

        /// How often the armed step ran since [`arm`].
        pub(in crate::signing) fn hits() -> usize {
            HITS.get()
        }

        pub(in crate::signing) fn corrupt(step: Step, bytes: &[u8]) -> &[u8] {
            if ARMED.get() != Some(step) {
                return bytes;
            }
            HITS.set(HITS.get() + 1);
            bytes.get(1..).unwrap_or_default()
        }
    }
}

/// The `Host` header value HTTP clients send for `uri`: the host, plus the port when it is
/// not the scheme's default.
pub fn host_header_value(uri: &http::Uri) -> Option<String> {
    let host = uri.host()?;
    let default_port = match uri.scheme_str() {
        Some("https") => Some(443),
        Some("http") => Some(80),
        _ => None,
    };
    Some(match uri.port_u16() {
        Some(port) if Some(port) != default_port => format!("{host}:{port}"),
        _ => host.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;
    use gateway_core::clock::FixedClock;
    use std::sync::Arc;

    #[test]
    fn host_values_drop_default_ports_only() {
        let cases = [
            (
                "https://bedrock-runtime.us-east-1.amazonaws.com/x",
                "bedrock-runtime.us-east-1.amazonaws.com",
            ),
            ("https://example.com:443/x", "example.com"),
            ("http://127.0.0.1:80/x", "127.0.0.1"),
            ("http://127.0.0.1:9100/x", "127.0.0.1:9100"),
            ("https://example.com:8443", "example.com:8443"),
        ];
        for (uri, expected) in cases {
            let uri: http::Uri = uri.parse().unwrap();
            assert_eq!(host_header_value(&uri).as_deref(), Some(expected), "{uri}");
        }
    }

    /// Signs with the fast path and with `aws-sigv4` and returns both header sets, or `None`
    /// when the fast path declines.
    fn both_ways(
        uri: &str,
        content_type: Option<&str>,
        credentials: &Credentials,
        region: &str,
        unix: u64,
        body: &[u8],
    ) -> (Option<http::HeaderMap>, http::HeaderMap) {
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(unix)));
        let mut request = Request::post(uri).body(()).unwrap();
        if let Some(content_type) = content_type {
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        }
        let host = host_header_value(request.uri()).unwrap();
        let time = signer.clock.now();
        let fast = signer
            .fast_sigv4(credentials, region, &host, &request, body, time)
            .map(|signed| {
                let mut headers = http::HeaderMap::new();
                headers.insert(X_AMZ_DATE, signed.date);
                headers.insert(AUTHORIZATION, signed.authorization);
                if let Some(token) = signed.token {
                    headers.insert(X_AMZ_SECURITY_TOKEN, token);
                }
                headers
            });
        let mut reference = Request::post(uri).body(()).unwrap();
        *reference.headers_mut() = request.headers().clone();
        signer
            .sdk_sigv4(credentials, region, &host, &mut reference, body, time)
            .unwrap();
        let mut reference = reference.into_parts().0.headers;
        reference.remove(CONTENT_TYPE);
        (fast, reference)
    }

    #[test]
    fn the_fast_path_signs_exactly_like_aws_sigv4() {
        let static_keys = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", None, None, "t");
        let temporary = Credentials::new(
            "ASIAEXAMPLE",
            "secret+/=",
            Some("FwoGZXIvYXdzEJr//////////wEaDN+token=".into()),
            None,
            "t",
        );
        let uris = [
            "https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse",
            "https://bedrock-runtime.eu-west-3.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream",
            "http://127.0.0.1:9100/model/a%20b%2Bc~d_e/converse",
            "http://127.0.0.1:9100/prefix/model/m.1/converse",
        ];
        // Leap days, year ends, the epoch's day and far ahead.
        let times = [
            0,
            951_782_400,
            1_709_164_799,
            1_709_164_800,
            1_735_689_599,
            1_735_689_600,
            1_767_225_600 + 12 * 3600 + 34 * 60 + 56,
            4_102_444_800,
        ];
        let mut compared = 0;
        for uri in uris {
            for credentials in [&static_keys, &temporary] {
                for unix in times {
                    for content_type in [Some("application/json"), None] {
                        let (fast, reference) =
                            both_ways(uri, content_type, credentials, "us-west-2", unix, b"{}");
                        let fast = fast.unwrap_or_else(|| panic!("declined {uri}"));
                        assert_eq!(fast, reference, "{uri} at {unix}");
                        for (name, value) in &reference {
                            assert_eq!(
                                fast[name].is_sensitive(),
                                value.is_sensitive() || name == AUTHORIZATION,
                                "{name}"
                            );
                        }
                        compared += 1;
                    }
                }
            }
        }
        assert_eq!(compared, 4 * 2 * 8 * 2);
    }

    #[test]
    fn unusual_requests_are_left_to_aws_sigv4() {
        let keys = Credentials::new("AKID", "SECRET", None, None, "t");
        let base = "http://127.0.0.1:9100";
        for path in [
            "/model/../converse",
            "/model/./converse",
            "/model//converse",
            "/model/x/",
            "/model/a:b/converse",
            "/model/x/converse?q=1",
        ] {
            let (fast, reference) = both_ways(
                &format!("{base}{path}"),
                Some("application/json"),
                &keys,
                "us-east-1",
                1_700_000_000,
                b"{}",
            );
            assert!(fast.is_none(), "{path}");
            assert!(reference.contains_key(AUTHORIZATION), "{path}");
        }
        let (fast, _) = both_ways(
            &format!("{base}/model/x/converse"),
            Some("application/json;  charset=utf-8"),
            &keys,
            "us-east-1",
            1_700_000_000,
            b"{}",
        );
        assert!(
            fast.is_none(),
            "values with spaces are trimmed and folded by aws-sigv4"
        );
    }

    #[test]
    fn signing_keys_are_derived_once_per_day_secret_and_region() {
        let keys = SigningKeys::default();
        let at = |unix: u64| UNIX_EPOCH + std::time::Duration::from_secs(unix);
        let day = 1_700_000_000;
        let key = |secret: &str, unix: u64, region: &str| {
            keys.get(secret, &Stamp::new(at(unix)).unwrap(), at(unix), region)
                .unwrap()
        };
        let first = key("s", day, "us-east-1");
        let expected = v4::generate_signing_key("s", at(day), "us-east-1", SIGNING_NAME);
        assert_eq!(first.as_slice(), expected.as_ref());
        assert_eq!(key("s", day + 60, "us-east-1"), first);
        assert_ne!(key("t", day, "us-east-1"), first);
        assert_ne!(key("s", day, "eu-west-1"), first);
        assert_ne!(key("s", day + 86_400, "us-east-1"), first);
        // The new day's key dropped the old day's.
        assert_eq!(keys.entries.lock().unwrap().len(), 1);
    }

    /// Each step of the fast path that checks its own result, made to fail: the request is
    /// still signed exactly as `aws-sigv4` signs it, and a failed key derivation caches
    /// nothing.
    #[test]
    fn every_fast_path_failure_falls_back_to_aws_sigv4() {
        let temporary = Credentials::new("ASIAEXAMPLE", "secret", Some("token".into()), None, "t");
        let uri = "https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse";
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(1_700_000_000)));
        let host = "bedrock-runtime.us-east-1.amazonaws.com";
        let request = || {
            let mut request = Request::post(uri).body(()).unwrap();
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            request
        };
        let mut reference = request();
        signer
            .sdk_sigv4(
                &temporary,
                "us-east-1",
                host,
                &mut reference,
                b"{}",
                signer.clock.now(),
            )
            .unwrap();
        for step in [
            seam::Step::SigningKeyLength,
            seam::Step::DigestHex,
            seam::Step::StampText,
        ] {
            let signer = signer.with_own_key_cache();
            seam::arm(Some(step));
            let mut signed = request();
            let auth = RequestAuth::SigV4(temporary.clone());
            signer
                .authorize(&auth, "us-east-1", host, &mut signed, b"{}")
                .unwrap();
            let hits = seam::hits();
            seam::arm(None);
            assert!(hits > 0, "{step:?} never ran");
            assert_eq!(signed.headers(), reference.headers(), "{step:?}");
            assert!(
                signer
                    .keys
                    .entries
                    .lock()
                    .unwrap()
                    .iter()
                    .all(|e| e.key != [0; 32]),
                "{step:?}"
            );
            if step == seam::Step::SigningKeyLength {
                assert!(signer.keys.entries.lock().unwrap().is_empty());
            }
        }
    }

    #[test]
    fn the_fast_path_declines_times_its_format_cannot_hold() {
        let year_10000 = 253_402_300_800;
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(year_10000)));
        let keys = Credentials::new("AKID", "SECRET", None, None, "t");
        let request = Request::post("http://127.0.0.1:9100/model/m/converse")
            .body(())
            .unwrap();
        let time = signer.clock.now();
        assert!(signer
            .fast_sigv4(&keys, "us-east-1", "127.0.0.1:9100", &request, b"{}", time)
            .is_none());
        assert!(Stamp::new(UNIX_EPOCH - std::time::Duration::from_secs(1)).is_none());
    }

    #[test]
    fn stamps_format_every_field_zero_padded() {
        let stamp =
            Stamp::new(UNIX_EPOCH + std::time::Duration::from_secs(951_782_400 + 3_723)).unwrap();
        assert_eq!(stamp.date_time_str(), Some("20000229T010203Z"));
        assert_eq!(&stamp.date(), b"20000229");
        assert_eq!(digits::<4>(12_345), *b"2345");
    }

    #[test]
    fn bearer_keys_are_sent_as_is_and_marked_sensitive() {
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(0)));
        let mut request = Request::post("https://example.com/x").body(()).unwrap();
        signer
            .authorize(
                &RequestAuth::Bearer(Arc::from("bedrock-api-key-123")),
                "us-east-1",
                "example.com",
                &mut request,
                b"{}",
            )
            .unwrap();
        let value = &request.headers()[AUTHORIZATION];
        assert_eq!(value, "Bearer bedrock-api-key-123");
        assert!(value.is_sensitive());
        assert!(!request.headers().contains_key("x-amz-date"));
    }

    #[test]
    fn signing_errors_never_show_the_secret() {
        let signer = Signer::new(SharedClock::new(FixedClock::at_unix(0)));
        let mut request = Request::post("https://example.com/x").body(()).unwrap();
        let credentials = Credentials::new(
            "AKID",
            "SECRETSECRET",
            Some("bad\ntoken".into()),
            None,
            "test",
        );
        let err = signer
            .authorize(
                &RequestAuth::SigV4(credentials),
                "us-east-1",
                "example.com",
                &mut request,
                b"{}",
            )
            .unwrap_err()
            .to_string();
        assert!(
            !err.contains("SECRETSECRET") && !err.contains("bad\ntoken"),
            "{err}"
        );
    }
}
