//! Response ids: a door's prefix and random characters (`chatcmpl-` and `resp_` like OpenAI's,
//! `msg_` like Anthropic's).

/// Random characters after the prefix; 29 alphanumerics are about 172 bits.
const RANDOM_CHARS: usize = 29;

/// A fresh `chatcmpl-...` id. Conversions take the id as an argument, so tests pass a
/// fixed one and snapshots stay stable.
pub(crate) fn completion_id() -> String {
    random_id("chatcmpl-")
}

/// A fresh `resp_...` id.
pub(crate) fn response_id() -> String {
    random_id("resp_")
}

/// A fresh Anthropic `msg_...` id.
pub(crate) fn message_id() -> String {
    random_id("msg_")
}

fn random_id(prefix: &str) -> String {
    let mut id = String::with_capacity(prefix.len() + RANDOM_CHARS);
    id.push_str(prefix);
    id.extend(std::iter::repeat_with(fastrand::alphanumeric).take(RANDOM_CHARS));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_openai_shape_and_differ() {
        let a = completion_id();
        let b = completion_id();
        assert!(a.starts_with("chatcmpl-"));
        assert_eq!(a.len(), 9 + RANDOM_CHARS);
        assert!(a[9..].chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, b);
        assert!(message_id().starts_with("msg_"));
    }
}
