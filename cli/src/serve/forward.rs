//! Operations `kpl serve` does not answer itself go to the upstream Kinesis as they came
//! (same target, content type and body), signed again with the server's own credentials,
//! and the upstream's answer goes back to the client.

use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Request, StatusCode};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::protocol::ApiError;

/// Largest upstream answer relayed (GetRecords answers are at most 10 MiB of data, in base64).
const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// The upstream, and how to sign for it.
pub struct Forwarder {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
    host: String,
    region: String,
    credentials: Option<SharedCredentialsProvider>,
    timeout: Duration,
}

/// An answer to relay: status, content type, error type header, body.
pub struct Relayed {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers worth relaying (content type, error type, request id).
    pub headers: Vec<(hyper::header::HeaderName, hyper::header::HeaderValue)>,
    /// The body.
    pub body: Bytes,
}

impl Forwarder {
    /// A forwarder to `endpoint` (empty: AWS in `region`).
    pub fn new(
        endpoint: &str,
        region: &str,
        credentials: Option<SharedCredentialsProvider>,
        timeout: Duration,
    ) -> Result<Forwarder, String> {
        let url = if endpoint.is_empty() {
            format!("https://kinesis.{region}.amazonaws.com/")
        } else {
            format!("{}/", endpoint.trim_end_matches('/'))
        };
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("--endpoint {endpoint:?} is not a URL: {e}"))?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .ok_or_else(|| format!("--endpoint {endpoint:?} has no host"))?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| format!("cannot load the system's root certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Forwarder {
            client,
            url,
            host,
            region: region.to_owned(),
            credentials,
            timeout,
        })
    }

    /// Sends one request upstream and returns its answer, or why it could not.
    pub async fn forward(
        &self,
        target: &str,
        content_type: &str,
        body: Bytes,
    ) -> Result<Relayed, ApiError> {
        let mut request = Request::post(&self.url)
            .header(hyper::header::HOST, &self.host)
            .header(hyper::header::CONTENT_TYPE, content_type)
            .header("x-amz-target", target)
            .body(Full::new(body.clone()))
            .map_err(|e| internal(format!("cannot build the upstream request: {e}")))?;
        self.sign(&mut request, &body).await?;
        let answer = tokio::time::timeout(self.timeout, self.client.request(request))
            .await
            .map_err(|_| unavailable("the upstream did not answer in time".into()))?
            .map_err(|e| unavailable(format!("cannot reach the upstream: {e}")))?;
        let status = answer.status();
        let headers = answer
            .headers()
            .iter()
            .filter(|(name, _)| {
                let n = name.as_str();
                n == "content-type" || n.starts_with("x-amzn-") || n.starts_with("x-amz-")
            })
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let body = tokio::time::timeout(
            self.timeout,
            Limited::new(answer.into_body(), MAX_ANSWER).collect(),
        )
        .await
        .map_err(|_| unavailable("the upstream's answer did not arrive in time".into()))?
        .map_err(|e| unavailable(format!("cannot read the upstream's answer: {e}")))?
        .to_bytes();
        Ok(Relayed {
            status,
            headers,
            body,
        })
    }

    async fn sign(&self, request: &mut Request<Full<Bytes>>, body: &[u8]) -> Result<(), ApiError> {
        let Some(provider) = &self.credentials else {
            // No credentials at all: send unsigned (a local upstream may not care).
            return Ok(());
        };
        let credentials = provider
            .provide_credentials()
            .await
            .map_err(|e| internal(format!("no AWS credentials for the upstream: {e}")))?;
        let identity: Identity = credentials.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name("kinesis")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| internal(format!("cannot sign: {e}")))?
            .into();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let signable = SignableRequest::new(
            "POST",
            &self.url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .map_err(|e| internal(format!("cannot sign: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| internal(format!("cannot sign: {e}")))?
            .into_parts();
        instructions.apply_to_request_http1x(request);
        Ok(())
    }
}

fn internal(message: String) -> ApiError {
    ApiError {
        status: 500,
        code: "InternalFailure",
        message,
    }
}

fn unavailable(message: String) -> ApiError {
    ApiError {
        status: 503,
        code: "ServiceUnavailable",
        message,
    }
}
