//! `kpl serve`: a Kinesis API endpoint that aggregates. `PutRecords` and `PutRecord` go
//! into one `kpl-kinesis` sink per stream and are answered per record once stored; every
//! other operation is forwarded to the upstream ([`forward`]). The wire formats are pure
//! functions in [`protocol`]; this module is the HTTP shell (hyper), TLS (rustls), limits
//! and shutdown.

pub mod forward;
pub mod metrics;
pub mod protocol;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use kpl_kinesis::sink::{
    Config, FailureReason, Outcome, PendingOutcome, Sink, SinkError, UserRecord,
};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore};

use self::forward::Forwarder;
use self::metrics::Metrics;
use self::protocol::{ApiError, EntryAnswer, Protocol, PutRequest, StreamRef};
use crate::args::ServeArgs;
use crate::error::{CliError, Stop};

/// Largest request body read; larger ones are refused before reading (a 5 MiB PutRecords
/// is about 7 MiB of JSON with base64).
pub const MAX_BODY: usize = 8 * 1024 * 1024;
/// How long a client may take to send its headers, and then its body.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long SIGTERM waits for requests in flight, then for the sinks.
pub const EXIT_GRACE: Duration = Duration::from_secs(30);

/// Runs `kpl serve` until SIGTERM or Ctrl-C.
pub fn run(args: &ServeArgs, out: &mut dyn Write) -> Result<(), Stop> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CliError::input(format!("cannot start the async runtime: {e}")))?;
    runtime.block_on(serve(args, out))
}

struct Server {
    config: Config,
    sdk: aws_config::SdkConfig,
    sinks: Mutex<HashMap<StreamRef, Arc<Sink>>>,
    /// One gate per stream whose sink is being made, so that a burst of first requests
    /// makes one sink (one DescribeStreamSummary, one ListShards), not one each.
    making: Mutex<HashMap<StreamRef, Arc<Mutex<()>>>>,
    forwarder: Forwarder,
    metrics: Metrics,
    admission_wait: Duration,
}

fn sink_config(args: &ServeArgs) -> Result<Config, CliError> {
    crate::put::sink_config(
        args.config.as_deref(),
        args.endpoint.as_deref(),
        args.region.as_deref(),
    )
}

fn tls_acceptor(args: &ServeArgs) -> Result<Option<tokio_rustls::TlsAcceptor>, CliError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| CliError::input(format!("--tls-cert {}: {e}", cert.display())))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| CliError::input(format!("--tls-key {}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CliError::input(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| CliError::input(format!("TLS: {e}")))?;
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

async fn serve(args: &ServeArgs, out: &mut dyn Write) -> Result<(), Stop> {
    let config = sink_config(args)?;
    let addr: SocketAddr = args
        .listen
        .parse()
        .map_err(|e| CliError::input(format!("--listen {:?}: {e}", args.listen)))?;
    if !addr.ip().is_loopback() {
        if !args.allow_remote {
            return Err(CliError::input(format!(
                "--listen {addr} is not a loopback address: kpl serve does not check callers' signatures, so anyone who can reach it can put into and read your streams with its credentials; add --allow-remote if that is what you want"
            ))
            .into());
        }
        eprintln!("kpl: warning: listening on {addr}: callers are not authenticated");
    }
    let tls = tls_acceptor(args)?;
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if !config.region.is_empty() {
        loader = loader.region(aws_config::Region::new(config.region.clone()));
    }
    let sdk = loader.load().await;
    let region = sdk
        .region()
        .map_or_else(|| "us-east-1".to_owned(), |r| r.to_string());
    let forwarder = Forwarder::new(
        &config.kinesis_endpoint,
        &region,
        sdk.credentials_provider(),
        Duration::from_millis(config.request_timeout.max(10_000)),
    )
    .map_err(CliError::input)?;
    let server = Arc::new(Server {
        admission_wait: Duration::from_millis(args.admission_wait),
        config,
        sdk,
        sinks: Mutex::new(HashMap::new()),
        making: Mutex::new(HashMap::new()),
        forwarder,
        metrics: Metrics::default(),
    });
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| CliError::input(format!("cannot listen on {addr}: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| CliError::input(format!("cannot read the listening address: {e}")))?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    writeln!(out, "listening on {scheme}://{local}")?;
    out.flush()?;

    let connections = Arc::new(Semaphore::new(args.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut stop = Box::pin(shutdown_signal());
    loop {
        let accepted = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        let (tcp, _) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, keep serving.
                eprintln!("kpl: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            server.metrics.add(&server.metrics.refused_connections, 1);
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let service_server = server.clone();
        let service = service_fn(move |request| {
            let server = service_server.clone();
            async move { Ok::<_, std::convert::Infallible>(handle(&server, request).await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(CLIENT_TIMEOUT)
            .keep_alive(true);
        match &tls {
            None => {
                let conn = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(tcp)).await
                    else {
                        return;
                    };
                    let conn =
                        watcher.watch(builder.serve_connection(TokioIo::new(stream), service));
                    let _ = conn.await;
                    drop(permit);
                });
            }
        }
    }
    drop(listener);
    // Answer what is in flight (its records are flushed by the sinks meanwhile), then
    // flush and stop every sink.
    let started = Instant::now();
    let flushing = async {
        let sinks: Vec<Arc<Sink>> = server.sinks.lock().await.values().cloned().collect();
        for sink in &sinks {
            sink.flush().await;
        }
    };
    let _ = tokio::time::timeout(EXIT_GRACE, async {
        tokio::join!(graceful.shutdown(), flushing)
    })
    .await;
    let left = EXIT_GRACE.saturating_sub(started.elapsed());
    let sinks: Vec<(StreamRef, Arc<Sink>)> = server.sinks.lock().await.drain().collect();
    let mut kinesis_records = 0;
    for (_, sink) in &sinks {
        sink.shutdown(left).await;
        kinesis_records += sink.stats().kinesis_records_stored;
    }
    let m = &server.metrics;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    writeln!(
        out,
        "stopped: {} user records in, {} stored, {} throttled, {} failed, {} Kinesis records, {} forwarded requests",
        get(&m.records_in),
        get(&m.records_stored),
        get(&m.records_throttled),
        get(&m.records_failed),
        kinesis_records,
        get(&m.forwarded)
    )?;
    out.flush()?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

type Answer = Response<Full<Bytes>>;

fn answer(status: u16, content_type: &str, body: Vec<u8>) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    response
}

fn error_answer(protocol: Protocol, error: &ApiError) -> Answer {
    let mut response = answer(
        error.status,
        protocol.content_type(),
        protocol::encode_error(protocol, error),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(error.code) {
        response.headers_mut().insert("x-amzn-errortype", v);
    }
    response
}

async fn handle(server: &Server, request: Request<Incoming>) -> Answer {
    if request.method() == Method::GET {
        return match request.uri().path() {
            "/metrics" => {
                let sinks: Vec<(String, kpl_kinesis::sink::Stats)> = server
                    .sinks
                    .lock()
                    .await
                    .iter()
                    .map(|(s, sink)| {
                        let name = match s {
                            StreamRef::Name(n) | StreamRef::Arn(n) => n.clone(),
                        };
                        (name, sink.stats())
                    })
                    .collect();
                answer(
                    200,
                    "text/plain; version=0.0.4",
                    server.metrics.render(&sinks).into_bytes(),
                )
            }
            "/healthcheck" | "/" => answer(200, "text/plain", b"ok\n".to_vec()),
            _ => answer(404, "text/plain", b"not found\n".to_vec()),
        };
    }
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type");
    let protocol = Protocol::of(content_type.as_deref());
    let target = header("x-amz-target").unwrap_or_default();
    let declared = header("content-length").and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY) {
        server.metrics.add(&server.metrics.invalid_requests, 1);
        return error_answer(protocol, &too_large());
    }
    let body = match tokio::time::timeout(
        CLIENT_TIMEOUT,
        Limited::new(request.into_body(), MAX_BODY).collect(),
    )
    .await
    {
        Ok(Ok(body)) => body.to_bytes(),
        Ok(Err(_)) => {
            server.metrics.add(&server.metrics.invalid_requests, 1);
            return error_answer(protocol, &too_large());
        }
        Err(_) => {
            return error_answer(
                protocol,
                &ApiError {
                    status: 408,
                    code: "RequestTimeout",
                    message: format!("the body did not arrive within {CLIENT_TIMEOUT:?}"),
                },
            )
        }
    };
    let operation = target.rsplit('.').next().unwrap_or_default();
    match operation {
        "PutRecords" | "PutRecord" => {
            let started = Instant::now();
            let max = server.config.max_record_size;
            let decoded = if operation == "PutRecords" {
                protocol::decode_put_records(protocol, &body, max)
            } else {
                protocol::decode_put_record(protocol, &body, max)
            };
            let response = match decoded {
                Ok(request) => put(server, protocol, request, operation == "PutRecord").await,
                Err(e) => {
                    server.metrics.add(&server.metrics.invalid_requests, 1);
                    error_answer(protocol, &e)
                }
            };
            server.metrics.add(&server.metrics.put_requests, 1);
            server.metrics.observe_put(started.elapsed());
            response
        }
        _ => {
            server.metrics.add(&server.metrics.forwarded, 1);
            let content_type = content_type.unwrap_or_else(|| protocol.content_type().to_owned());
            match server.forwarder.forward(&target, &content_type, body).await {
                Ok(relayed) => {
                    let mut response = Response::new(Full::new(relayed.body));
                    *response.status_mut() = relayed.status;
                    for (name, value) in relayed.headers {
                        response.headers_mut().insert(name, value);
                    }
                    response
                }
                Err(e) => error_answer(protocol, &e),
            }
        }
    }
}

fn too_large() -> ApiError {
    ApiError {
        status: 413,
        code: "InvalidArgumentException",
        message: format!("the request body is over {MAX_BODY} bytes"),
    }
}

/// The sink of a stream, made on first use once the upstream says the stream exists.
async fn sink_for(server: &Server, stream: &StreamRef) -> Result<Arc<Sink>, ApiError> {
    if let Some(sink) = server.sinks.lock().await.get(stream) {
        return Ok(sink.clone());
    }
    let gate = server
        .making
        .lock()
        .await
        .entry(stream.clone())
        .or_default()
        .clone();
    let made = {
        let _making = gate.lock().await;
        // (The sinks' lock must be released before making one, which takes it again.)
        let existing = server.sinks.lock().await.get(stream).cloned();
        match existing {
            Some(sink) => Ok(sink),
            None => make_sink(server, stream).await,
        }
    };
    server.making.lock().await.remove(stream);
    made
}

/// Makes a stream's sink, once the upstream says the stream exists, and keeps it.
async fn make_sink(server: &Server, stream: &StreamRef) -> Result<Arc<Sink>, ApiError> {
    // Ask the upstream first, so that a stream that does not exist gets Kinesis's own
    // answer at once, instead of records that expire.
    let body = match stream {
        StreamRef::Name(n) => serde_json::json!({ "StreamName": n }),
        StreamRef::Arn(a) => serde_json::json!({ "StreamARN": a }),
    };
    let probe = server
        .forwarder
        .forward(
            "Kinesis_20131202.DescribeStreamSummary",
            Protocol::Json.content_type(),
            Bytes::from(body.to_string()),
        )
        .await?;
    if !probe.status.is_success() {
        let value: serde_json::Value = serde_json::from_slice(&probe.body).unwrap_or_default();
        let code = value["__type"].as_str().unwrap_or("InternalFailure");
        let code = code.rsplit('#').next().unwrap_or(code);
        let message = value["message"]
            .as_str()
            .or_else(|| value["Message"].as_str())
            .unwrap_or("the upstream refused DescribeStreamSummary")
            .to_owned();
        return Err(ApiError {
            status: probe.status.as_u16(),
            code: static_code(code),
            message,
        });
    }
    let builder = Sink::builder()
        .config(server.config.clone())
        .sdk_config(server.sdk.clone());
    let builder = match stream {
        StreamRef::Name(n) => builder.stream_name(n.clone()),
        StreamRef::Arn(a) => builder.stream_arn(a.clone()),
    };
    let sink = Arc::new(builder.build().await.map_err(|e| ApiError {
        status: 500,
        code: "InternalFailure",
        message: format!("cannot start a sink: {e}"),
    })?);
    // Aggregate from the first record on: records put before the shard map is known go
    // out alone once their RecordMaxBufferedTime passes (KPL's warm-up). The map comes
    // with the first ListShards; a stream too slow to list still gets its records, alone.
    let wait = Duration::from_millis(server.config.request_timeout);
    if !sink.wait_for_shard_map(wait).await {
        eprintln!(
            "kpl: no shard map for {stream:?} within {wait:?}: its first records go unaggregated"
        );
    }
    let mut sinks = server.sinks.lock().await;
    Ok(sinks.entry(stream.clone()).or_insert(sink).clone())
}

/// Error codes the upstream may give, as the static strings [`ApiError`] holds.
fn static_code(code: &str) -> &'static str {
    match code {
        "ResourceNotFoundException" => "ResourceNotFoundException",
        "AccessDeniedException" => "AccessDeniedException",
        "InvalidArgumentException" => "InvalidArgumentException",
        "ValidationException" => "ValidationException",
        "LimitExceededException" => "LimitExceededException",
        "UnrecognizedClientException" => "UnrecognizedClientException",
        "ExpiredTokenException" => "ExpiredTokenException",
        "ResourceInUseException" => "ResourceInUseException",
        _ => "InternalFailure",
    }
}

fn throttled(message: &str) -> EntryAnswer {
    EntryAnswer::Failed {
        code: "ProvisionedThroughputExceededException".into(),
        message: message.into(),
    }
}

async fn put(server: &Server, protocol: Protocol, request: PutRequest, single: bool) -> Answer {
    let m = &server.metrics;
    m.add(&m.records_in, request.records.len() as u64);
    let sink = match sink_for(server, &request.stream).await {
        Ok(sink) => sink,
        Err(e) => {
            m.add(&m.records_failed, request.records.len() as u64);
            return error_answer(protocol, &e);
        }
    };
    let deadline = tokio::time::Instant::now() + server.admission_wait;
    let records = request
        .records
        .into_iter()
        .map(|entry| UserRecord {
            partition_key: entry.partition_key,
            explicit_hash_key: entry.explicit_hash_key,
            data: entry.data,
        })
        .collect();
    // The request's records in order (their partition keys hashed together); those that
    // found no room by the deadline come back, and the client is told to retry them.
    let mut full = false;
    let pending: Vec<Result<PendingOutcome, EntryAnswer>> = sink
        .put_batch_until(records, Some(deadline))
        .await
        .into_iter()
        .map(|put| {
            put.map_err(|e| match e {
                SinkError::Full(_) if !full => {
                    full = true;
                    throttled("the aggregating buffer stayed full: the stream is not keeping up; retry later")
                }
                SinkError::Full(_) => throttled("the aggregating buffer is full: retry later"),
                SinkError::Closed => EntryAnswer::Failed {
                    code: "InternalFailure".into(),
                    message: "the server is shutting down".into(),
                },
                other => EntryAnswer::Failed {
                    code: "InvalidArgumentException".into(),
                    message: other.to_string(),
                },
            })
        })
        .collect();
    let mut answers = Vec::with_capacity(pending.len());
    for p in pending {
        let a = match p {
            Err(a) => a,
            Ok(p) => match p.await {
                Outcome::Success(s) => EntryAnswer::Stored {
                    shard_id: s.shard_id.to_string(),
                    sequence_number: s.sequence_number.to_string(),
                },
                Outcome::Failure(f) => match &f.reason {
                    FailureReason::Rejected(e) => EntryAnswer::Failed {
                        code: e.code.clone(),
                        message: e.message.clone(),
                    },
                    _ => EntryAnswer::Failed {
                        code: "InternalFailure".into(),
                        message: f.to_string(),
                    },
                },
            },
        };
        match &a {
            EntryAnswer::Stored { .. } => m.add(&m.records_stored, 1),
            EntryAnswer::Failed { code, .. }
                if code == "ProvisionedThroughputExceededException" =>
            {
                m.add(&m.records_throttled, 1)
            }
            EntryAnswer::Failed { .. } => m.add(&m.records_failed, 1),
        }
        answers.push(a);
    }
    if single {
        return match answers.into_iter().next() {
            Some(EntryAnswer::Stored {
                shard_id,
                sequence_number,
            }) => answer(
                200,
                protocol.content_type(),
                protocol::encode_put_record(protocol, &shard_id, &sequence_number),
            ),
            Some(EntryAnswer::Failed { code, message }) => error_answer(
                protocol,
                &ApiError {
                    status: protocol::status_of(&code),
                    code: static_failure(&code),
                    message,
                },
            ),
            None => error_answer(protocol, &ApiError::validation("no record")),
        };
    }
    answer(
        200,
        protocol.content_type(),
        protocol::encode_put_records(protocol, &answers),
    )
}

fn static_failure(code: &str) -> &'static str {
    match code {
        "ProvisionedThroughputExceededException" => "ProvisionedThroughputExceededException",
        "KMSThrottlingException" => "KMSThrottlingException",
        other => static_code(other),
    }
}
