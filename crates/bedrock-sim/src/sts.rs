//! STS: `POST /` with a form body, `Action=AssumeRole` (SigV4, service `sts`) or
//! `Action=AssumeRoleWithWebIdentity` (unsigned). Issues random temporary credentials that the
//! Bedrock endpoint then accepts until they expire. Answers STS's XML shapes.

use std::fmt::Write as _;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::request::Parts;
use http::{Response, StatusCode};

use crate::body::SimBody;
use crate::clock::format_iso8601;
use crate::sigv4::{authenticate, ct_eq, AuthFailure};
use crate::state::{request_id, Shared, TempCredential};

const XMLNS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";
const ACCOUNT: &str = "123456789012";

/// Handles one `POST /` STS call whose body was read.
pub(crate) fn handle(shared: &Shared, parts: &Parts, body: &Bytes) -> Response<SimBody> {
    let form = parse_form(body);
    let param = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    match param("Version") {
        Some("2011-06-15") | None => {}
        Some(other) => {
            return error(
                400,
                "InvalidAction",
                &format!("Could not find operation for version {other}"),
            );
        }
    }
    let action = match param("Action") {
        Some(action @ ("AssumeRole" | "AssumeRoleWithWebIdentity")) => action,
        Some(other) => {
            return error(
                400,
                "InvalidAction",
                &format!("Could not find operation {other} for version 2011-06-15"),
            );
        }
        None => return error(400, "MissingAction", "Missing Action"),
    };
    shared
        .sts_calls
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);

    let web_identity = action == "AssumeRoleWithWebIdentity";
    if web_identity {
        let token = param("WebIdentityToken").unwrap_or_default();
        let valid = shared
            .web_identity_tokens
            .iter()
            .any(|t| ct_eq(t.as_bytes(), token.as_bytes()));
        if !valid {
            return error(
                400,
                "InvalidIdentityToken",
                "The web identity token that was passed could not be validated by AWS. Get a new identity token from the identity provider and then retry the request.",
            );
        }
    } else if shared.verify {
        if let Err(failure) = authenticate(shared, parts, body, "sts", false) {
            return auth_error(&failure);
        }
    }

    let (Some(role_arn), Some(session_name)) = (param("RoleArn"), param("RoleSessionName")) else {
        let missing = if param("RoleArn").is_none() {
            "roleArn"
        } else {
            "roleSessionName"
        };
        return error(
            400,
            "ValidationError",
            &format!("1 validation error detected: Value null at '{missing}' failed to satisfy constraint: Member must not be null"),
        );
    };
    let denied = || {
        error(
            403,
            "AccessDenied",
            &format!("User: arn:aws:iam::{ACCOUNT}:user/bedrock-sim is not authorized to perform: sts:{action} on resource: {role_arn}"),
        )
    };
    let Some(role) = shared.roles.iter().find(|r| r.role_arn == role_arn) else {
        return denied();
    };
    if role.deny {
        return denied();
    }
    if let Some(required) = &role.external_id {
        if param("ExternalId") != Some(required.as_str()) {
            return denied();
        }
    }

    let access_key_id = format!(
        "ASIA{}",
        random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    );
    let secret = random_string(40, BASE64_CHARS);
    let token = format!("IQoJb3JpZ2luX2VjE{}", random_string(300, BASE64_CHARS));
    let expiration = shared.clock.now() + shared.ttl;
    shared
        .temp_credentials
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            access_key_id.clone(),
            TempCredential {
                secret_access_key: secret.clone(),
                session_token: token.clone(),
                expiration,
            },
        );

    let role_name = role_arn.rsplit('/').next().unwrap_or(role_arn);
    let mut xml = String::with_capacity(1024);
    let _ = write!(
        xml,
        "<{action}Response xmlns=\"{XMLNS}\">\n  <{action}Result>\n    <Credentials>\n      <AccessKeyId>{}</AccessKeyId>\n      <SecretAccessKey>{}</SecretAccessKey>\n      <SessionToken>{}</SessionToken>\n      <Expiration>{}</Expiration>\n    </Credentials>\n    <AssumedRoleUser>\n      <Arn>arn:aws:sts::{ACCOUNT}:assumed-role/{}/{}</Arn>\n      <AssumedRoleId>AROA{}:{}</AssumedRoleId>\n    </AssumedRoleUser>\n",
        access_key_id,
        secret,
        token,
        format_iso8601(expiration),
        escape(role_name),
        escape(session_name),
        random_string(17, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
        escape(session_name),
    );
    if web_identity {
        let _ = write!(
            xml,
            "    <SubjectFromWebIdentityToken>system:serviceaccount:default:bedrock-sim</SubjectFromWebIdentityToken>\n    <Audience>sts.amazonaws.com</Audience>\n    <Provider>arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.bedrock-sim.local</Provider>\n"
        );
    } else {
        xml.push_str("    <PackedPolicySize>6</PackedPolicySize>\n");
    }
    let _ = write!(
        xml,
        "  </{action}Result>\n  <ResponseMetadata>\n    <RequestId>{}</RequestId>\n  </ResponseMetadata>\n</{action}Response>\n",
        request_id()
    );
    xml_response(StatusCode::OK, xml)
}

const BASE64_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn random_string(len: usize, alphabet: &[u8]) -> String {
    (0..len)
        .map(|_| char::from(alphabet[fastrand::usize(..alphabet.len())]))
        .collect()
}

fn auth_error(failure: &AuthFailure) -> Response<SimBody> {
    match failure {
        AuthFailure::Missing | AuthFailure::BadBearer => error(
            403,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ),
        AuthFailure::Incomplete(message) => error(400, "IncompleteSignature", message),
        AuthFailure::UnknownKey => error(
            403,
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        ),
        AuthFailure::Expired => error(
            403,
            "ExpiredToken",
            "The security token included in the request is expired",
        ),
        AuthFailure::BadSignature(message) => error(403, "SignatureDoesNotMatch", message),
    }
}

/// STS's XML error shape.
fn error(status: u16, code: &str, message: &str) -> Response<SimBody> {
    let kind = if status >= 500 { "Receiver" } else { "Sender" };
    let xml = format!(
        "<ErrorResponse xmlns=\"{XMLNS}\">\n  <Error>\n    <Type>{kind}</Type>\n    <Code>{code}</Code>\n    <Message>{}</Message>\n  </Error>\n  <RequestId>{}</RequestId>\n</ErrorResponse>\n",
        escape(message),
        request_id()
    );
    xml_response(
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        xml,
    )
}

fn xml_response(status: StatusCode, xml: String) -> Response<SimBody> {
    let mut response = Response::new(SimBody::full(xml));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    if let Ok(id) = HeaderValue::from_str(&request_id()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Parses `application/x-www-form-urlencoded` (`+` is a space).
pub(crate) fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    let decode = |s: &[u8]| {
        let spaced: Vec<u8> = s
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced)
            .decode_utf8_lossy()
            .into_owned()
    };
    body.split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.iter().position(|&b| b == b'=') {
            Some(i) => (decode(&pair[..i]), decode(&pair[i + 1..])),
            None => (decode(pair), String::new()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_form_bodies() {
        let form = parse_form(
            b"Action=AssumeRole&RoleArn=arn%3Aaws%3Aiam%3A%3A1%3Arole%2Fx&RoleSessionName=a+b&Flag",
        );
        assert_eq!(
            form,
            [
                ("Action".to_owned(), "AssumeRole".to_owned()),
                ("RoleArn".to_owned(), "arn:aws:iam::1:role/x".to_owned()),
                ("RoleSessionName".to_owned(), "a b".to_owned()),
                ("Flag".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
    }
}
