//! Gateway keys: who may call (and within which limits), and the console's admin keys, all
//! compared in constant time.

use std::collections::HashMap;
use std::fmt;

use gateway_core::{Caller, GuardrailAllowList};
use http::header::{HeaderMap, HeaderName, HeaderValue, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use crate::settings::{AdminKey, GatewayKey};

/// The configured keys, checked against each request's bearer token.
pub(crate) struct KeyStore {
    keys: Vec<GatewayKey>,
    /// Each key's allow-list, built once: a request only clones its `Arc`.
    guardrails: Vec<GuardrailAllowList>,
    /// So the cost of a request does not grow with the number of keys (comparing against
    /// each of 10,000 keys made a request 18 times dearer).
    index: KeyIndex,
}

impl KeyStore {
    pub(crate) fn new(keys: Vec<GatewayKey>) -> Self {
        let guardrails = keys.iter().map(GatewayKey::guardrail_allow_list).collect();
        let index = KeyIndex::new(keys.iter().map(|key| &key.key));
        Self {
            keys,
            guardrails,
            index,
        }
    }

    /// The caller the request's gateway key identifies, or `None`. The key comes in
    /// `Authorization: Bearer <key>` (OpenAI's clients) or `x-api-key: <key>` (Anthropic's),
    /// on every endpoint. `None` when either header is given twice, whatever the first says
    /// (a proxy or framework in front may read another one than this gateway did), or when
    /// both are given with different keys (which one would be the caller?).
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Option<Caller> {
        let authorization = only(headers, &AUTHORIZATION).ok()?;
        let api_key = only(headers, &X_API_KEY).ok()?;
        let token = match (authorization, api_key) {
            (None, None) => return None,
            (Some(authorization), None) => bearer_token(authorization)?,
            (None, Some(api_key)) => api_key_token(api_key)?,
            (Some(authorization), Some(api_key)) => {
                let token = bearer_token(authorization)?;
                if !bool::from(constant_time_eq(token, api_key_token(api_key)?)) {
                    return None;
                }
                token
            }
        };
        self.authenticate_token(token)
    }

    /// The configured keys, for the console (names and limits; never shown whole).
    pub(crate) fn keys(&self) -> &[GatewayKey] {
        &self.keys
    }

    /// The caller one token identifies, or `None` (see [`KeyIndex`]).
    fn authenticate_token(&self, token: &[u8]) -> Option<Caller> {
        let (index, key) = self.index.find(token, &self.keys, |key| &key.key)?;
        let guardrails = self.guardrails.get(index)?;
        Some(Caller {
            key_name: Some(key.name.clone()),
            finish_reason_style: key.finish_reason_style,
            drop_unsupported_params: key.drop_unsupported_params,
            limits: key.limits(),
            guardrails: guardrails.clone(),
        })
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// The console's admin keys: they open its API and nothing else.
pub(crate) struct AdminKeys {
    keys: Vec<AdminKey>,
    index: KeyIndex,
}

impl AdminKeys {
    pub(crate) fn new(keys: Vec<AdminKey>) -> Self {
        let index = KeyIndex::new(keys.iter().map(|key| &key.key));
        Self { keys, index }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The name of the admin key in the request's one `Authorization: Bearer <key>`, or
    /// `None`; found as gateway keys are.
    pub(crate) fn authenticate(&self, headers: &HeaderMap) -> Option<&str> {
        let token = bearer_token(only(headers, &AUTHORIZATION).ok()??)?;
        let (_, key) = self.index.find(token, &self.keys, |key| &key.key)?;
        Some(key.name.as_str())
    }
}

impl fmt::Debug for AdminKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Where each configured key sits in its list, by the key's SHA-256.
///
/// A token is found by its digest. What a lookup's timing can tell is how the presented
/// token's digest sits among the stored digests, and a digest gives away nothing of the key
/// it came from (SHA-256 has no known preimage attack); no comparison ever runs over a key's
/// own bytes until the digests agree. The key found is then compared with the token in
/// constant time all the same.
struct KeyIndex(HashMap<[u8; 32], usize>);

impl KeyIndex {
    fn new<'a>(secrets: impl Iterator<Item = &'a SecretString>) -> Self {
        Self(
            secrets
                .enumerate()
                .map(|(index, secret)| (digest(secret.expose_secret().as_bytes()), index))
                .collect(),
        )
    }

    /// The key of `keys` (the list this index was made from) that `token` is, and its
    /// position.
    fn find<'k, K>(
        &self,
        token: &[u8],
        keys: &'k [K],
        secret: impl Fn(&K) -> &SecretString,
    ) -> Option<(usize, &'k K)> {
        let index = *self.0.get(&digest(token))?;
        let key = keys.get(index)?;
        bool::from(constant_time_eq(
            token,
            secret(key).expose_secret().as_bytes(),
        ))
        .then_some((index, key))
    }
}

/// A key's SHA-256.
fn digest(key: &[u8]) -> [u8; 32] {
    Sha256::digest(key).into()
}

/// Anthropic's key header.
const X_API_KEY: HeaderName = HeaderName::from_static("x-api-key");

/// The one value of `name`; `Err` when the head carries it twice or more.
fn only<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a HeaderValue>, ()> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (one, None) => Ok(one),
        _ => Err(()),
    }
}

fn api_key_token(header: &HeaderValue) -> Option<&[u8]> {
    let token = header.as_bytes().trim_ascii();
    (!token.is_empty()).then_some(token)
}

fn bearer_token(header: &HeaderValue) -> Option<&[u8]> {
    let value = header.as_bytes();
    let scheme = value.get(..7)?;
    // The scheme is case-insensitive (RFC 9110); the token is not.
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let token = value.get(7..)?.trim_ascii();
    (!token.is_empty()).then_some(token)
}

/// Equality whose running time depends on `expected`'s length only, not on where `presented`
/// first differs (`subtle`'s slice `ct_eq` returns early on a length mismatch).
fn constant_time_eq(presented: &[u8], expected: &[u8]) -> Choice {
    let mut equal = (presented.len() as u64).ct_eq(&(expected.len() as u64));
    for (i, byte) in expected.iter().enumerate() {
        let other = presented.get(i).copied().unwrap_or(0);
        equal &= other.ct_eq(byte);
    }
    equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::{FinishReasonStyle, KeyLimits};

    fn store() -> KeyStore {
        KeyStore::new(vec![
            GatewayKey::new("team-a", "sk-a".into()),
            GatewayKey {
                finish_reason_style: Some(FinishReasonStyle::Strict),
                rpm: Some(60),
                ..GatewayKey::new("strict", "sk-strict-longer".into())
            },
        ])
    }

    #[test]
    fn among_many_keys_each_token_finds_its_own_and_near_misses_find_none() {
        let keys: Vec<GatewayKey> = (0..1000)
            .map(|i| GatewayKey::new(format!("key-{i}"), format!("sk-{i:04}").into()))
            .collect();
        let store = KeyStore::new(keys);
        for i in [0, 537, 999] {
            let caller = store.authenticate_token(format!("sk-{i:04}").as_bytes());
            assert_eq!(
                caller.and_then(|c| c.key_name),
                Some(format!("key-{i}")),
                "key {i}"
            );
        }
        for miss in ["sk-1000", "sk-053", "sk-05370", "SK-0537", ""] {
            assert!(
                store.authenticate_token(miss.as_bytes()).is_none(),
                "{miss}"
            );
        }
    }

    fn auth(value: &str) -> Option<Caller> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        store().authenticate(&headers)
    }

    #[test]
    fn a_configured_key_names_the_caller_and_its_style() {
        assert_eq!(
            auth("Bearer sk-strict-longer"),
            Some(Caller {
                key_name: Some("strict".into()),
                finish_reason_style: Some(FinishReasonStyle::Strict),
                drop_unsupported_params: None,
                limits: KeyLimits {
                    rpm: Some(60),
                    ..KeyLimits::default()
                },
                guardrails: GuardrailAllowList::default(),
            })
        );
        assert_eq!(
            auth("bearer sk-a").and_then(|c| c.key_name),
            Some("team-a".into())
        );
    }

    #[test]
    fn wrong_prefixes_extensions_and_schemes_are_refused() {
        for bad in [
            "Bearer sk-",
            "Bearer sk-aa",
            "Bearer sk-strict",
            "Bearer SK-A",
            "Basic sk-a",
            "Bearer ",
            "sk-a",
            "",
        ] {
            assert_eq!(auth(bad), None, "{bad:?}");
        }
        assert_eq!(store().authenticate(&HeaderMap::new()), None);
    }

    #[test]
    fn no_keys_means_nobody_gets_in() {
        let empty = KeyStore::new(vec![]);
        assert_eq!(empty.authenticate_token(b""), None);
        assert_eq!(
            auth_headers(&[("authorization", "Bearer sk-a")], &empty),
            None
        );
    }

    fn auth_headers(pairs: &[(&'static str, &'static str)], store: &KeyStore) -> Option<Caller> {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(*name, HeaderValue::from_static(value));
        }
        store.authenticate(&headers)
    }

    #[test]
    fn x_api_key_is_a_key_too_and_agrees_with_authorization_or_is_refused() {
        let name = |pairs: &[(&'static str, &'static str)]| {
            auth_headers(pairs, &store()).and_then(|caller| caller.key_name)
        };
        assert_eq!(name(&[("x-api-key", "sk-a")]), Some("team-a".into()));
        assert_eq!(
            name(&[("x-api-key", "sk-a"), ("authorization", "Bearer sk-a")]),
            Some("team-a".into())
        );
        for refused in [
            &[
                ("x-api-key", "sk-a"),
                ("authorization", "Bearer sk-strict-longer"),
            ][..],
            &[("x-api-key", "sk-a"), ("x-api-key", "sk-a")],
            &[("x-api-key", "Bearer sk-a")],
            &[("x-api-key", "")],
            &[("x-api-key", "sk-b")],
            &[("x-api-key", "sk-a"), ("authorization", "Basic sk-a")],
        ] {
            assert_eq!(name(refused), None, "{refused:?}");
        }
    }

    #[test]
    fn admin_keys_open_only_with_their_own_bearer_token() {
        let admins = AdminKeys::new(vec![AdminKey {
            name: "ops".into(),
            key: "admin-key-long".into(),
        }]);
        let name = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(*name, HeaderValue::from_static(value));
            }
            admins.authenticate(&headers).map(str::to_owned)
        };
        assert_eq!(
            name(&[("authorization", "Bearer admin-key-long")]),
            Some("ops".into())
        );
        for refused in [
            &[("authorization", "Bearer admin-key-lon")][..],
            &[("authorization", "Bearer sk-a")],
            &[("x-api-key", "admin-key-long")],
            &[
                ("authorization", "Bearer admin-key-long"),
                ("authorization", "Bearer admin-key-long"),
            ],
            &[],
        ] {
            assert_eq!(name(refused), None, "{refused:?}");
        }
        // A gateway key store knows nothing of admin keys.
        assert_eq!(store().authenticate_token(b"admin-key-long"), None);
    }

    #[test]
    fn two_authorization_headers_are_refused_whatever_the_first_says() {
        let valid = HeaderValue::from_static("Bearer sk-a");
        for second in ["Bearer sk-a", "Bearer wrong", ""] {
            let mut headers = HeaderMap::new();
            headers.append(AUTHORIZATION, valid.clone());
            headers.append(AUTHORIZATION, HeaderValue::from_static(second));
            assert_eq!(store().authenticate(&headers), None, "{second:?}");
        }
    }
}
