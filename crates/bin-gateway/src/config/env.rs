//! The configuration's environment edge: `${VAR}` expansion in every string, and the Bedrock
//! API key an `api-key` account without `key` takes from [`API_KEY_ENV`]. The adapters read
//! no environment variable; they receive values.

use super::{invalid, ConfigError};

/// The environment variable a Bedrock API key is read from when the account has no `key`
/// (the name the AWS SDKs use).
pub const API_KEY_ENV: &str = "AWS_BEARER_TOKEN_BEDROCK";

/// Replaces `${VAR}` in every string of the file.
pub(super) fn expand_variables(
    table: &mut toml::Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        expand_value(key, value, lookup)?;
    }
    Ok(())
}

/// Gives every `api-key` account whose `key` is missing or empty the key from
/// [`API_KEY_ENV`]; an account with neither is refused here, by `check` as by `serve`.
pub(super) fn fill_api_keys(
    table: &mut toml::Table,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(accounts)) = table.get_mut("accounts") else {
        return Ok(());
    };
    for (name, account) in accounts.iter_mut() {
        let Some(toml::Value::Table(auth)) = account.get_mut("auth") else {
            continue;
        };
        let is_api_key = auth.get("type").and_then(toml::Value::as_str) == Some("api-key");
        let has_key = match auth.get("key") {
            None => false,
            Some(toml::Value::String(key)) => !key.is_empty(),
            // Not a string: the schema says so, naming the key.
            Some(_) => true,
        };
        if !is_api_key || has_key {
            continue;
        }
        let from_env = lookup(API_KEY_ENV)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                invalid(
                    format!("accounts.{name}.auth.key"),
                    format!("set `key` or the {API_KEY_ENV} environment variable"),
                )
            })?;
        auth.insert("key".into(), toml::Value::String(from_env));
    }
    Ok(())
}

/// Replaces `${VAR}` in every string below `value`.
fn expand_value(
    key: &str,
    value: &mut toml::Value,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    match value {
        toml::Value::String(s) if s.contains("${") => {
            *s = expand_string(key, s, lookup)?;
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand_value(&format!("{key}[{i}]"), item, lookup)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                expand_value(&format!("{key}.{k}"), v, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_string(
    key: &str,
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| invalid(key, "unterminated `${` (write `${NAME}`)"))?;
        let name = &after[..end];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(invalid(
                key,
                format!("`${{{name}}}` is not a valid variable name"),
            ));
        }
        let value = lookup(name).ok_or_else(|| ConfigError::MissingVariable {
            key: key.to_owned(),
            var: name.to_owned(),
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
