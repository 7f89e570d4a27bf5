//! Simulated replicas write nothing: their log streams are empty.

use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use uni_proto::v1::log_service_server::LogService;
use uni_proto::v1::{LogChunk, StreamLogsRequest};

pub struct NoLogs;

#[tonic::async_trait]
impl LogService for NoLogs {
    type StreamLogsStream = ReceiverStream<Result<LogChunk, Status>>;

    async fn stream_logs(
        &self,
        _request: Request<StreamLogsRequest>,
    ) -> Result<Response<Self::StreamLogsStream>, Status> {
        let (_tx, rx) = tokio::sync::mpsc::channel(1);
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}
