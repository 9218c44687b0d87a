//! One error type for every route, mapped to a status code in one place.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// The body of every error response.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// `unauthorized`, `forbidden`, `not_found`, `bad_request`, `conflict`,
    /// `payload_too_large`, `unsupported_media_type`, `method_not_allowed`,
    /// `too_many_requests` or `internal`.
    pub code: String,
    /// One line for people.
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The path exists; the method does not. Carries the `Allow` list.
    #[error("{0}")]
    MethodNotAllowed(String, String),
    /// Any other status a lower layer chose (426 for a WebSocket route asked
    /// without an upgrade, say).
    #[error("{1}")]
    Other(StatusCode, String),
    /// Try again after this many seconds.
    #[error("{0}")]
    TooManyRequests(String, u64),
    #[error("internal error")]
    Internal(#[from] StoreError),
}

impl ApiError {
    /// The error for a response some layer made without us (an extractor's
    /// rejection, the router's 405), keeping its status.
    pub fn from_status(status: StatusCode, message: String) -> ApiError {
        match status {
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized(message),
            StatusCode::FORBIDDEN => ApiError::Forbidden(message),
            StatusCode::NOT_FOUND => ApiError::NotFound(message),
            StatusCode::CONFLICT => ApiError::Conflict(message),
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(message),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType(message),
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed(message, String::new()),
            StatusCode::BAD_REQUEST => ApiError::BadRequest(message),
            status => ApiError::Other(status, message),
        }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed(..) => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::Other(status, _) if status.is_server_error() => (*status, "internal"),
            ApiError::Other(status, _) => (*status, "bad_request"),
            ApiError::TooManyRequests(..) => (StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            // Log the whole chain once, here; the client learns nothing internal.
            tracing::error!(error = %crate::report(e), "request failed");
        }
        let (status, code) = self.status_and_code();
        let body = json!({ "error": { "code": code, "message": self.to_string() } });
        let mut response = (status, Json(body)).into_response();
        if let ApiError::TooManyRequests(_, secs) = &self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(*secs),
            );
        }
        if let ApiError::MethodNotAllowed(_, allow) = &self
            && let Ok(allow) = axum::http::HeaderValue::from_str(allow)
        {
            response
                .headers_mut()
                .insert(axum::http::header::ALLOW, allow);
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"twinbay\""),
            );
        }
        response
    }
}

/// A JSON body that is missing, malformed or too large: 415 without a JSON
/// content type, 413 over the body limit, else 400 (never axum's 422, so
/// every route answers bad input the same way).
impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(e.body_text()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                ApiError::UnsupportedMediaType("send the body as application/json".into())
            }
            _ => ApiError::BadRequest(e.body_text()),
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::BadRequest(e.body_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_response_is_what_the_error_body_schema_says() {
        let response = ApiError::Forbidden("not for you".into()).into_response();
        let bytes = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(body.error.code, "forbidden");
        assert_eq!(body.error.message, "not for you");
    }
}
