//! Request authentication: SigV4 verification (recomputed with `aws-sigv4` from the request as
//! received, with its own `x-amz-date` and only the headers it lists in `SignedHeaders`) and
//! Bedrock API keys (`Authorization: Bearer <key>`).
//!
//! The canonical request is built from the raw path as received (percent-encoded once by the
//! client); `aws-sigv4`'s default settings encode it once more (`%3A` -> `%253A`), which is what
//! AWS and botocore do for every service but S3. `fixtures/sim/sigv4/*.json` (signed by
//! botocore) pin this down in `tests/sigv4.rs`.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use http::request::Parts;

use crate::clock::parse_amz_date;
use crate::state::Shared;
use crate::RecordedAuth;

/// Allowed difference between the request's `x-amz-date` and the simulator's clock.
pub(crate) const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

const SECURITY_TOKEN: &str = "x-amz-security-token";

/// Why a request was not authenticated. Each service maps these to its own error names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not well-formed, or no/invalid `x-amz-date`.
    Incomplete(String),
    /// Unknown access key id, or a session token that does not belong to it.
    UnknownKey,
    /// Temporary credentials past their expiration.
    Expired,
    /// The signature does not match (or the scope names another service, or the date is off).
    BadSignature(String),
    /// A Bearer key that is not configured (or Bearer where only SigV4 is accepted).
    BadBearer,
}

/// The parts of `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
#[derive(Debug)]
pub(crate) struct SigV4Header<'a> {
    pub(crate) access_key_id: &'a str,
    pub(crate) date: &'a str,
    pub(crate) region: &'a str,
    pub(crate) service: &'a str,
    pub(crate) signed_headers: Vec<&'a str>,
    pub(crate) signature: &'a str,
}

pub(crate) fn parse_sigv4_header(value: &str) -> Option<SigV4Header<'_>> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (key, val) = part.trim().split_once('=')?;
        match key {
            "Credential" => credential = Some(val),
            "SignedHeaders" => signed = Some(val),
            "Signature" => signature = Some(val),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let header = SigV4Header {
        access_key_id: scope.next()?,
        date: scope.next()?,
        region: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?.split(';').collect(),
        signature: signature?,
    };
    if scope.next()? != "aws4_request" || scope.next().is_some() {
        return None;
    }
    if header.access_key_id.is_empty() || header.signed_headers.iter().any(|h| h.is_empty()) {
        return None;
    }
    Some(header)
}

/// What the request presents, without checking it (used when recording requests).
pub(crate) fn presented_auth(parts: &Parts) -> RecordedAuth {
    let Some(value) = authorization(parts) else {
        return RecordedAuth::Unsigned;
    };
    if value.starts_with("Bearer ") {
        return RecordedAuth::Bearer;
    }
    match parse_sigv4_header(value) {
        Some(h) => RecordedAuth::SigV4 {
            access_key_id: h.access_key_id.to_owned(),
            session_token: header_str(parts, SECURITY_TOKEN).map(str::to_owned),
        },
        None => RecordedAuth::Unsigned,
    }
}

fn authorization(parts: &Parts) -> Option<&str> {
    header_str(parts, http::header::AUTHORIZATION.as_str())
}

fn header_str<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Authenticates a request for `service` (`bedrock` or `sts`). Bearer keys are only accepted
/// when `allow_bearer`.
pub(crate) fn authenticate(
    shared: &Shared,
    parts: &Parts,
    body: &[u8],
    service: &str,
    allow_bearer: bool,
) -> Result<RecordedAuth, AuthFailure> {
    let value = authorization(parts).ok_or(AuthFailure::Missing)?;
    if let Some(key) = value.strip_prefix("Bearer ") {
        if allow_bearer
            && shared
                .api_keys
                .iter()
                .any(|k| ct_eq(k.as_bytes(), key.as_bytes()))
        {
            return Ok(RecordedAuth::Bearer);
        }
        return Err(AuthFailure::BadBearer);
    }
    let header = parse_sigv4_header(value).ok_or_else(|| {
        AuthFailure::Incomplete(
            "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters"
                .to_owned(),
        )
    })?;
    let amz_date = header_str(parts, "x-amz-date").ok_or_else(|| {
        AuthFailure::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header"
                .to_owned(),
        )
    })?;
    let time = parse_amz_date(amz_date)
        .ok_or_else(|| AuthFailure::Incomplete(format!("Invalid X-Amz-Date: {amz_date}")))?;

    // Look the key up first: AWS answers "invalid token" before looking at the signature.
    let token = header_str(parts, SECURITY_TOKEN);
    let token_signed = header.signed_headers.contains(&SECURITY_TOKEN);
    let secret = if let Some(secret) = shared.access_keys.get(header.access_key_id) {
        if token.is_some() {
            return Err(AuthFailure::UnknownKey);
        }
        secret.clone()
    } else {
        let cred = shared
            .temp_credential(header.access_key_id)
            .ok_or(AuthFailure::UnknownKey)?;
        match token {
            Some(t) if token_signed && ct_eq(t.as_bytes(), cred.session_token.as_bytes()) => {}
            _ => return Err(AuthFailure::UnknownKey),
        }
        if shared.clock.now() >= cred.expiration {
            return Err(AuthFailure::Expired);
        }
        cred.secret_access_key
    };

    if header.service != service {
        return Err(AuthFailure::BadSignature(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }
    if amz_date.get(..8) != Some(header.date) {
        return Err(AuthFailure::BadSignature(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}'",
            header.date,
            amz_date.get(..8).unwrap_or_default()
        )));
    }
    let now = shared.clock.now();
    let skew = now.duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > MAX_SKEW {
        return Err(AuthFailure::BadSignature(format!(
            "Signature expired: {amz_date} is now outside the allowed skew of 5 minutes from the server time"
        )));
    }

    let expected = expected_signature(parts, body, &header, &secret, token, time)?;
    if !ct_eq(expected.as_bytes(), header.signature.as_bytes()) {
        return Err(AuthFailure::BadSignature(
            "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                .to_owned(),
        ));
    }
    Ok(RecordedAuth::SigV4 {
        access_key_id: header.access_key_id.to_owned(),
        session_token: token.map(str::to_owned),
    })
}

/// Recomputes the signature of the request as received.
fn expected_signature(
    parts: &Parts,
    body: &[u8],
    header: &SigV4Header<'_>,
    secret: &str,
    token: Option<&str>,
    time: SystemTime,
) -> Result<String, AuthFailure> {
    let mismatch = |what: &str| {
        AuthFailure::BadSignature(format!(
            "The request signature we calculated does not match the signature you provided ({what})."
        ))
    };
    // Only the headers listed in SignedHeaders take part. `x-amz-date` and the session token
    // are added by the signer itself from the time and the credentials.
    let mut headers: Vec<(&str, &str)> = Vec::with_capacity(header.signed_headers.len());
    for name in &header.signed_headers {
        if *name == "x-amz-date" || *name == SECURITY_TOKEN {
            continue;
        }
        let mut found = false;
        for value in parts.headers.get_all(*name) {
            let value = value
                .to_str()
                .map_err(|_| mismatch("a signed header is not ASCII"))?;
            headers.push((name, value));
            found = true;
        }
        if !found {
            return Err(mismatch("a signed header is missing"));
        }
    }
    let host = header_str(parts, "host").unwrap_or("localhost");
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let uri = format!("http://{host}{path_and_query}");
    let signable_body = match header_str(parts, "x-amz-content-sha256") {
        Some("UNSIGNED-PAYLOAD") => SignableBody::UnsignedPayload,
        _ => SignableBody::Bytes(body),
    };

    let identity: Identity = Credentials::new(
        header.access_key_id,
        secret,
        token.map(str::to_owned),
        None,
        "bedrock-sim",
    )
    .into();
    let mut settings = SigningSettings::default();
    // We pass exactly the signed headers, so nothing needs excluding.
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(header.region)
        .name(header.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|_| mismatch("signing parameters"))?
        .into();
    let request = SignableRequest::new(
        parts.method.as_str(),
        uri,
        headers.into_iter(),
        signable_body,
    )
    .map_err(|_| mismatch("the request cannot be canonicalised"))?;
    let output = sign(request, &params).map_err(|_| mismatch("the request cannot be signed"))?;
    Ok(output.signature().to_owned())
}

/// Constant-time equality (for signatures and keys).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_botocore_authorization_header() {
        let h = parse_sigv4_header("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=744a").unwrap();
        assert_eq!(h.access_key_id, "AKIDEXAMPLE");
        assert_eq!(h.date, "20240115");
        assert_eq!(h.region, "us-east-1");
        assert_eq!(h.service, "bedrock");
        assert_eq!(h.signed_headers, ["content-type", "host", "x-amz-date"]);
        assert_eq!(h.signature, "744a");
    }

    #[test]
    fn rejects_malformed_authorization_headers() {
        for bad in [
            "AWS4-HMAC-SHA256 Credential=AKID/20240115/us-east-1/bedrock, SignedHeaders=host, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AKID/20240115/us-east-1/bedrock/aws4_request, Signature=ab",
            "AWS4-HMAC-SHA256 Credential=AKID/20240115/us-east-1/bedrock/aws4_request/x, SignedHeaders=host, Signature=ab",
            "Basic abc",
        ] {
            assert!(parse_sigv4_header(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ct_eq_compares_bytes() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
    }
}
