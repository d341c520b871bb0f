//! Routing a request to one of an app's HTTP routes, as `spin up` does:
//! `routefinder` (the matcher Spin uses, same version) picks the best
//! route: segment by segment exact beats `:param` beats wildcard, and a
//! longer route beats a shorter one whatever the order they were declared
//! in; a route declared twice is served by the last one.
//!
//! The app is served under `/functions/v1/{app}`: that prefix is taken off
//! before routing, and the guest sees the rest as its path, so routers that
//! match on the full path (spin-sdk's default) work unmodified.

use super::manifest::{Manifest, RouteTarget};
use std::collections::HashMap;

/// Where a route leads: an index into the app's components, or a static
/// response (an index into the manifest's routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Component(usize),
    Static(usize),
}

#[derive(Debug, Clone)]
struct Handler {
    target: Target,
    /// The route as written in the manifest (`/api/...`).
    raw: String,
    /// The route with a leading `/` and no trailing `/` (`/api/...`).
    based: String,
}

#[derive(Debug)]
pub struct Router {
    inner: routefinder::Router<Handler>,
    /// Routes declared twice: (route, replaced component or response).
    pub duplicates: Vec<String>,
}

/// A matched route: the target and the `spin-*` headers the guest gets.
#[derive(Debug, PartialEq)]
pub struct Matched {
    pub target: Target,
    pub based_route: String,
    pub raw_route: String,
    /// `spin-path-info`: what the trailing wildcard matched, with Spin's
    /// handling of slashes; empty for an exact route.
    pub path_info: String,
    /// `:name` segments, by name.
    pub params: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("route {route:?}: {message}")]
pub struct RouteError {
    pub route: String,
    pub message: String,
}

impl Router {
    /// Routes of `manifest`; `component_index` maps a component id to its
    /// index in the app.
    pub fn build(
        manifest: &Manifest,
        component_index: &HashMap<&str, usize>,
    ) -> Result<Router, RouteError> {
        // Last declaration wins, at the place of the last one.
        let mut routes: Vec<(String, Handler)> = Vec::new();
        let mut duplicates = Vec::new();
        for (index, route) in manifest.routes.iter().enumerate() {
            let Some(raw) = &route.route else { continue };
            let target = match &route.target {
                RouteTarget::Component(id) => match component_index.get(id.as_str()) {
                    Some(&i) => Target::Component(i),
                    None => {
                        return Err(RouteError {
                            route: raw.clone(),
                            message: format!("no component {id:?}"),
                        })
                    }
                },
                RouteTarget::Static(_) => Target::Static(index),
            };
            let based = based_route(raw);
            if let Some(at) = routes.iter().position(|(r, _)| r == raw) {
                duplicates.push(raw.clone());
                routes.remove(at);
            }
            routes.push((
                raw.clone(),
                Handler {
                    target,
                    raw: raw.clone(),
                    based,
                },
            ));
        }
        let mut inner = routefinder::Router::new();
        for (_, handler) in routes {
            let spec = match handler.based.strip_suffix("/...") {
                Some(prefix) => format!("{prefix}/*"),
                None => handler.based.clone(),
            };
            inner
                .add(spec.as_str(), handler.clone())
                .map_err(|e| RouteError {
                    route: handler.raw.clone(),
                    message: e.to_string(),
                })?;
        }
        Ok(Router { inner, duplicates })
    }

    /// The best route for `path` (the app-relative path, no query).
    pub fn route(&self, path: &str) -> Option<Matched> {
        let found = self.inner.best_match(path)?;
        let handler = found.handler();
        let captures = found.captures();
        let path_info = match captures.wildcard() {
            // Spin keeps trailing slashes that routefinder drops.
            Some(rest) => match (rest.is_empty(), path.ends_with('/')) {
                (true, false) => String::new(),
                (true, true) => "/".to_owned(),
                (false, false) => format!("/{rest}"),
                (false, true) => format!("/{rest}/"),
            },
            None => String::new(),
        };
        Some(Matched {
            target: handler.target,
            based_route: handler.based.clone(),
            raw_route: handler.raw.clone(),
            path_info,
            params: captures
                .iter()
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .collect(),
        })
    }
}

/// Spin's "based" route with base `/`: a leading `/`, one trailing `/`
/// dropped.
fn based_route(raw: &str) -> String {
    let absolute = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    match absolute.strip_suffix('/') {
        Some(stripped) => stripped.to_owned(),
        None => absolute,
    }
}

impl Matched {
    /// The headers Spin's HTTP trigger adds to the request
    /// (`compute_default_headers`): `full_url` is the URL the client asked
    /// for, `client_addr` its `ip:port`.
    pub fn headers(&self, full_url: &str, client_addr: &str) -> Vec<(String, String)> {
        let component_route = self
            .raw_route
            .strip_suffix("/...")
            .unwrap_or(&self.raw_route)
            .to_owned();
        let mut headers = vec![
            ("spin-path-info".to_owned(), self.path_info.clone()),
            ("spin-full-url".to_owned(), full_url.to_owned()),
            ("spin-matched-route".to_owned(), self.based_route.clone()),
            ("spin-base-path".to_owned(), "/".to_owned()),
            (
                "spin-raw-component-route".to_owned(),
                self.raw_route.clone(),
            ),
            ("spin-component-route".to_owned(), component_route),
            ("spin-client-addr".to_owned(), client_addr.to_owned()),
        ];
        for (name, value) in &self.params {
            headers.push((
                format!("spin-path-match-{}", name.to_ascii_lowercase()),
                value.clone(),
            ));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router(routes: &[(&str, &str)]) -> Router {
        let mut text = String::from("spin_manifest_version = 2\n[application]\nname = \"t\"\n");
        let mut ids: Vec<&str> = Vec::new();
        for (route, id) in routes {
            text.push_str(&format!(
                "[[trigger.http]]\nroute = \"{route}\"\ncomponent = \"{id}\"\n"
            ));
            if !ids.contains(id) {
                ids.push(id);
            }
        }
        for id in &ids {
            text.push_str(&format!("[component.{id}]\nsource = \"{id}.wasm\"\n"));
        }
        let manifest = Manifest::parse(&text).unwrap();
        let index: HashMap<&str, usize> = manifest
            .component_ids()
            .enumerate()
            .map(|(i, id)| (id, i))
            .collect();
        Router::build(&manifest, &index).unwrap()
    }

    fn target(r: &Router, path: &str) -> Option<usize> {
        r.route(path).map(|m| match m.target {
            Target::Component(i) => i,
            Target::Static(i) => 100 + i,
        })
    }

    // Component ids sort: a=0, b=1, c=2.
    #[test]
    fn exact_beats_wildcard_and_longest_prefix_wins() {
        let r = router(&[("/...", "a"), ("/foo", "b"), ("/foo/bar/...", "c")]);
        assert_eq!(target(&r, "/foo"), Some(1));
        assert_eq!(target(&r, "/foo/"), Some(1));
        assert_eq!(target(&r, "/foo/baz"), Some(0));
        assert_eq!(target(&r, "/foo/bar"), Some(2));
        assert_eq!(target(&r, "/foo/bar/x/y"), Some(2));
        assert_eq!(target(&r, "/"), Some(0));
        let r = router(&[("/foo/bar/...", "c"), ("/foo/...", "a")]);
        assert_eq!(target(&r, "/foo/bar/x"), Some(1));
        assert_eq!(target(&r, "/foo/x"), Some(0));
        assert_eq!(target(&r, "/other"), None);
    }

    #[test]
    fn a_duplicate_route_is_served_by_the_last_declaration() {
        let r = router(&[("/x", "a"), ("/x", "b")]);
        assert_eq!(target(&r, "/x"), Some(1));
        assert_eq!(r.duplicates, ["/x"]);
    }

    #[test]
    fn path_info_keeps_spins_slashes() {
        let r = router(&[("/test/...", "a")]);
        let info = |p: &str| r.route(p).unwrap().path_info;
        assert_eq!(info("/test"), "");
        assert_eq!(info("/test/"), "/");
        assert_eq!(info("/test/hello"), "/hello");
        assert_eq!(info("/test/hello/"), "/hello/");
        let exact = router(&[("/exact", "a")]);
        assert_eq!(exact.route("/exact").unwrap().path_info, "");
    }

    #[test]
    fn headers_are_spins() {
        // Spin's own vectors (trigger-http/src/headers.rs).
        let r = router(&[("/foo/...", "a")]);
        let m = r.route("/foo/bar").unwrap();
        let h: HashMap<String, String> = m
            .headers("https://fermyon.dev/foo/bar?key1=value1", "127.0.0.1:8777")
            .into_iter()
            .collect();
        assert_eq!(h["spin-path-info"], "/bar");
        assert_eq!(
            h["spin-full-url"],
            "https://fermyon.dev/foo/bar?key1=value1"
        );
        assert_eq!(h["spin-matched-route"], "/foo/...");
        assert_eq!(h["spin-base-path"], "/");
        assert_eq!(h["spin-raw-component-route"], "/foo/...");
        assert_eq!(h["spin-component-route"], "/foo");
        assert_eq!(h["spin-client-addr"], "127.0.0.1:8777");

        let r = router(&[("/foo/:userid/...", "a")]);
        let m = r.route("/foo/42/bar").unwrap();
        let h: HashMap<String, String> = m.headers("http://x", "1.2.3.4:5").into_iter().collect();
        assert_eq!(h["spin-path-match-userid"], "42");
        assert_eq!(h["spin-path-info"], "/bar");
        assert_eq!(h["spin-component-route"], "/foo/:userid");
    }
}
