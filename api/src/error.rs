//! One error type for the whole API, rendered as RFC 9457 `application/problem+json`.
//!
//! Every body carries a stable machine-readable `code` (the [`ErrorCode`] list is the contract; clients switch on it,
//! never on `detail`), the `request_id`, and for validation failures the offending fields. Database and unexpected
//! errors become an opaque 500 (or 503 while the database is unreachable) whose cause chain is logged, never sent.

use actix_web::body::{BoxBody, EitherBody};
use actix_web::dev::ServiceResponse;
use actix_web::error::{JsonPayloadError, PathError, QueryPayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use sea_orm::DbErr;
use serde::Serialize;
use utoipa::ToSchema;

use crate::request_context::current_request_id;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Stable error codes. Adding one is fine; renaming or removing one breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema, strum::IntoStaticStr, strum::VariantArray)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed in a way no more specific code describes.
    BadRequest,
    /// 400: the body is not syntactically valid JSON.
    MalformedJson,
    /// 400: a path parameter has the wrong form (for instance an id that is not a UUID).
    InvalidPathParameter,
    /// 400: a query parameter is missing or has the wrong form.
    InvalidQueryParameter,
    /// 401: no valid credentials were presented.
    Unauthenticated,
    /// 402: the tenant's plan does not allow this (`limit` names the limit, `plan` the plan in force, `upgrade_to`
    /// the cheapest plan that lifts it); nothing was changed.
    PlanLimit,
    /// 403: the credentials are valid but do not allow this action.
    Forbidden,
    /// 403: the action needs a verified email address (see `POST /v1/me/verification-email`).
    EmailNotVerified,
    /// 404: the resource does not exist, or is not visible to the caller.
    NotFound,
    /// 404: no route has this path.
    RouteNotFound,
    /// 405: the path exists but not with this method (see the `Allow` header).
    MethodNotAllowed,
    /// 408: the client took too long to send the request.
    RequestTimeout,
    /// 409: the request conflicts with the current state (for instance a taken slug).
    Conflict,
    /// 410: the thing existed but is no longer usable (for instance an expired invitation).
    Gone,
    /// 413: the body is larger than the server accepts.
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    UnsupportedMediaType,
    /// 422: the body is well-formed JSON but its content is invalid (see `errors`).
    ValidationFailed,
    /// 422: the `Idempotency-Key` was used within 24 hours for another request (another body, path or operation).
    IdempotencyKeyReused,
    /// 429: too many requests; retry after the `Retry-After` header.
    RateLimited,
    /// 500: an unexpected error; the `request_id` lets operators find its cause in the logs.
    InternalError,
    /// 503: a dependency (the database) is unreachable, or a feature is not configured; retry later.
    ServiceUnavailable,
    /// 502: an upstream service (TestIO, the mail server) did not give a usable answer; retry later.
    UpstreamUnavailable,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest | Self::MalformedJson | Self::InvalidPathParameter | Self::InvalidQueryParameter => {
                StatusCode::BAD_REQUEST
            }
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PlanLimit => StatusCode::PAYMENT_REQUIRED,
            Self::Forbidden | Self::EmailNotVerified => StatusCode::FORBIDDEN,
            Self::NotFound | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::Conflict => StatusCode::CONFLICT,
            Self::Gone => StatusCode::GONE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed | Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
        }
    }

    /// The code for a bare status produced outside our handlers (by actix itself).
    pub fn for_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthenticated,
            402 => Self::PlanLimit,
            403 => Self::Forbidden,
            404 => Self::RouteNotFound,
            405 => Self::MethodNotAllowed,
            408 => Self::RequestTimeout,
            409 => Self::Conflict,
            410 => Self::Gone,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::RateLimited,
            503 => Self::ServiceUnavailable,
            s if s >= 500 => Self::InternalError,
            _ => Self::BadRequest,
        }
    }

    /// The `code` of the problem body (its serde name).
    pub fn as_str(self) -> &'static str {
        self.into()
    }
}

/// One invalid field of a request body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    /// JSON path of the field, such as `email` or `members[2].role`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The body of every error response (RFC 9457 problem details, plus `code`, `request_id` and `errors`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ProblemDetails {
    /// A URI naming the problem type: `urn:testio-hub:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// Human-readable explanation of this occurrence.
    pub detail: String,
    /// Stable, machine-readable error code.
    pub code: ErrorCode,
    /// The id of the request (also in the `x-request-id` header); quote it when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The invalid fields, for `validation_failed`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// Problem-specific extension members.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extensions: serde_json::Map<String, serde_json::Value>,
}

/// An error on its way to becoming a problem+json response.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    detail: String,
    errors: Vec<FieldError>,
    extensions: serde_json::Map<String, serde_json::Value>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// The cause, logged for 5xx and never sent.
    source: Option<anyhow::Error>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            extensions: serde_json::Map::new(),
            headers: Vec::new(),
            source: None,
        }
    }

    /// 404 with the same text whether the resource is missing or belongs to someone else.
    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// 422 listing the invalid fields.
    pub fn validation(errors: Vec<FieldError>) -> Self {
        let detail = match errors.as_slice() {
            [one] => format!("{}: {}", one.field, one.message),
            _ => format!("{} fields are invalid", errors.len()),
        };
        Self { errors, ..Self::new(ErrorCode::ValidationFailed, detail) }
    }

    /// An opaque 500; `source` is logged with its cause chain.
    pub fn internal(source: anyhow::Error) -> Self {
        Self { source: Some(source), ..Self::new(ErrorCode::InternalError, "An unexpected error occurred.") }
    }

    /// 503 while the database is unreachable.
    pub fn database_unavailable(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(ErrorCode::ServiceUnavailable, "The database is unavailable; retry shortly.")
        }
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
    }

    /// 503 when a statement ran past `DATABASE_STATEMENT_TIMEOUT_MS` or the request past `APP_REQUEST_TIMEOUT_MS`:
    /// the transaction was rolled back, nothing changed.
    pub fn timed_out(source: anyhow::Error) -> Self {
        Self {
            source: Some(source),
            ..Self::new(ErrorCode::ServiceUnavailable, "The server took too long to answer; nothing was changed.")
        }
        .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds a problem-specific member to the body.
    pub fn with_extension(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extensions.insert(key.to_owned(), value);
        self
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    fn problem(&self) -> ProblemDetails {
        let status = self.code.status();
        ProblemDetails {
            type_uri: format!("urn:testio-hub:problem:{}", self.code.as_str()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: self.detail.clone(),
            code: self.code,
            request_id: current_request_id().map(|id| id.to_string()),
            errors: self.errors.clone(),
            extensions: self.extensions.clone(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.detail)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        if let Some(source) = &self.source {
            // `error` is the whole cause chain on one line (`{:#}`); `error.message` its outermost context, the step
            // that failed ("Failed to ...").
            tracing::error!(
                code = self.code.as_str(),
                error = format!("{source:#}"),
                error.message = %source,
                "request failed"
            );
        }
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        for (name, value) in &self.headers {
            response.insert_header((name.clone(), value.clone()));
        }
        response.body(serde_json::to_string(&self.problem()).unwrap_or_default())
    }
}

/// True when `err` is a unique-constraint violation (a taken email or slug...), to be answered 409 where the query is
/// made.
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(sea_orm::SqlErr::UniqueConstraintViolation(_)))
}

/// One invalid field: a 422 naming it.
impl From<FieldError> for ApiError {
    fn from(error: FieldError) -> Self {
        Self::validation(vec![error])
    }
}

impl From<DbErr> for ApiError {
    fn from(err: DbErr) -> Self {
        anyhow::Error::from(err).into()
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        let unavailable =
            err.chain().any(|cause| cause.downcast_ref::<DbErr>().is_some_and(entity::db::is_unavailable));
        let timed_out =
            err.chain().any(|cause| cause.downcast_ref::<DbErr>().is_some_and(entity::db::is_statement_timeout));
        if unavailable {
            Self::database_unavailable(err)
        } else if timed_out {
            Self::timed_out(err)
        } else {
            Self::internal(err)
        }
    }
}

/// `JsonConfig` error handler: malformed JSON, wrong content type, oversize and invalid bodies.
pub fn json_error(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let api_error = match &err {
        JsonPayloadError::OverflowKnownLength { limit, .. } | JsonPayloadError::Overflow { limit } => {
            payload_too_large(*limit)
        }
        JsonPayloadError::ContentType => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "The request body must be JSON, sent with `Content-Type: application/json`.",
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => {
            ApiError::validation(vec![FieldError { field: "body".into(), message: e.to_string() }])
        }
        JsonPayloadError::Deserialize(e) => {
            ApiError::new(ErrorCode::MalformedJson, format!("The request body is not valid JSON: {e}."))
        }
        JsonPayloadError::Payload(actix_web::error::PayloadError::Overflow) => payload_too_large(0),
        other => ApiError::new(ErrorCode::BadRequest, format!("The request body could not be read: {other}.")),
    };
    api_error.into()
}

fn payload_too_large(limit: usize) -> ApiError {
    let detail = if limit > 0 {
        format!("The request body is larger than the {limit} bytes this endpoint accepts.")
    } else {
        "The request body is larger than this endpoint accepts.".to_owned()
    };
    ApiError::new(ErrorCode::PayloadTooLarge, detail)
}

/// `PathConfig` error handler.
pub fn path_error(err: PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidPathParameter, format!("Invalid path parameter: {err}.")).into()
}

/// `QueryConfig` error handler.
pub fn query_error(err: QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::new(ErrorCode::InvalidQueryParameter, format!("Invalid query string: {err}.")).into()
}

/// Last line of defence (`ErrorHandlers` default handler): an error response that some part of actix produced without
/// going through [`ApiError`] gets its body replaced by problem+json for the same status.
pub fn render_foreign_error<B>(res: ServiceResponse<B>) -> actix_web::Result<ErrorHandlerResponse<B>> {
    let already_problem =
        res.headers().get(header::CONTENT_TYPE).is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if already_problem {
        return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
    }
    let status = res.status();
    let (req, old) = res.into_parts();
    let code = ErrorCode::for_status(status);
    let detail = old
        .error()
        .map(|e| e.to_string())
        .filter(|d| !d.is_empty() && status.is_client_error())
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    let mut new = ApiError::new(code, detail).error_response();
    for (name, value) in old.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            new.headers_mut().insert(name.clone(), value.clone());
        }
    }
    let res: ServiceResponse<EitherBody<B, BoxBody>> = ServiceResponse::new(req, new).map_into_right_body();
    Ok(ErrorHandlerResponse::Response(res))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_maps_back_from_its_own_status_or_is_more_specific() {
        for code in [ErrorCode::RouteNotFound, ErrorCode::PayloadTooLarge, ErrorCode::RateLimited] {
            assert_eq!(ErrorCode::for_status(code.status()), code);
        }
        assert_eq!(ErrorCode::for_status(StatusCode::BAD_GATEWAY), ErrorCode::InternalError);
        assert_eq!(ErrorCode::for_status(StatusCode::IM_A_TEAPOT), ErrorCode::BadRequest);
    }

    #[test]
    fn serialised_code_matches_as_str() {
        for code in <ErrorCode as strum::VariantArray>::VARIANTS.iter().copied() {
            assert_eq!(serde_json::to_value(code).unwrap(), serde_json::json!(code.as_str()));
        }
    }

    #[test]
    fn a_database_outage_is_503_and_other_database_errors_are_opaque_500s() {
        let outage = ApiError::from(DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout));
        assert_eq!(outage.code(), ErrorCode::ServiceUnavailable);
        let bug = ApiError::from(DbErr::Custom("secret detail".into()));
        assert_eq!(bug.code(), ErrorCode::InternalError);
        assert!(!bug.problem().detail.contains("secret"));
    }

    #[test]
    fn validation_detail_names_the_single_field() {
        let err = ApiError::validation(vec![FieldError { field: "email".into(), message: "is not an email".into() }]);
        assert_eq!(err.problem().detail, "email: is not an email");
        assert_eq!(err.problem().status, 422);
    }
}
