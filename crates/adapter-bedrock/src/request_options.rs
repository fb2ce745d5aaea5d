//! The request's options beside the conversation that Bedrock bounds: `requestMetadata` and
//! `additionalModelResponseFieldPaths`, checked against botocore's limits so a client
//! hears which field broke them (as `ProviderError::Unsupported`) before any call.

use gateway_core::{ProviderError, RequestFeature};

use crate::wire::RequestMetadata;

/// botocore: `RequestMetadata` has at most 16 entries.
const MAX_METADATA_PAIRS: usize = 16;
/// botocore: keys 1..=256 characters, values 0..=256.
const MAX_METADATA_LEN: usize = 256;
/// botocore: at most 10 paths, each 1..=256 characters.
const MAX_RESPONSE_FIELD_PATHS: usize = 10;
const MAX_RESPONSE_FIELD_PATH_LEN: usize = 256;

/// `requestMetadata`, or `None` when the client gave none (Bedrock wants at least one pair).
pub(crate) fn request_metadata(
    pairs: &[(String, String)],
) -> Result<Option<RequestMetadata<'_>>, ProviderError> {
    if pairs.is_empty() {
        return Ok(None);
    }
    if pairs.len() > MAX_METADATA_PAIRS {
        return Err(metadata_refused(format!(
            "requestMetadata takes at most {MAX_METADATA_PAIRS} pairs, {} given",
            pairs.len()
        )));
    }
    for (index, (key, value)) in pairs.iter().enumerate() {
        let key_len = key.chars().count();
        if key_len == 0 || key_len > MAX_METADATA_LEN || !key.chars().all(metadata_char) {
            return Err(metadata_refused(format!(
                "requestMetadata key `{key}` must be 1 to {MAX_METADATA_LEN} letters, digits, \
                 whitespace or `:_@$#=/+,-.`"
            )));
        }
        if value.chars().count() > MAX_METADATA_LEN || !value.chars().all(metadata_char) {
            return Err(metadata_refused(format!(
                "requestMetadata value of `{key}` must be at most {MAX_METADATA_LEN} letters, \
                 digits, whitespace or `:_@$#=/+,-.`"
            )));
        }
        if pairs[..index].iter().any(|(earlier, _)| earlier == key) {
            return Err(metadata_refused(format!(
                "requestMetadata key `{key}` is given twice"
            )));
        }
    }
    Ok(Some(RequestMetadata(pairs)))
}

/// botocore's pattern `[a-zA-Z0-9\s:_@$#=/+,-.]` (`\s` as Java reads it, ASCII only).
fn metadata_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            ' ' | '\t'
                | '\n'
                | '\x0B'
                | '\x0C'
                | '\r'
                | ':'
                | '_'
                | '@'
                | '$'
                | '#'
                | '='
                | '/'
                | '+'
                | ','
                | '-'
                | '.'
        )
}

fn metadata_refused(message: String) -> ProviderError {
    ProviderError::Unsupported {
        feature: RequestFeature::RequestMetadata,
        message,
    }
}

/// `additionalModelResponseFieldPaths`, checked: each a JSON Pointer (it starts with `/`;
/// Bedrock refuses an empty or malformed one).
pub(crate) fn response_field_paths(paths: &[String]) -> Result<&[String], ProviderError> {
    let refused = |message| ProviderError::Unsupported {
        feature: RequestFeature::AdditionalResponseFields,
        message,
    };
    if paths.len() > MAX_RESPONSE_FIELD_PATHS {
        return Err(refused(format!(
            "additionalModelResponseFieldPaths takes at most {MAX_RESPONSE_FIELD_PATHS} paths, {} \
             given",
            paths.len()
        )));
    }
    if let Some(path) = paths
        .iter()
        .find(|path| !path.starts_with('/') || path.chars().count() > MAX_RESPONSE_FIELD_PATH_LEN)
    {
        return Err(refused(format!(
            "additionalModelResponseFieldPaths entry `{path}` must be a JSON Pointer such as \
             `/stop_sequence`, at most {MAX_RESPONSE_FIELD_PATH_LEN} characters"
        )));
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn feature(error: ProviderError) -> RequestFeature {
        match error {
            ProviderError::Unsupported { feature, .. } => feature,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn metadata_within_limits_is_sent_in_order() {
        let given = pairs(&[
            ("team", "search"),
            ("trace id", "a1:b2/c3+d4,e5-f6.g7"),
            ("empty", ""),
        ]);
        let metadata = request_metadata(&given).unwrap().unwrap();
        assert_eq!(
            serde_json::to_string(&metadata).unwrap(),
            r#"{"team":"search","trace id":"a1:b2/c3+d4,e5-f6.g7","empty":""}"#
        );
        assert_eq!(request_metadata(&[]).unwrap(), None);
        let sixteen: Vec<_> = (0..16).map(|i| (format!("k{i}"), String::new())).collect();
        assert!(request_metadata(&sixteen).is_ok());
    }

    #[test]
    fn metadata_beyond_limits_is_refused() {
        let seventeen: Vec<_> = (0..17).map(|i| (format!("k{i}"), String::new())).collect();
        let long = "x".repeat(257);
        for bad in [
            seventeen,
            pairs(&[("", "v")]),
            pairs(&[(&long, "v")]),
            pairs(&[("k", &long)]),
            pairs(&[("k", "semi;colon")]),
            pairs(&[("clé", "v")]),
            pairs(&[("k", "1"), ("k", "2")]),
        ] {
            assert_eq!(
                feature(request_metadata(&bad).unwrap_err()),
                RequestFeature::RequestMetadata,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn response_field_paths_are_bounded_json_pointers() {
        let ok: Vec<String> = (0..10).map(|i| format!("/field{i}")).collect();
        assert_eq!(response_field_paths(&ok).unwrap().len(), 10);
        let eleven: Vec<String> = (0..11).map(|i| format!("/field{i}")).collect();
        for bad in [
            eleven,
            vec![String::new()],
            vec!["stop_sequence".to_owned()],
            vec![format!("/{}", "x".repeat(256))],
        ] {
            assert_eq!(
                feature(response_field_paths(&bad).unwrap_err()),
                RequestFeature::AdditionalResponseFields
            );
        }
    }
}
