//! Media types: the extension a Content-Type implies and back, `--accept`
//! patterns, and what a body's first bytes show it to be (so a page of HTML
//! served as `image/jpeg` is caught).

/// The extension (with its dot) for a Content-Type, for names that lack one.
pub fn extension_for_content_type(content_type: &str) -> Option<&'static str> {
    let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
    let extension = match essence.as_str() {
        "image/jpeg" | "image/jpg" | "image/pjpeg" => ".jpg",
        "image/png" => ".png",
        "image/gif" => ".gif",
        "image/webp" => ".webp",
        "image/avif" => ".avif",
        "image/bmp" => ".bmp",
        "image/tiff" => ".tiff",
        "image/svg+xml" => ".svg",
        "image/x-icon" | "image/vnd.microsoft.icon" => ".ico",
        "text/html" => ".html",
        "text/plain" => ".txt",
        "text/css" => ".css",
        "text/csv" => ".csv",
        "application/json" => ".json",
        "application/xml" | "text/xml" => ".xml",
        "application/pdf" => ".pdf",
        "application/zip" => ".zip",
        "application/gzip" => ".gz",
        "application/octet-stream" => ".bin",
        _ => return None,
    };
    Some(extension)
}

/// The Content-Type of a file extension (without its dot, either case), for
/// `--accept jpg,png` as wget writes it.
pub fn content_type_for_extension(extension: &str) -> Option<&'static str> {
    let content_type = match extension.to_ascii_lowercase().as_str() {
        "jpg" | "jpeg" | "jpe" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "svg" => "image/svg+xml",
        "ico" => "image/x-icon",
        "html" | "htm" => "text/html",
        "txt" => "text/plain",
        "css" => "text/css",
        "csv" => "text/csv",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "bin" => "application/octet-stream",
        _ => return None,
    };
    Some(content_type)
}

/// Whether a Content-Type matches a pattern list such as `image/*,application/pdf`.
pub fn content_type_matches(content_type: &str, patterns: &[String]) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let (kind, subtype) = essence.split_once('/').unwrap_or((&essence, ""));
    patterns.iter().any(|pattern| {
        let pattern = pattern.trim().to_ascii_lowercase();
        let (pattern_kind, pattern_subtype) = pattern.split_once('/').unwrap_or((&pattern, "*"));
        (pattern_kind == "*" || pattern_kind == kind)
            && (pattern_subtype == "*" || pattern_subtype == subtype)
    })
}

/// The type the first bytes of a body show, for the common formats, so a page of
/// HTML served as `image/jpeg` is caught.
pub fn sniff(bytes: &[u8]) -> Option<&'static str> {
    let starts = |magic: &[u8]| bytes.starts_with(magic);
    if starts(b"\xFF\xD8\xFF") {
        return Some("image/jpeg");
    }
    if starts(b"\x89PNG\r\n\x1a\n") {
        return Some("image/png");
    }
    if starts(b"GIF87a") || starts(b"GIF89a") {
        return Some("image/gif");
    }
    if starts(b"RIFF") && bytes.get(8..12) == Some(b"WEBP") {
        return Some("image/webp");
    }
    if starts(b"BM") && bytes.len() > 14 {
        return Some("image/bmp");
    }
    if starts(b"II*\0") || starts(b"MM\0*") {
        return Some("image/tiff");
    }
    if bytes.get(4..12) == Some(b"ftypavif") {
        return Some("image/avif");
    }
    if starts(b"%PDF-") {
        return Some("application/pdf");
    }
    if starts(b"PK\x03\x04") {
        return Some("application/zip");
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
        .trim_start()
        .to_ascii_lowercase();
    if text.starts_with("<!doctype html")
        || text.starts_with("<html")
        || text.starts_with("<head")
        || text.starts_with("<body")
    {
        return Some("text/html");
    }
    if text.starts_with("<svg") || (text.starts_with("<?xml") && text.contains("<svg")) {
        return Some("image/svg+xml");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mime_patterns() {
        let images = vec!["image/*".to_string()];
        assert!(content_type_matches("image/png", &images));
        assert!(content_type_matches("IMAGE/JPEG; q=1", &images));
        assert!(!content_type_matches("text/html; charset=utf-8", &images));
        let listed = vec!["application/pdf".to_string(), "text/plain".to_string()];
        assert!(content_type_matches("text/plain", &listed));
        assert!(!content_type_matches("text/html", &listed));
        assert!(content_type_matches("anything/else", &["*/*".to_string()]));
    }

    #[test]
    fn sniffing_first_bytes() {
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0rest"), Some("image/jpeg"));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n...."), Some("image/png"));
        assert_eq!(sniff(b"  \n<!DOCTYPE html><html>"), Some("text/html"));
        assert_eq!(sniff(b"<HTML><body>error</body>"), Some("text/html"));
        assert_eq!(sniff(b"\x00\x01\x02"), None);
    }
}
