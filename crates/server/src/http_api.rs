//! HTTP/1.1 on the client port (and on `--listen-metrics-urls`; over TLS on `https`
//! URLs, and HTTP/2 requests that are not gRPC on the client port): the endpoints probes,
//! scrapers and scripts built for etcd use. `/health` (etcd's JSON, with 3.5's `reason`),
//! `/livez` and `/readyz` (etcd 3.5.11's named checks), `/version`, `/metrics`.
//!
//! Answers are shaped as etcd's Go server shapes them: errors through `http.Error`
//! (plain text, a newline, `X-Content-Type-Options: nosniff`), and the CORS headers etcd
//! adds to every answer on its client port.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW};
use http::{Method, Request, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::Handle;
use crate::gateway::{self, respond, Gateway};
use crate::metrics::{self, Metrics};
use crate::proto::etcdserverpb::AlarmType;
use crate::tls::{ClientCertificate, TlsServer};

/// What answers HTTP requests for a member.
#[derive(Clone, Debug)]
pub struct HttpApi {
    /// The way to the core.
    pub handle: Handle,
    /// The live metrics.
    pub metrics: Arc<Metrics>,
    /// The etcd version reported (`/version`, `/metrics`).
    pub etcd_version: String,
    /// The JSON gateway (`/v3/…`).
    pub gateway: Gateway,
}

/// An answer with a body.
type Answer = gateway::Answer;

const TEXT: &str = "text/plain; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

impl HttpApi {
    /// Serves HTTP/1.1 on `stream` until the client closes it or `stop` turns true. Every
    /// request carries the client's verified `certificate`, if any.
    pub async fn connection<S>(
        self: Arc<Self>,
        stream: S,
        certificate: Option<ClientCertificate>,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let api = self.clone();
        let service = service_fn(move |mut request: Request<hyper::body::Incoming>| {
            let api = api.clone();
            if let Some(certificate) = &certificate {
                request.extensions_mut().insert(certificate.clone());
            }
            async move { Ok::<_, std::convert::Infallible>(api.answer(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .serve_connection(TokioIo::new(stream), service);
        let mut connection = std::pin::pin!(connection);
        let stopping = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let result = tokio::select! {
            result = connection.as_mut() => result,
            () = stopping => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
        };
        if let Err(e) = result {
            tracing::debug!("http: connection failed: {e}");
        }
    }

    /// The answer to one request.
    pub async fn answer<B>(&self, request: Request<B>) -> Answer
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin,
        B::Error: std::fmt::Display,
    {
        let path = request.uri().path().to_string();
        if gateway::serves(&path) {
            let mut answer = self.gateway.answer(request).await;
            with_cors(&mut answer);
            return answer;
        }
        let query = Query::of(request.uri().query());
        let check = check_path(&path);
        let mut answer = match (path.as_str(), request.method() == Method::GET) {
            ("/health", true) => self.health(&query).await,
            ("/livez" | "/readyz", true) => self.checks(&path, None, &query).await,
            ("/version", true) => self.version(),
            // etcd answers a scrape whatever its method.
            ("/metrics", _) => self.metrics().await,
            (_, true) if check.is_some() => {
                let (root, name) = check.unwrap_or_default();
                self.checks(root, Some(name), &query).await
            }
            ("/health" | "/livez" | "/readyz" | "/version", false) => {
                let mut answer = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
                answer
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET"));
                answer
            }
            _ => error(StatusCode::NOT_FOUND, "404 page not found"),
        };
        with_cors(&mut answer);
        answer
    }

    async fn health(&self, query: &Query<'_>) -> Answer {
        let excluded = query.all("exclude");
        let serializable = query.first("serializable") == Some("true");
        let (healthy, reason) = self.health_check(&excluded, serializable).await;
        self.metrics.health_checked(healthy);
        let body = serde_json::json!({
            "health": if healthy { "true" } else { "false" },
            "reason": reason,
        })
        .to_string();
        if healthy {
            respond(StatusCode::OK, TEXT, body)
        } else {
            error(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }

    /// etcd's `/health`: no alarm (but those excluded), a leader (unless `serializable`),
    /// and a read that succeeds.
    async fn health_check(&self, excluded: &HashSet<&str>, serializable: bool) -> (bool, String) {
        let Ok((alarms, leader)) = self
            .handle
            .query(|core| (core.alarms(), core.replica().leader().is_some()))
            .await
        else {
            return (false, "RAFT NO LEADER".into());
        };
        for alarm in alarms {
            let name = alarm_name(alarm.alarm);
            if excluded.contains(name) {
                continue;
            }
            let reason = match name {
                "NOSPACE" | "CORRUPT" => format!("ALARM {name}"),
                _ => "ALARM UNKNOWN".into(),
            };
            return (false, reason);
        }
        if !serializable && !leader {
            return (false, "RAFT NO LEADER".into());
        }
        match self.read(serializable).await {
            Ok(()) => (true, String::new()),
            Err(message) => (false, format!("RANGE ERROR:{message}")),
        }
    }

    /// A read as etcd's health checks make it (one key, keys only).
    async fn read(&self, serializable: bool) -> Result<(), String> {
        let wait = self.handle.info.request_timeout + Duration::from_secs(1);
        match tokio::time::timeout(wait, self.handle.view(serializable)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(status.message().to_string()),
            Err(_) => Err(crate::api::timed_out().message().to_string()),
        }
    }

    /// `/livez`, `/readyz`, or one of their checks.
    async fn checks(&self, root: &str, only: Option<&str>, query: &Query<'_>) -> Answer {
        let excluded = query.all("exclude");
        let names: Vec<&str> = checks_of(root)
            .iter()
            .copied()
            .filter(|name| only.is_none_or(|only| only == *name))
            .filter(|name| only.is_some() || !excluded.contains(name))
            .collect();
        let mut report = String::new();
        let mut failed = false;
        for name in names {
            match self.check(name).await {
                Ok(()) => report.push_str(&format!("[+]{name} ok\n")),
                Err(why) => {
                    failed = true;
                    report.push_str(&format!("[-]{name} failed: {why}\n"));
                }
            }
        }
        if failed {
            return error(StatusCode::SERVICE_UNAVAILABLE, &report);
        }
        let body = match query.has("verbose") {
            true => format!("{report}ok\n"),
            false => "ok\n".into(),
        };
        let mut answer = respond(StatusCode::OK, TEXT, body);
        nosniff(&mut answer);
        answer
    }

    async fn check(&self, name: &str) -> Result<(), String> {
        match name {
            "serializable_read" => self.read(true).await,
            "linearizable_read" => self.read(false).await,
            "data_corruption" => {
                let alarms = self.handle.query(|core| core.alarms()).await;
                let alarms = alarms.map_err(|s| s.message().to_string())?;
                let corrupt = AlarmType::Corrupt as i32;
                match alarms.iter().any(|a| a.alarm == corrupt) {
                    true => Err("alarm activated: CORRUPT".into()),
                    false => Ok(()),
                }
            }
            _ => Ok(()),
        }
    }

    fn version(&self) -> Answer {
        let body = serde_json::json!({
            "etcdserver": self.etcd_version,
            "etcdcluster": format!("{}.0", metrics::major_minor(&self.etcd_version)),
        })
        .to_string();
        respond(StatusCode::OK, "application/json", body)
    }

    async fn metrics(&self) -> Answer {
        match self.handle.query(|core| core.facts()).await {
            Ok(facts) => respond(
                StatusCode::OK,
                OPENMETRICS,
                metrics::render(&self.metrics, &facts),
            ),
            Err(status) => error(StatusCode::SERVICE_UNAVAILABLE, status.message()),
        }
    }
}

/// The checks of `/livez` and `/readyz`, as etcd 3.5.11 registers them.
fn checks_of(root: &str) -> &'static [&'static str] {
    match root {
        "/livez" => &["serializable_read"],
        "/readyz" => &["data_corruption", "serializable_read", "linearizable_read"],
        _ => &[],
    }
}

/// `/livez/NAME` or `/readyz/NAME` for a check NAME of that root.
fn check_path(path: &str) -> Option<(&'static str, &str)> {
    let root = ["/livez", "/readyz"]
        .into_iter()
        .find(|root| path.starts_with(&format!("{root}/")))?;
    let name = &path[root.len() + 1..];
    checks_of(root).contains(&name).then_some((root, name))
}

fn alarm_name(alarm: i32) -> &'static str {
    match AlarmType::try_from(alarm) {
        Ok(AlarmType::Nospace) => "NOSPACE",
        Ok(AlarmType::Corrupt) => "CORRUPT",
        _ => "UNKNOWN",
    }
}

/// A request's query string, decoded enough for etcd's parameters (no escapes).
struct Query<'q>(Vec<(&'q str, &'q str)>);

impl<'q> Query<'q> {
    fn of(query: Option<&'q str>) -> Query<'q> {
        let pairs = query.unwrap_or("").split('&').filter(|p| !p.is_empty());
        Query(
            pairs
                .map(|p| p.split_once('=').unwrap_or((p, "")))
                .collect(),
        )
    }

    fn first(&self, key: &str) -> Option<&'q str> {
        self.0.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    /// Every non-empty value of `key`.
    fn all(&self, key: &str) -> HashSet<&'q str> {
        let values = self.0.iter().filter(|(k, v)| *k == key && !v.is_empty());
        values.map(|(_, v)| *v).collect()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == key)
    }
}

/// Go's `http.Error`: the message and a newline, as plain text.
fn error(status: StatusCode, message: &str) -> Answer {
    let mut answer = respond(status, TEXT, format!("{message}\n"));
    nosniff(&mut answer);
    answer
}

fn nosniff(answer: &mut Answer) {
    answer.headers_mut().insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
}

/// The headers etcd's client port adds to every HTTP answer.
fn with_cors(answer: &mut Answer) {
    let headers = answer.headers_mut();
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}

/// Serves HTTP/1.1 alone on `listener` (`--listen-metrics-urls`; over TLS with `tls`)
/// until `stop`.
pub async fn serve(
    listener: TcpListener,
    api: Arc<HttpApi>,
    tls: Option<Arc<TlsServer>>,
    stop: watch::Receiver<bool>,
) {
    crate::client_port::accept_until_stopped(listener, stop, "metrics port", |tcp, stop| {
        let (api, tls) = (api.clone(), tls.clone());
        async move {
            match tls {
                None => api.connection(tcp, None, stop).await,
                Some(tls) => {
                    let Some(stream) = tls.admit(tcp, "metrics port").await else {
                        return;
                    };
                    let certificate = crate::tls::client_certificate(&stream);
                    api.connection(stream, certificate, stop).await;
                }
            }
        }
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_paths_name_a_check_of_their_root() {
        assert_eq!(
            check_path("/readyz/linearizable_read"),
            Some(("/readyz", "linearizable_read"))
        );
        assert_eq!(
            check_path("/livez/serializable_read"),
            Some(("/livez", "serializable_read"))
        );
        assert_eq!(check_path("/livez/linearizable_read"), None);
        assert_eq!(check_path("/readyz/"), None);
        assert_eq!(check_path("/readyzx/data_corruption"), None);
    }

    #[test]
    fn a_query_keeps_every_value_and_bare_keys() {
        let query = Query::of(Some("exclude=NOSPACE&exclude=&verbose&serializable=true"));
        assert_eq!(query.all("exclude"), HashSet::from(["NOSPACE"]));
        assert!(query.has("verbose"));
        assert_eq!(query.first("serializable"), Some("true"));
        assert!(!Query::of(None).has("verbose"));
    }
}
