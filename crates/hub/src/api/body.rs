//! JSON request bodies, read the same way on every route: `application/json`
//! (else 415), within the body limit (else 413), a JSON object (else 400),
//! and numbers as JSON Schema reads them (`5.0` is the integer 5).

use axum::Json;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::ApiError;

/// A JSON object body deserialized into `T`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Json(mut value) = Json::<Value>::from_request(request, state).await?;
        parse(&mut value).map(JsonBody)
    }
}

/// `value` as a `T`, if it is an object that fits.
pub fn parse<T: DeserializeOwned>(value: &mut Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::BadRequest(
            "the body must be a JSON object".into(),
        ));
    }
    integral_floats_to_integers(value);
    serde_json::from_value(value.take()).map_err(|e| ApiError::BadRequest(format!("body: {e}")))
}

/// `427.0` → `427`, everywhere in `value` (JSON has one number type; JSON
/// Schema calls a number without a fraction an integer, serde does not).
fn integral_floats_to_integers(value: &mut Value) {
    match value {
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64())
                && f.fract() == 0.0
            {
                if f >= 0.0 && f < u64::MAX as f64 {
                    *value = Value::from(f as u64);
                } else if f < 0.0 && f >= i64::MIN as f64 {
                    *value = Value::from(f as i64);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_floats_to_integers),
        Value::Object(map) => map.values_mut().for_each(integral_floats_to_integers),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Change {
        n: Option<u32>,
        s: Option<String>,
    }

    #[test]
    fn only_objects_and_integral_numbers_pass() {
        let ok = |v: Value| parse::<Change>(&mut v.clone());
        assert_eq!(
            ok(json!({"n": 5.0})).unwrap(),
            Change {
                n: Some(5),
                s: None
            }
        );
        assert!(ok(json!({"n": 5.5})).is_err());
        assert!(ok(json!({"n": -1.0})).is_err());
        assert!(ok(json!([null, null])).is_err());
        assert!(ok(json!(null)).is_err());
        assert!(ok(json!("x")).is_err());
        assert!(ok(json!({"n": 1e300})).is_err());
        assert_eq!(ok(json!({})).unwrap(), Change { n: None, s: None });
    }
}
