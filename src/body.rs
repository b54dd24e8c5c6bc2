//! Request bodies: a form or JSON, chosen by Content-Type, read into a typed
//! struct. Bad UTF-8 is refused, never replaced: what was sent is what is
//! stored, or nothing is.

use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Reads `body` as JSON or as a urlencoded form, by `content_type`.
pub fn parse<T: DeserializeOwned>(content_type: Option<&str>, body: &[u8]) -> Result<T, ApiError> {
    let essence = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|ct| ct.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/json") => json(body),
        Some("application/x-www-form-urlencoded") => form(body),
        _ => Err(ApiError::UnsupportedType),
    }
}

/// A JSON object, read straight into `T`. serde would also fill a struct
/// from an array by position (`["al","hi"]`); an API that names its fields
/// should not, so anything but an object is refused first.
fn json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let first = body
        .iter()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first.is_some_and(|&b| b != b'{') {
        return Err(ApiError::Malformed(
            "the body must be a JSON object.".into(),
        ));
    }
    serde_json::from_slice(body).map_err(|err| ApiError::Malformed(format!("{err}.")))
}

/// A query string, read like a form (no query is an empty one).
pub fn query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    form(query.as_bytes())
}

/// The resume point in a `Last-Event-ID` header, read leniently: a browser
/// sends back whatever id it last saw, and anything but a number means
/// "no resume point" rather than an error.
pub fn resume_point(header: &[u8]) -> Option<u64> {
    std::str::from_utf8(header).ok()?.trim().parse().ok()
}

/// A urlencoded form whose raw and percent-decoded bytes are all UTF-8.
pub fn form<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // serde_urlencoded decodes lossily (bad bytes become U+FFFD), so check
    // first that there is nothing to lose.
    let all_utf8 = body
        .split(|&b| b == b'&')
        .flat_map(|pair| pair.split(|&b| b == b'='))
        .all(|part| std::str::from_utf8(&percent_decode(part)).is_ok());
    if !all_utf8 {
        return Err(ApiError::Malformed("the form is not valid UTF-8.".into()));
    }
    serde_urlencoded::from_bytes(body).map_err(|err| ApiError::Malformed(format!("{err}.")))
}

/// Form decoding: `+` is a space, `%XX` a byte; a stray `%` stays itself.
fn percent_decode(part: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        let byte = part[i];
        let hex = |j: usize| part.get(j).and_then(|&h| (h as char).to_digit(16));
        match (byte, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Input {
        name: Option<String>,
        text: Option<String>,
    }

    #[test]
    fn json_and_form_read_the_same_fields() {
        let json: Input = parse(
            Some("application/json; charset=utf-8"),
            br#"{"name":"al","text":"a\r\nb"}"#,
        )
        .unwrap();
        let form: Input = parse(
            Some("Application/X-WWW-Form-Urlencoded"),
            b"name=al&text=a%0D%0Ab",
        )
        .unwrap();
        assert_eq!(json, form);
        assert_eq!(form.text.as_deref(), Some("a\r\nb"));
    }

    #[test]
    fn bad_bytes_types_and_media_are_refused() {
        let bad = |ct, body: &[u8]| parse::<Input>(Some(ct), body).unwrap_err();
        assert!(matches!(
            bad("application/json", b"{"),
            ApiError::Malformed(_)
        ));
        assert!(matches!(
            bad("application/json", br#"["al","hi"]"#),
            ApiError::Malformed(_)
        ));
        assert!(matches!(
            bad("application/json", br#"{"text":5}"#),
            ApiError::Malformed(_)
        ));
        for not_one_object in [
            &br#" 5"#[..],
            br#""hi""#,
            br#"{"text":"a","text":"b"}"#,
            br#"{"text":"a"} {}"#,
            b"",
        ] {
            assert!(matches!(
                bad("application/json", not_one_object),
                ApiError::Malformed(_)
            ));
        }
        assert!(parse::<Input>(Some("application/json"), b" \n{\"text\":\"a\"}\n").is_ok());
        assert!(matches!(
            bad("application/json", b"{\"text\":\"\xff\"}"),
            ApiError::Malformed(_)
        ));
        let form = "application/x-www-form-urlencoded";
        assert!(matches!(bad(form, b"text=%FF"), ApiError::Malformed(_)));
        assert!(matches!(bad(form, b"text=\xff"), ApiError::Malformed(_)));
        assert_eq!(bad("text/plain", b"hi"), ApiError::UnsupportedType);
        assert_eq!(
            parse::<Input>(None, b"hi").unwrap_err(),
            ApiError::UnsupportedType
        );
    }

    #[test]
    fn percent_decoding_follows_the_form_rules() {
        assert_eq!(percent_decode(b"a+b%20c%zz%4"), b"a b c%zz%4");
        assert_eq!(percent_decode(b"%C3%A9"), "é".as_bytes());
    }
}
