//! `sys/metrics`: what the server did, in Prometheus's (OpenMetrics) text format — requests and
//! their durations by area of the API and status code, failed authentications, whether it is
//! sealed. Labels name only an area (`kv`, `transit`, ...) and a status: never a path, a token,
//! an accessor or a value.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::fmt::Write;
use std::time::Duration;

/// The part of the API a request was for.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub(crate) enum Area {
    /// KV v2 (`secret/`).
    Kv,
    /// Transit (`transit/`).
    Transit,
    /// Tokens and AppRole (`auth/`).
    Auth,
    /// `sys/`.
    Sys,
    /// The native routes (`tresor/`).
    Tresor,
    /// Anything else (answered 404).
    Other,
}

impl EncodeLabelValue for Area {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        encoder.write_str(match self {
            Area::Kv => "kv",
            Area::Transit => "transit",
            Area::Auth => "auth",
            Area::Sys => "sys",
            Area::Tresor => "tresor",
            Area::Other => "other",
        })
    }
}

impl Area {
    /// The area of a path after `/v1/`.
    pub(crate) fn of(path: &str) -> Area {
        match path.split('/').next().unwrap_or_default() {
            super::kv::DEFAULT_MOUNT => Area::Kv,
            super::transit::DEFAULT_MOUNT => Area::Transit,
            "auth" => Area::Auth,
            "sys" => Area::Sys,
            "tresor" => Area::Tresor,
            _ => Area::Other,
        }
    }
}

/// A request's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Request {
    area: Area,
    code: u16,
}

/// A duration's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByArea {
    area: Area,
}

/// Request durations from 0.25 ms to about 4 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

/// The server's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<Request, Counter>,
    durations: Family<ByArea, Histogram, fn() -> Histogram>,
    failed_authentications: Counter,
    sealed: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tresor");
        let requests = Family::<Request, Counter>::default();
        let durations =
            Family::<ByArea, Histogram, fn() -> Histogram>::new_with_constructor(duration_histogram);
        let failed_authentications = Counter::default();
        let sealed = Gauge::default();
        registry.register(
            "requests",
            "HTTP requests answered, by area of the API and status code",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request, by area of the API",
            durations.clone(),
        );
        registry.register(
            "failed_authentications",
            "Requests refused for an unknown token, a wrong password or a failed login",
            failed_authentications.clone(),
        );
        registry.register("sealed", "1 while the server is sealed or uninitialized", sealed.clone());
        Metrics { registry, requests, durations, failed_authentications, sealed }
    }
}

impl Metrics {
    /// Counts one answered request.
    pub(crate) fn answered(&self, area: Area, code: u16, took: Duration) {
        self.requests.get_or_create(&Request { area, code }).inc();
        self.durations.get_or_create(&ByArea { area }).observe(took.as_secs_f64());
    }

    /// Counts one failed authentication.
    pub(crate) fn failed_authentication(&self) {
        self.failed_authentications.inc();
    }

    /// The text Prometheus scrapes, with the seal state as of now.
    pub(crate) fn render(&self, sealed: bool) -> String {
        self.sealed.set(i64::from(sealed));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_by_area_and_code_and_nothing_else() {
        let m = Metrics::default();
        m.answered(Area::of("secret/data/app/db"), 200, Duration::from_millis(2));
        m.answered(Area::of("secret/data/app/db"), 200, Duration::from_millis(3));
        m.answered(Area::of("transit/encrypt/k"), 403, Duration::from_millis(1));
        m.failed_authentication();
        let text = m.render(false);
        assert!(text.contains(r#"tresor_requests_total{area="kv",code="200"} 2"#), "{text}");
        assert!(text.contains(r#"tresor_requests_total{area="transit",code="403"} 1"#), "{text}");
        assert!(text.contains("tresor_failed_authentications_total 1"), "{text}");
        assert!(text.contains("tresor_sealed 0"), "{text}");
        assert!(text.contains(r#"tresor_request_duration_seconds_count{area="kv"} 2"#), "{text}");
        assert!(!text.contains("app/db"), "a path in the metrics: {text}");
        assert!(m.render(true).contains("tresor_sealed 1"));
    }
}
