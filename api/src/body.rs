//! [`JsonBody`]: the request-body extractor of every handler. Like `web::Json` (same limits, content-type check and
//! problem+json errors, configured in `startup::configure_extractors`), but the body must be a JSON **object**: serde
//! would also read a struct from an array of its fields (`[null, null]`), which the document does not allow.

use std::ops::Deref;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON object body deserialized into `T`, and the object as sent (what an idempotency key is bound to).
#[derive(Debug)]
pub struct JsonBody<T>(pub T, serde_json::Value);

impl<T> JsonBody<T> {
    pub fn into_inner(self) -> T {
        self.0
    }

    /// The body as the client sent it.
    pub fn json(&self) -> &serde_json::Value {
        &self.1
    }
}

impl<T> Deref for JsonBody<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let value = web::Json::<serde_json::Value>::from_request(req, payload);
        Box::pin(async move {
            let value = value.await?.into_inner();
            if !value.is_object() {
                return Err(invalid_body("must be a JSON object").into());
            }
            match T::deserialize(&value) {
                Ok(body) => Ok(JsonBody(body, value)),
                Err(e) => Err(invalid_body(&e.to_string()).into()),
            }
        })
    }
}

fn invalid_body(message: &str) -> ApiError {
    ApiError::validation(vec![FieldError { field: "body".to_owned(), message: message.to_owned() }])
}
