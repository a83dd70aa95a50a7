//! [`EchoCanceller`] on the `aec3` crate (RubyBit/aec3-rs, a second pure Rust AEC3 port),
//! for A/B tests against [`super::sonora_backend`]. Pinned to 0.4.0: the crate is young.
//!
//! The crate's pipeline shares packets through `Rc`, so it is not `Send` and cannot live in
//! the engine's capture reader, which any thread may drive. It therefore runs on a worker
//! thread of its own; each 10 ms capture frame is one synchronous round trip over a channel
//! (tens of microseconds, measured in the echo benchmark as part of the cost per frame).

use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::JoinHandle;

use aec3::nodes::audio::AudioFormat;
use aec3::pipelines::linear::{self, LinearPipeline};

use super::{AecOptions, EchoCanceller, EchoMetrics, AEC_FRAME, AEC_RATE_HZ};
use crate::error::{EngineError, Result};

enum Request {
    Render(Vec<f32>),
    Capture(Vec<f32>),
    Options(AecOptions),
}

enum Reply {
    Captured(std::result::Result<Vec<f32>, String>, EchoMetrics),
    Configured(std::result::Result<(), String>),
}

/// aec3-rs's linear pipeline (HPF → AEC3 → NS; its AGC2 and 48 kHz post filter are off so
/// the two backends do the same work), mono at [`AEC_RATE_HZ`], on a worker thread.
pub struct Aec3Canceller {
    requests: Option<Sender<Request>>,
    replies: Receiver<Reply>,
    worker: Option<JoinHandle<()>>,
    metrics: EchoMetrics,
}

impl std::fmt::Debug for Aec3Canceller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aec3Canceller").finish_non_exhaustive()
    }
}

fn build(options: &AecOptions) -> std::result::Result<LinearPipeline, String> {
    let format = AudioFormat::ten_ms(AEC_RATE_HZ, 1);
    linear::builder(format, format)
        .enable_high_pass_filter(options.high_pass_filter)
        .enable_noise_suppression(options.noise_suppression)
        .enable_gain_controller2(false)
        .enable_post_filter(false)
        .export_metrics(true)
        .build()
        .map_err(|e| e.to_string())
}

fn serve(mut pipeline: LinearPipeline, requests: Receiver<Request>, replies: Sender<Reply>) {
    let mut out = vec![0.0f32; AEC_FRAME];
    let mut metrics = EchoMetrics::default();
    let mut render_error: Option<String> = None;
    while let Ok(request) = requests.recv() {
        match request {
            Request::Render(frame) => {
                if let Err(e) = pipeline.handle_render_frame(&frame) {
                    render_error.get_or_insert(e.to_string());
                }
            }
            Request::Capture(mut frame) => {
                let result = match render_error.take() {
                    Some(e) => Err(e),
                    None => pipeline
                        .process_capture_frame(&frame, &mut out)
                        .map_err(|e| e.to_string())
                        .map(|_| {
                            // `false` means no output yet; the pipeline wrote silence.
                            frame.copy_from_slice(&out);
                            frame
                        }),
                };
                while let Ok(Some(m)) = pipeline.try_pull_metrics() {
                    let m = m.payload();
                    metrics = EchoMetrics {
                        erle_db: Some(m.echo_return_loss_enhancement),
                        delay_ms: Some(f64::from(m.delay_ms)),
                    };
                }
                if replies.send(Reply::Captured(result, metrics)).is_err() {
                    return;
                }
            }
            Request::Options(options) => {
                // The pipeline's stages are fixed when it is built: rebuild it (the canceller
                // re-converges within about a second).
                let result = build(&options).map(|p| pipeline = p);
                if replies.send(Reply::Configured(result)).is_err() {
                    return;
                }
            }
        }
    }
}

impl Aec3Canceller {
    /// Builds the pipeline on its worker thread.
    ///
    /// # Errors
    /// [`EngineError::Device`] if the pipeline cannot be built or the thread cannot start.
    pub fn new(options: &AecOptions) -> Result<Self> {
        let (req_tx, req_rx) = channel();
        let (rep_tx, rep_rx) = channel();
        let (ready_tx, ready_rx) = channel();
        let options = *options;
        let worker = std::thread::Builder::new()
            .name("duplex-aec3".into())
            .spawn(move || match build(&options) {
                Ok(p) => {
                    let _ = ready_tx.send(Ok(()));
                    serve(p, req_rx, rep_tx);
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| EngineError::Device(format!("cannot start the aec3 thread: {e}")))?;
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(EngineError::Device(format!(
                    "cannot build the aec3 echo canceller: {e}"
                )))
            }
            Err(_) => {
                return Err(EngineError::Device(
                    "the aec3 echo canceller thread stopped while starting".into(),
                ))
            }
        }
        Ok(Self {
            requests: Some(req_tx),
            replies: rep_rx,
            worker: Some(worker),
            metrics: EchoMetrics::default(),
        })
    }

    fn send(&self, request: Request) -> Result<()> {
        self.requests
            .as_ref()
            .and_then(|r| r.send(request).ok())
            .ok_or_else(|| EngineError::Device("the aec3 echo canceller thread has stopped".into()))
    }

    fn lost() -> EngineError {
        EngineError::Device("the aec3 echo canceller thread has stopped".into())
    }
}

impl EchoCanceller for Aec3Canceller {
    fn name(&self) -> &'static str {
        "aec3"
    }

    fn process_render(&mut self, frame: &[f32]) -> Result<()> {
        // A render error surfaces with the next capture reply.
        self.send(Request::Render(frame.to_vec()))
    }

    fn process_capture(&mut self, frame: &mut [f32]) -> Result<()> {
        self.send(Request::Capture(frame.to_vec()))?;
        match self.replies.recv().map_err(|_| Self::lost())? {
            Reply::Captured(result, metrics) => {
                self.metrics = metrics;
                let out = result.map_err(|e| {
                    EngineError::Device(format!("echo canceller (aec3) refused a frame: {e}"))
                })?;
                frame.copy_from_slice(&out);
                Ok(())
            }
            Reply::Configured(_) => Err(Self::lost()),
        }
    }

    fn metrics(&mut self) -> EchoMetrics {
        self.metrics
    }

    fn set_options(&mut self, options: &AecOptions) -> Result<()> {
        self.send(Request::Options(*options))?;
        match self.replies.recv().map_err(|_| Self::lost())? {
            Reply::Configured(r) => r.map_err(|e| {
                EngineError::Device(format!("cannot rebuild the aec3 echo canceller: {e}"))
            }),
            Reply::Captured(..) => Err(Self::lost()),
        }
    }
}

impl Drop for Aec3Canceller {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop.
        self.requests = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}
