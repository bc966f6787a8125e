//! The default service: a request no route matched gets 405 (with `Allow`) when its path exists under another method,
//! and 404 otherwise. Which paths exist is read from the OpenAPI spec, which every route is registered in.

use std::sync::Arc;

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::OpenApi;

use crate::error::{ApiError, ErrorCode};

/// Path templates and their methods.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<(Vec<Segment>, Vec<Method>)>,
}

#[derive(Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
    /// Matches the rest of the path (`{tail:.*}` style), used for the docs page.
    Rest,
}

impl RouteTable {
    /// Builds the table from the spec, plus the undocumented GET-only routes (`/openapi.json`, `/docs`).
    pub fn from_spec(spec: &OpenApi) -> Self {
        let mut table = Self::default();
        for (path, item) in spec.paths.paths.iter() {
            let methods = [
                (Method::GET, item.get.is_some()),
                (Method::PUT, item.put.is_some()),
                (Method::POST, item.post.is_some()),
                (Method::DELETE, item.delete.is_some()),
                (Method::PATCH, item.patch.is_some()),
                (Method::HEAD, item.head.is_some()),
                (Method::OPTIONS, item.options.is_some()),
            ]
            .into_iter()
            .filter_map(|(m, present)| present.then_some(m))
            .collect();
            table.add(path, methods);
        }
        table.add("/openapi.json", vec![Method::GET]);
        table.add("/docs/{tail:.*}", vec![Method::GET]);
        table
    }

    fn add(&mut self, template: &str, methods: Vec<Method>) {
        let segments = split(template)
            .map(|s| match s {
                s if s.starts_with('{') && s.ends_with(":.*}") => Segment::Rest,
                s if s.starts_with('{') && s.ends_with('}') => Segment::Param,
                s => Segment::Literal(s.to_owned()),
            })
            .collect();
        self.routes.push((segments, methods));
    }

    /// The methods that `path` accepts, empty when no route has this path.
    pub fn allowed_methods(&self, path: &str) -> Vec<Method> {
        let parts: Vec<&str> = split(path).collect();
        let mut allowed: Vec<Method> = Vec::new();
        for (segments, methods) in &self.routes {
            if matches(segments, &parts) {
                for m in methods {
                    if !allowed.contains(m) {
                        allowed.push(m.clone());
                    }
                }
            }
        }
        allowed
    }
}

fn split(path: &str) -> impl Iterator<Item = &str> {
    path.split('/').filter(|s| !s.is_empty())
}

fn matches(segments: &[Segment], parts: &[&str]) -> bool {
    match (segments.split_first(), parts.split_first()) {
        (Some((Segment::Rest, _)), _) => true,
        (None, None) => true,
        (Some((Segment::Literal(l), seg_rest)), Some((p, part_rest))) if l == p => matches(seg_rest, part_rest),
        (Some((Segment::Param, seg_rest)), Some((_, part_rest))) => matches(seg_rest, part_rest),
        _ => false,
    }
}

/// The default service handler.
pub async fn not_found_or_method_not_allowed(
    req: HttpRequest,
    table: web::Data<Arc<RouteTable>>,
) -> Result<HttpResponse, ApiError> {
    let allowed = table.allowed_methods(req.path());
    let path = shorten(req.path());
    if allowed.is_empty() {
        return Err(ApiError::new(ErrorCode::RouteNotFound, format!("No route matches {path}.")));
    }
    let allow = allowed.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    let err = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{path} does not accept {}; it accepts {allow}.", req.method()),
    );
    Err(match HeaderValue::from_str(&allow) {
        Ok(value) => err.with_header(header::ALLOW, value),
        Err(_) => err,
    })
}

/// The path as echoed in an error detail: at most 120 characters, so a huge URL does not come back in full.
fn shorten(path: &str) -> String {
    const MAX: usize = 120;
    match path.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &path[..cut]),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let mut t = RouteTable::default();
        t.add("/v1/tenants/{tenant_id}", vec![Method::GET, Method::PATCH]);
        t.add("/v1/tenants", vec![Method::POST]);
        t.add("/docs/{tail:.*}", vec![Method::GET]);
        t
    }

    #[test]
    fn parameters_match_one_segment_and_literals_must_be_equal() {
        let t = table();
        assert_eq!(t.allowed_methods("/v1/tenants/abc"), vec![Method::GET, Method::PATCH]);
        assert_eq!(t.allowed_methods("/v1/tenants/"), vec![Method::POST]);
        assert!(t.allowed_methods("/v1/tenants/abc/extra").is_empty());
        assert!(t.allowed_methods("/v2/tenants").is_empty());
    }

    #[test]
    fn long_paths_are_shortened_in_error_details() {
        assert_eq!(shorten("/short"), "/short");
        let long = "/".to_owned() + &"é".repeat(500);
        assert_eq!(shorten(&long).chars().count(), 121);
    }

    #[test]
    fn a_rest_segment_matches_anything_below_it() {
        let t = table();
        assert_eq!(t.allowed_methods("/docs/"), vec![Method::GET]);
        assert_eq!(t.allowed_methods("/docs/swagger-ui.css"), vec![Method::GET]);
    }
}
