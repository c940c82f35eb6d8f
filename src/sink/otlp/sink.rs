//! An OTLP logs sink for a resolved target: the shared HTTP transport with the OTLP
//! body, or the tonic gRPC client (connected on first send, headers as metadata).

use super::config::{OtlpProtocol, Target};
use super::encoder::{request, resource, OtlpHttpEncoder};
use crate::sink::pipeline::{SendError, Sink};
use crate::sink::record::Batch;
use crate::sink::transport::{display_url, HttpSink};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use std::future::Future;
use std::pin::Pin;

/// The OTLP sink for a target: the HTTP transport or the gRPC client.
pub(crate) enum Built {
    Http(HttpSink<OtlpHttpEncoder>),
    Grpc(GrpcSink),
}

/// Build the OTLP sink for a resolved target.
pub(crate) fn build(
    client: &reqwest::Client,
    target: Target,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Built, String> {
    let resource = resource(env);
    let kind = format!("otlp {}", target.protocol.as_str());
    Ok(match target.protocol {
        OtlpProtocol::Grpc => Built::Grpc(GrpcSink {
            name: format!("{kind} {}", display_url(&target.url)),
            url: target.url,
            headers: target.headers.into_iter().collect(),
            export: None,
            resource,
        }),
        p => {
            let encoder = OtlpHttpEncoder {
                resource,
                json: p == OtlpProtocol::HttpJson,
            };
            Built::Http(HttpSink::new(
                client,
                &kind,
                &target.url,
                &target.headers,
                None,
                encoder,
            )?)
        }
    })
}

type ExportFuture = Pin<Box<dyn Future<Output = Result<(), (i32, String)>> + Send>>;
type Export = Box<dyn FnMut(ExportLogsServiceRequest) -> ExportFuture + Send>;

/// Connect, and return a function that exports over the connected channel (its
/// type, `tonic::transport::Channel`, cannot be named from this crate).
async fn connect(url: String, headers: Vec<(String, String)>) -> Result<Export, String> {
    use tonic::metadata::{Ascii, MetadataKey, MetadataValue};
    let mut metadata: Vec<(MetadataKey<Ascii>, MetadataValue<Ascii>)> = Vec::new();
    for (k, v) in &headers {
        let key = MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|_| format!("header '{k}' cannot be sent as gRPC metadata"))?;
        let value = MetadataValue::try_from(v.as_str())
            .map_err(|_| format!("header '{k}' has a value gRPC metadata cannot carry"))?;
        metadata.push((key, value));
    }
    let client = LogsServiceClient::connect(url).await.map_err(|e| {
        format!(
            "cannot connect: {}",
            crate::provider::http::describe_error(&e)
        )
    })?;
    Ok(Box::new(move |req| {
        let mut c = client.clone();
        let mut request = tonic::Request::new(req);
        for (k, v) in &metadata {
            request.metadata_mut().insert(k.clone(), v.clone());
        }
        Box::pin(async move {
            c.export(request).await.map(|_| ()).map_err(|s| {
                (
                    i32::from(s.code()),
                    format!("grpc {:?}: {}", s.code(), s.message()),
                )
            })
        })
    }))
}

/// gRPC status codes worth retrying (the OTLP specification's list, plus UNKNOWN,
/// which tonic reports when the channel cannot reach the server).
fn retryable_grpc(code: i32) -> bool {
    matches!(code, 1 | 2 | 4 | 8 | 10 | 11 | 14 | 15)
}

/// OTLP over gRPC with the generated tonic client.
pub(crate) struct GrpcSink {
    name: String,
    url: String,
    headers: Vec<(String, String)>,
    export: Option<Export>,
    resource: Resource,
}

impl Sink for GrpcSink {
    type Payload = ExportLogsServiceRequest;

    fn name(&self) -> String {
        self.name.clone()
    }

    fn encode(&self, batch: &Batch) -> Result<ExportLogsServiceRequest, String> {
        Ok(request(batch, &self.resource))
    }

    async fn send(&mut self, req: &ExportLogsServiceRequest) -> Result<(), SendError> {
        if self.export.is_none() {
            self.export = Some(
                connect(self.url.clone(), self.headers.clone())
                    .await
                    .map_err(SendError::Retryable)?,
            );
        }
        let export = self.export.as_mut().expect("connected above");
        match export(req.clone()).await {
            Ok(()) => Ok(()),
            Err((code, text)) if retryable_grpc(code) => Err(SendError::Retryable(text)),
            Err((_, text)) => Err(SendError::Fatal(text)),
        }
    }
}
