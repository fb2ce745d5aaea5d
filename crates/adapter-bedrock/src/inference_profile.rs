//! Geographic cross-region inference profiles for bare model ids.
//!
//! Bedrock serves newer models only through an inference profile. Called with the bare model
//! id it answers `ValidationException: Invocation of model ID <id> with on-demand throughput
//! isn’t supported. Retry your request with the ID or ARN of an inference profile that contains
//! this model.` The provider then retries once with the geographic profile of the route's
//! region, `<geo>.<model id>`, and remembers it for the route so later calls go straight to
//! it ([`RememberedProfiles`]). Model ids that already name a profile (a geo prefix) or an
//! ARN are never rewritten, and regions outside the known geographies get Bedrock's error.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// The geographic prefixes of Bedrock's system-defined inference profile ids
/// (`us.anthropic.claude-...`); model families are read from ids without them.
pub(crate) const GEO_PREFIXES: &[&str] =
    &["us", "eu", "apac", "us-gov", "jp", "au", "ca", "global"];

/// The geography whose profile serves `model_id` from `region`, when `model_id` is a bare
/// model id (neither an ARN nor a profile id) and the region belongs to a geography with
/// profiles: `us-gov-*` -> `us-gov`, `us-*` -> `us`, `eu-*` -> `eu`, `ap-*` -> `apac`,
/// `ca-*` -> `ca`. Allocates nothing: it runs on every request.
pub(crate) fn profile_geography(model_id: &str, region: &str) -> Option<&'static str> {
    if model_id.starts_with("arn:") || has_geo_prefix(model_id) {
        return None;
    }
    [
        ("us-gov-", "us-gov"),
        ("us-", "us"),
        ("eu-", "eu"),
        ("ap-", "apac"),
        ("ca-", "ca"),
    ]
    .into_iter()
    .find_map(|(region_prefix, geography)| region.starts_with(region_prefix).then_some(geography))
}

/// Whether `model_id` names an inference profile (a geographic profile id such as
/// `us.anthropic...`, or a system-defined or application inference profile's ARN) rather
/// than a model.
pub fn names_inference_profile(model_id: &str) -> bool {
    if model_id.starts_with("arn:") {
        return model_id.contains(":inference-profile/")
            || model_id.contains(":application-inference-profile/");
    }
    has_geo_prefix(model_id)
}

/// Whether `model_id` starts with a geographic profile prefix (`us.`, `eu.`, ...).
fn has_geo_prefix(model_id: &str) -> bool {
    let first_segment = model_id
        .split_once('.')
        .map_or(model_id, |(first, _)| first);
    GEO_PREFIXES.contains(&first_segment)
}

/// The profile id for `model_id` in `geography`.
pub(crate) fn profile_id(geography: &str, model_id: &str) -> Arc<str> {
    Arc::from(format!("{geography}.{model_id}"))
}

/// The profile each route switched to, by the route's public name. Read on every request
/// whose model id could need a profile, written once per such route: a read-locked map keeps
/// those reads from contending.
#[derive(Debug, Default)]
pub(crate) struct RememberedProfiles {
    by_route: RwLock<HashMap<Box<str>, Arc<str>>>,
}

impl RememberedProfiles {
    /// The profile `route` switched to, if it did.
    pub(crate) fn get(&self, route: &str) -> Option<Arc<str>> {
        // A panic while the lock was held cannot leave the map half-written (one insert),
        // so a poisoned lock is still good to read.
        self.by_route
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(route)
            .cloned()
    }

    /// Remembers `profile` for `route`; true when it was not remembered yet (so whoever
    /// inserted it logs it, once).
    pub(crate) fn remember(&self, route: &str, profile: &Arc<str>) -> bool {
        let mut by_route = self
            .by_route
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if by_route.contains_key(route) {
            return false;
        }
        by_route.insert(route.into(), Arc::clone(profile));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MODEL: &str = "anthropic.claude-3-5-sonnet-20241022-v2:0";

    #[test]
    fn regions_map_to_their_geography() {
        for (region, geography) in [
            ("us-east-1", Some("us")),
            ("us-west-2", Some("us")),
            ("us-gov-west-1", Some("us-gov")),
            ("eu-central-1", Some("eu")),
            ("ap-northeast-1", Some("apac")),
            ("ca-central-1", Some("ca")),
            ("sa-east-1", None),
            ("me-central-1", None),
            ("af-south-1", None),
        ] {
            assert_eq!(profile_geography(MODEL, region), geography, "{region}");
        }
    }

    #[test]
    fn profiles_are_named_by_geo_prefix_or_profile_arn() {
        for profile in [
            "us.anthropic.claude-3-haiku-20240307-v1:0",
            "global.anthropic.claude-sonnet-4-5-20250929-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3",
        ] {
            assert!(names_inference_profile(profile), "{profile}");
        }
        for model in [
            "anthropic.claude-3-haiku-20240307-v1:0",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0",
            "amazon.nova-pro-v1:0",
        ] {
            assert!(!names_inference_profile(model), "{model}");
        }
    }

    #[test]
    fn profile_ids_and_arns_are_never_rewritten() {
        for model_id in [
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0",
            "us-gov.anthropic.claude-3-5-sonnet-20240620-v1:0",
            "eu.amazon.nova-pro-v1:0",
            "apac.amazon.nova-lite-v1:0",
            "global.anthropic.claude-sonnet-4-20250514-v1:0",
            "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
            "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-sonnet-20241022-v2:0",
        ] {
            assert_eq!(profile_geography(model_id, "us-east-1"), None, "{model_id}");
        }
        assert_eq!(
            &*profile_id("us", MODEL),
            "us.anthropic.claude-3-5-sonnet-20241022-v2:0"
        );
    }

    #[test]
    fn a_profile_is_remembered_once_per_route() {
        let profiles = RememberedProfiles::default();
        let profile = profile_id("us", MODEL);
        assert_eq!(profiles.get("acct/claude"), None);
        assert!(profiles.remember("acct/claude", &profile));
        assert!(!profiles.remember("acct/claude", &profile));
        assert_eq!(profiles.get("acct/claude"), Some(profile));
        assert_eq!(profiles.get("acct/other"), None);
    }
}
