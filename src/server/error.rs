//! The server's errors and their one JSON shape (`docs/store.md`):
//! `{"error": "...", "problems": [{"path": "...", "message": "..."}]}`, so every client
//! (ours in `store::remote`, a person with curl) reads the same thing. No error ever
//! carries a token: auth errors say what is wrong, never what was sent.

use crate::slo::SloProblem;
use crate::store::StoreError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An answer other than success.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 400: the input is wrong; every problem names its field.
    BadRequest {
        /// What was wrong, in one line.
        error: String,
        /// Each problem, by field.
        problems: Vec<SloProblem>,
    },
    /// 401: no token, or an unknown one.
    Unauthorized(String),
    /// 403: a token of another organisation.
    Forbidden(String),
    /// 404.
    NotFound(String),
    /// 405: the route exists, not with this method.
    MethodNotAllowed,
    /// 413: the body is larger than [`super::BODY_LIMIT`].
    TooLarge,
    /// 503: the store cannot do it now.
    Unavailable(String),
}

impl ApiError {
    /// A bad request with one problem at `path`.
    pub fn field(path: &str, message: impl Into<String>) -> ApiError {
        let message = message.into();
        ApiError::BadRequest {
            error: format!("{path}: {message}"),
            problems: vec![SloProblem {
                path: path.to_string(),
                message,
            }],
        }
    }

    /// A bad request with these problems (a document that failed its checks).
    pub fn problems(what: &str, problems: Vec<SloProblem>) -> ApiError {
        let n = problems.len();
        ApiError::BadRequest {
            error: format!(
                "{what} is invalid ({n} problem{})",
                if n == 1 { "" } else { "s" }
            ),
            problems,
        }
    }

    /// The status code.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Invalid(m) => ApiError::BadRequest {
                error: m,
                problems: Vec::new(),
            },
            StoreError::Unauthorized(m) => ApiError::Unauthorized(m),
            StoreError::Forbidden(m) => ApiError::Forbidden(m),
            StoreError::NotFound(m) => ApiError::NotFound(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let (error, problems) = match self {
            ApiError::BadRequest { error, problems } => (error, problems),
            ApiError::TooLarge => (
                format!(
                    "the body is larger than {} bytes (1 MiB)",
                    super::BODY_LIMIT
                ),
                vec![SloProblem {
                    path: "$".into(),
                    message: "the body is too large".into(),
                }],
            ),
            ApiError::MethodNotAllowed => (
                "this route does not take this method (see docs/store.md)".into(),
                Vec::new(),
            ),
            ApiError::Unauthorized(m)
            | ApiError::Forbidden(m)
            | ApiError::NotFound(m)
            | ApiError::Unavailable(m) => (m, Vec::new()),
        };
        (
            status,
            axum::Json(json!({"error": error, "problems": problems})),
        )
            .into_response()
    }
}
