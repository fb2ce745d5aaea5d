//! Document names as Bedrock takes them.
//!
//! A `document` block's `name` may hold only ASCII letters and digits, single whitespace
//! characters, hyphens, parentheses and square brackets, 1 to 200 of them, and names must
//! differ within a request. Clients send file names (`Q3 report_final.v2.pdf`) or nothing,
//! so the name is made valid rather than the request refused: the extension goes (the
//! format is said apart), every other character becomes `-` (a run of them one `-`),
//! whitespace runs become one space, the ends are trimmed, and a name that ends up empty
//! becomes `document-N` (N counting the request's documents from 1). A name already taken
//! gets ` (2)`, ` (3)`, ... . A name that is valid and unique is sent as given, uncopied.

use std::borrow::Cow;

use gateway_core::Document;

/// Bedrock's length limit for a document name.
const MAX_NAME_LEN: usize = 200;

/// Names the documents of one request, in order.
#[derive(Debug, Default)]
pub(crate) struct DocumentNames {
    taken: Vec<String>,
}

impl DocumentNames {
    /// The name for the request's next document.
    pub fn name<'a>(&mut self, document: &'a Document) -> Cow<'a, str> {
        let ordinal = self.taken.len() + 1;
        let base = match document.name.as_deref().map(valid_name) {
            Some(name) if !name.is_empty() => name,
            _ => Cow::Owned(format!("document-{ordinal}")),
        };
        let name = if self.is_taken(&base) {
            let mut copy = 2usize;
            loop {
                let suffix = format!(" ({copy})");
                let stem = truncate(&base, MAX_NAME_LEN - suffix.len()).trim_end();
                let candidate = format!("{stem}{suffix}");
                if !self.is_taken(&candidate) {
                    break Cow::Owned(candidate);
                }
                copy += 1;
            }
        } else {
            base
        };
        self.taken.push(name.clone().into_owned());
        name
    }

    /// Names are compared without regard to ASCII case, in case Bedrock does.
    fn is_taken(&self, name: &str) -> bool {
        self.taken
            .iter()
            .any(|taken| taken.eq_ignore_ascii_case(name))
    }
}

/// `file_name` made valid (possibly empty): see the module docs.
fn valid_name(file_name: &str) -> Cow<'_, str> {
    let stem = match file_name.rsplit_once('.') {
        Some((stem, extension))
            if !stem.is_empty() && !extension.is_empty() && !extension.contains(' ') =>
        {
            stem
        }
        _ => file_name,
    };
    let trimmed = stem.trim_matches(|c: char| c.is_whitespace() || c == '-');
    if is_valid(trimmed) {
        return Cow::Borrowed(trimmed);
    }
    let mut name = String::with_capacity(trimmed.len().min(MAX_NAME_LEN));
    for c in trimmed.chars() {
        if c.is_whitespace() {
            if !name.ends_with(' ') {
                name.push(' ');
            }
        } else if allowed(c) {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name = truncate(&name, MAX_NAME_LEN);
    Cow::Owned(name.trim_matches(|c: char| c == ' ' || c == '-').to_owned())
}

/// Characters Bedrock takes as they are (whitespace only as single spaces, see [`is_valid`]).
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '(' | ')' | '[' | ']' | ' ')
}

fn is_valid(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len()) && name.chars().all(allowed) && !name.contains("  ")
}

/// At most `max` bytes of an ASCII name.
fn truncate(name: &str, max: usize) -> &str {
    name.get(..max.min(name.len())).unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::DocumentFormat;

    fn document(name: Option<&str>) -> Document {
        Document {
            format: DocumentFormat::Pdf,
            name: name.map(str::to_owned),
            base64_data: String::new(),
        }
    }

    #[test]
    fn file_names_become_valid_names() {
        let cases = [
            ("report.pdf", "report"),
            ("Q3 report_final.v2.pdf", "Q3 report-final-v2"),
            ("  spaced   out  .txt", "spaced out"),
            ("Relatório (draft) [v1].docx", "Relat-rio (draft) [v1]"),
            ("notes", "notes"),
            (".hidden", "hidden"),
            ("a..b.csv", "a-b"),
            ("--dashes--.md", "dashes"),
            ("tab\there.md", "tab here"),
        ];
        for (file_name, expected) in cases {
            assert_eq!(valid_name(file_name), expected, "{file_name:?}");
        }
    }

    #[test]
    fn valid_names_are_not_copied() {
        assert!(matches!(
            valid_name("report (final).pdf"),
            Cow::Borrowed("report (final)")
        ));
    }

    #[test]
    fn long_names_are_cut_to_200() {
        let long = format!("{}.pdf", "x".repeat(300));
        assert_eq!(valid_name(&long).len(), MAX_NAME_LEN);
    }

    #[test]
    fn names_are_unique_within_a_request_and_never_empty() {
        let mut names = DocumentNames::default();
        let docs = [
            document(Some("report.pdf")),
            document(Some("report.docx")),
            document(Some("REPORT.md")),
            document(None),
            document(Some("%%%.pdf")),
            document(Some("document-4")),
        ];
        let given: Vec<String> = docs.iter().map(|d| names.name(d).into_owned()).collect();
        assert_eq!(
            given,
            [
                "report",
                "report (2)",
                "REPORT (3)",
                "document-4",
                "document-5",
                "document-4 (2)"
            ]
        );
    }

    #[test]
    fn a_suffix_keeps_a_long_name_within_200() {
        let mut names = DocumentNames::default();
        let long = document(Some(&"y".repeat(250)));
        names.name(&long);
        let second = names.name(&long);
        assert_eq!(second.len(), MAX_NAME_LEN);
        assert!(second.ends_with(" (2)"));
    }
}
