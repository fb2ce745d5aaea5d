//! The console's single-page app, built by `console/` (`npm run build`) into `dist/` and
//! embedded here, so the binary serves it with no file system and no network. File names
//! are fixed (no content hashes); a new file needs one line in [`ASSETS`].

/// `GET /console`.
pub(super) const INDEX: &[u8] = include_bytes!("dist/index.html");

/// A file under `/console/assets/`.
#[derive(Debug)]
pub(super) struct Asset {
    pub(super) name: &'static str,
    pub(super) content_type: &'static str,
    pub(super) body: &'static [u8],
}

/// Every file under `dist/assets/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("dist/assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("dist/assets/app.css"),
    },
];

/// The asset named `name` (the path below `/console/assets/`), if there is one.
pub(super) fn find(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|asset| asset.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_loads_the_app_from_its_own_files_without_inline_code() {
        let index = std::str::from_utf8(INDEX).unwrap();
        assert!(index.contains(r#"src="/console/assets/app.js""#), "{index}");
        assert!(!index.contains("<style"), "inline style in {index}");
        for script in index.split("<script").skip(1) {
            let tag = script.split('>').next().unwrap_or_default();
            assert!(tag.contains("src="), "inline script in {index}");
        }
        assert!(find("app.css").is_some());
        assert!(find("../index.html").is_none());
        assert!(find("").is_none());
    }
}
