//! The JSON body extractor every route with a body uses.
//!
//! It refuses, before the handler runs and so before anything changes:
//! a body not declared `application/json` (415), a body over
//! `limits.max_body_bytes` (413), malformed JSON, a body that is not one
//! JSON object (an array, `null`, anything after the object), unknown
//! fields, and any value breaking a rule (400 naming the field by its
//! path, e.g. `volumes[0].mount`). Request types deserialize straight
//! into kiln's validated types, so a value that reaches a handler is a
//! valid one. Messages speak JSON (`expected a JSON object`), never the
//! Rust types behind it.

use std::str::FromStr;

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use kiln_core::Error;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::error::ApiError;

/// A JSON request body of type `T`, checked as the module docs say.
#[derive(Debug, Clone)]
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        check_content_type(&req)?;
        let limit = state.max_body_bytes;
        let bytes = read_limited(req.into_body(), limit).await?;
        parse(&bytes).map(Json)
    }
}

fn check_content_type(req: &Request) -> Result<(), ApiError> {
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let is_json = content_type.as_deref().is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType { content_type })
    }
}

async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(e) => Err(Error::invalid("body", format!("could not be read: {e}")).into()),
    }
}

/// The `{name}` segment of a route, validated as a `T` (a volume or
/// sandbox name); a bad one is a 400 naming `name`.
#[derive(Debug, Clone)]
pub struct NameParam<T>(pub T);

impl<T, S> FromRequestParts<S> for NameParam<T>
where
    T: FromStr<Err = Error> + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| Error::invalid("name", e.body_text()))?;
        Ok(NameParam(raw.parse()?))
    }
}

/// Deserializes `bytes`, naming the field at fault by its path. The body
/// must be one JSON object and nothing after it but whitespace.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // serde would read a struct from an array too (`[1]` fails as `[0]`),
    // and says "expected struct X" for other values: refuse both here, in
    // the API's words.
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(Error::invalid("body", "expected a JSON object").into());
    }
    let body_error = |e: &serde_json::Error| Error::invalid("body", reason_of(e));
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || inner.is_syntax() || inner.is_eof() {
            body_error(&inner)
        } else {
            Error::invalid(path, reason_of(&inner))
        }
    })?;
    // Without this, `{...}xyz` would be accepted: the deserializer stops
    // at the end of the object.
    de.end().map_err(|e| body_error(&e))?;
    Ok(value)
}

/// serde_json's message without its position suffix, without the
/// `invalid FIELD: ` prefix kiln's own checks put on theirs (the path
/// replaces it), and with serde's Rust type names in the API's words.
fn reason_of(e: &serde_json::Error) -> String {
    let mut msg = e.to_string();
    if let Some(at) = msg.rfind(" at line ") {
        if !e.is_syntax() && !e.is_eof() {
            msg.truncate(at);
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid ") {
        if let Some((word, reason)) = rest.split_once(": ") {
            if !word.contains(' ') {
                msg = reason.to_string();
            }
        }
    }
    if let Some(at) = msg.rfind("expected ") {
        let expected = &msg[at + "expected ".len()..];
        if let Some(words) = api_words(expected) {
            msg.truncate(at + "expected ".len());
            msg.push_str(words);
        }
    }
    msg
}

/// What serde's `expected ...` names as a Rust type, said as JSON.
fn api_words(expected: &str) -> Option<&'static str> {
    let words = match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number of at least 0",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "char" => "a one-character string",
        e if e.starts_with("struct ") || e.starts_with("tuple struct ") => "a JSON object",
        e if e.starts_with("enum ") => "one of the documented values",
        _ => return None,
    };
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::model::VolumeRequest;
    use kiln_core::VolumeName;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: VolumeName,
        volumes: Vec<VolumeRequest>,
    }

    fn err(json: &str) -> String {
        match parse::<Body>(json.as_bytes()) {
            Ok(b) => panic!("{json} accepted as {b:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn errors_name_the_field_by_path() {
        let e = err(r#"{"name":"a..b","volumes":[]}"#);
        assert_eq!(e, "invalid name: must not contain '..'");
        let e = err(r#"{"name":"a","volumes":[{"volume":"v","mount":"/etc"}]}"#);
        assert!(e.starts_with("invalid volumes[0].mount: "), "{e}");
        let e = err(r#"{"name":"a","volumes":[],"colour":1}"#);
        assert!(e.contains("colour"), "{e}");
        let e = err(r#"{"name":"a","#);
        assert!(e.starts_with("invalid body: "), "{e}");
    }
}
