//! STS: AssumeRole (signed, external ids, denied roles), AssumeRoleWithWebIdentity, the
//! issued credentials on Bedrock (session token required, expiry without sleeping), and
//! aws-config's real AssumeRoleProvider against the simulator.

#![allow(
    clippy::unwrap_used,
    reason = "integration tests and their helper functions fail by panicking"
)]

mod common;

use std::time::Duration;

use bedrock_sim::{BedrockSim, RecordedAuth, SimHandle, SimRole};
use common::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/gateway";
const EXT_ROLE: &str = "arn:aws:iam::123456789012:role/needs-external-id";
const DENIED_ROLE: &str = "arn:aws:iam::123456789012:role/denied";
const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.sim.token";

async fn sim_with_ttl(ttl: Duration) -> SimHandle {
    init();
    BedrockSim::builder()
        .access_key(AKID, SECRET)
        .role(SimRole::new(ROLE))
        .role(SimRole::new(EXT_ROLE).external_id("ext-42"))
        .role(SimRole::new(DENIED_ROLE).denied())
        .web_identity_token(JWT)
        .temp_credentials_ttl(ttl)
        .start()
        .await
        .unwrap()
}

async fn sim() -> SimHandle {
    sim_with_ttl(Duration::from_secs(3600)).await
}

fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].to_owned())
}

/// Calls STS with a form body, signed (service `sts`) with `creds` if given.
async fn sts(sim: &SimHandle, form: &str, creds: Option<&Creds>) -> (u16, String) {
    let req = match creds {
        Some(creds) => signed(
            &sim.url(),
            "/",
            form.as_bytes(),
            creds,
            "us-east-1",
            "sts",
            "application/x-www-form-urlencoded",
            now(),
        ),
        None => http::Request::builder()
            .method("POST")
            .uri(format!("{}/", sim.url()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                form.to_owned(),
            )))
            .unwrap(),
    };
    let (status, headers, body) = call(sim.addr(), req).await;
    assert_eq!(headers["content-type"], "text/xml");
    (status.as_u16(), String::from_utf8(body.to_vec()).unwrap())
}

fn assume_role_form(role: &str, external_id: Option<&str>) -> String {
    let mut form = format!(
        "Action=AssumeRole&Version=2011-06-15&RoleArn={}&RoleSessionName=ai-gateway",
        label(role)
    );
    if let Some(id) = external_id {
        form.push_str(&format!("&ExternalId={id}"));
    }
    form
}

fn issued(xml: &str) -> Creds {
    Creds {
        access_key_id: xml_value(xml, "AccessKeyId").unwrap(),
        secret: xml_value(xml, "SecretAccessKey").unwrap(),
        token: Some(xml_value(xml, "SessionToken").unwrap()),
    }
}

#[tokio::test]
async fn assume_role_issues_credentials_that_bedrock_accepts() {
    let sim = sim().await;
    let (status, xml) = sts(&sim, &assume_role_form(ROLE, None), Some(&Creds::test())).await;
    assert_eq!(status, 200, "{xml}");
    assert!(
        xml.starts_with("<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">")
    );
    for tag in [
        "AssumeRoleResult",
        "Credentials",
        "Expiration",
        "AssumedRoleUser",
        "Arn",
        "AssumedRoleId",
        "RequestId",
    ] {
        assert!(xml.contains(&format!("<{tag}>")), "{tag}: {xml}");
    }
    assert_eq!(
        xml_value(&xml, "Arn").unwrap(),
        "arn:aws:sts::123456789012:assumed-role/gateway/ai-gateway"
    );
    let expiration = xml_value(&xml, "Expiration").unwrap();
    assert_eq!(expiration.len(), 20, "{expiration}");
    let creds = issued(&xml);
    assert!(creds.access_key_id.starts_with("ASIA"));
    assert_eq!(sim.sts_calls(), 1);

    let req = bedrock_request(&sim.url(), CLAUDE, "converse", &converse_body("hi"), &creds);
    let (status, _, value) = call_json(sim.addr(), req).await;
    assert_eq!(status, 200, "{value}");
    assert_eq!(
        sim.requests()[0].auth,
        RecordedAuth::SigV4 {
            access_key_id: creds.access_key_id.clone(),
            session_token: creds.token.clone()
        }
    );

    // Role chaining: the temporary credentials may call AssumeRole too.
    let (status, _) = sts(&sim, &assume_role_form(ROLE, None), Some(&creds)).await;
    assert_eq!(status, 200);
    assert_eq!(sim.sts_calls(), 2);
}

#[tokio::test]
async fn issued_credentials_need_their_session_token() {
    let sim = sim().await;
    let (_, xml) = sts(&sim, &assume_role_form(ROLE, None), Some(&Creds::test())).await;
    let mut creds = issued(&xml);
    creds.token = None;
    let req = bedrock_request(&sim.url(), CLAUDE, "converse", &converse_body("hi"), &creds);
    let (status, headers, _) = call_json(sim.addr(), req).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "UnrecognizedClientException");

    creds.token = Some("some-other-token".to_owned());
    let req = bedrock_request(&sim.url(), CLAUDE, "converse", &converse_body("hi"), &creds);
    let (status, headers, _) = call_json(sim.addr(), req).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "UnrecognizedClientException");
}

#[tokio::test]
async fn already_expired_credentials_are_expired_tokens() {
    let sim = sim_with_ttl(Duration::ZERO).await;
    let (status, xml) = sts(&sim, &assume_role_form(ROLE, None), Some(&Creds::test())).await;
    assert_eq!(status, 200);
    let req = bedrock_request(
        &sim.url(),
        CLAUDE,
        "converse",
        &converse_body("hi"),
        &issued(&xml),
    );
    let (status, headers, value) = call_json(sim.addr(), req).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "ExpiredTokenException");
    assert_eq!(
        value["message"],
        "The security token included in the request is expired"
    );
}

#[tokio::test]
async fn credentials_expire_when_the_clock_advances() {
    let sim = sim_with_ttl(Duration::from_secs(900)).await;
    let (_, xml) = sts(&sim, &assume_role_form(ROLE, None), Some(&Creds::test())).await;
    let creds = issued(&xml);
    let req = bedrock_request(&sim.url(), CLAUDE, "converse", &converse_body("hi"), &creds);
    assert_eq!(call_json(sim.addr(), req).await.0, 200);

    sim.advance_clock(Duration::from_secs(901));
    // Sign at the simulator's (advanced) time so the skew check passes.
    let req = signed(
        &sim.url(),
        &format!("/model/{CLAUDE_PATH}/converse"),
        converse_body("hi").to_string().as_bytes(),
        &creds,
        REGION,
        "bedrock",
        "application/json",
        now() + Duration::from_secs(901),
    );
    let (status, headers, _) = call_json(sim.addr(), req).await;
    assert_eq!(status, 403);
    assert_eq!(error_type(&headers), "ExpiredTokenException");
}

#[tokio::test]
async fn assume_role_rejections_use_sts_error_xml() {
    let sim = sim().await;
    let cases: Vec<(String, Option<Creds>, u16, &str)> = vec![
        (
            assume_role_form(ROLE, None),
            None,
            403,
            "MissingAuthenticationToken",
        ),
        (
            assume_role_form(ROLE, None),
            Some(Creds::long_term("AKIDNOPE", SECRET)),
            403,
            "InvalidClientTokenId",
        ),
        (
            assume_role_form(ROLE, None),
            Some(Creds::long_term(AKID, "wrong")),
            403,
            "SignatureDoesNotMatch",
        ),
        (
            assume_role_form("arn:aws:iam::123456789012:role/unknown", None),
            Some(Creds::test()),
            403,
            "AccessDenied",
        ),
        (
            assume_role_form(DENIED_ROLE, None),
            Some(Creds::test()),
            403,
            "AccessDenied",
        ),
        (
            assume_role_form(EXT_ROLE, None),
            Some(Creds::test()),
            403,
            "AccessDenied",
        ),
        (
            assume_role_form(EXT_ROLE, Some("wrong")),
            Some(Creds::test()),
            403,
            "AccessDenied",
        ),
        (
            "Action=GetCallerIdentity&Version=2011-06-15".to_owned(),
            Some(Creds::test()),
            400,
            "InvalidAction",
        ),
    ];
    for (form, creds, expected_status, code) in cases {
        let (status, xml) = sts(&sim, &form, creds.as_ref()).await;
        assert_eq!(status, expected_status, "{form}: {xml}");
        assert!(xml.starts_with("<ErrorResponse"), "{xml}");
        assert_eq!(xml_value(&xml, "Type").as_deref(), Some("Sender"));
        assert_eq!(xml_value(&xml, "Code").as_deref(), Some(code), "{form}");
        assert!(xml_value(&xml, "Message").is_some());
        assert!(xml_value(&xml, "RequestId").is_some());
    }
    let (status, xml) = sts(
        &sim,
        &assume_role_form(EXT_ROLE, Some("ext-42")),
        Some(&Creds::test()),
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    // Every AssumeRole call counts, answered with credentials or not.
    assert_eq!(sim.sts_calls(), 8);
}

#[tokio::test]
async fn web_identity() {
    let sim = sim().await;
    let form = |token: &str, role: &str| {
        format!(
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName=pod&WebIdentityToken={}",
            label(role),
            label(token)
        )
    };
    let (status, xml) = sts(&sim, &form(JWT, ROLE), None).await;
    assert_eq!(status, 200, "{xml}");
    assert!(xml.starts_with("<AssumeRoleWithWebIdentityResponse"));
    assert!(xml.contains("<AssumeRoleWithWebIdentityResult>"));
    let creds = issued(&xml);
    let req = bedrock_request(&sim.url(), CLAUDE, "converse", &converse_body("hi"), &creds);
    assert_eq!(call_json(sim.addr(), req).await.0, 200);

    let (status, xml) = sts(&sim, &form("not-the-token", ROLE), None).await;
    assert_eq!(status, 400);
    assert_eq!(
        xml_value(&xml, "Code").as_deref(),
        Some("InvalidIdentityToken")
    );

    let (status, xml) = sts(&sim, &form(JWT, DENIED_ROLE), None).await;
    assert_eq!(status, 403);
    assert_eq!(xml_value(&xml, "Code").as_deref(), Some("AccessDenied"));
    assert_eq!(sim.sts_calls(), 3);
}

#[tokio::test]
async fn aws_config_assume_role_provider_works_against_the_sim() {
    use aws_config::sts::AssumeRoleProvider;
    use aws_config::{BehaviorVersion, Region};
    use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
    use aws_smithy_http_client::tls;

    let sim = sim().await;
    let http_client = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let base = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http_client)
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new(AKID, SECRET, None, None, "test"),
        ))
        .endpoint_url(sim.url())
        .load()
        .await;
    let provider = AssumeRoleProvider::builder(EXT_ROLE)
        .external_id("ext-42")
        .session_name("ai-gateway")
        .configure(&base)
        .build()
        .await;
    let creds = provider.provide_credentials().await.unwrap();
    assert!(creds.access_key_id().starts_with("ASIA"));
    assert!(creds.session_token().is_some());
    assert!(creds.expiry().is_some());
    assert_eq!(sim.sts_calls(), 1);

    let creds = Creds {
        access_key_id: creds.access_key_id().to_owned(),
        secret: creds.secret_access_key().to_owned(),
        token: creds.session_token().map(str::to_owned),
    };
    let req = bedrock_request(&sim.url(), CLAUDE, "converse", &converse_body("hi"), &creds);
    assert_eq!(call_json(sim.addr(), req).await.0, 200);
}
