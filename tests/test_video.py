"""duplex.video: framing within 768x768, JPEG, sources (file, image, camera, screen),
the paced off-loop streamer and the media_resolution mapping. Fixtures are written into
the test's temp folder; no camera is needed (a missing one is part of the test)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from duplex.errors import InvalidInputError
from duplex.video import (
    CameraSource,
    FileSource,
    FrameEncoder,
    ImageSource,
    ScreenSource,
    VideoSource,
    VideoSourceError,
    VideoStreamer,
    encode_for_live,
    encode_jpeg,
    fit_frame,
    media_resolution_enum,
    open_source,
)

pytestmark = pytest.mark.timeout(60)

BITS, BLOCK = 7, 40  # the frame index as a 7-bit barcode of 40-pixel columns


def barcode_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """A BGR frame whose columns spell `index` in binary (most significant bit left)."""
    frame = np.zeros((height, width, 3), np.uint8)
    for bit in range(BITS):
        if index >> (BITS - 1 - bit) & 1:
            frame[:, bit * BLOCK : (bit + 1) * BLOCK] = 255
    return frame


def read_barcode(frame: np.ndarray) -> int:
    """The index `barcode_frame` drew (survives JPEG and MJPG)."""
    scale = frame.shape[1] / 320
    value = 0
    for bit in range(BITS):
        x = int((bit + 0.5) * BLOCK * scale)
        value = value << 1 | int(frame[:, x].mean() > 128)
    return value


def decode(jpeg: bytes) -> np.ndarray:
    """JPEG bytes back to a BGR frame (asserting they are a valid JPEG)."""
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    frame = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert frame is not None
    return frame


@pytest.fixture
def video_file(tmp_path: Path):
    """Factory: an MJPG .avi at 30 FPS whose frames carry their index as a barcode."""

    def make(seconds: float, fps: int = 30, name: str = "clip.avi") -> Path:
        path = tmp_path / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (320, 240))
        assert writer.isOpened()
        for i in range(int(seconds * fps)):
            writer.write(barcode_frame(i))
        writer.release()
        return path

    return make


def natural_image(width: int, height: int, seed: int = 1) -> np.ndarray:
    """Gradients, shapes and noise: something JPEG quality visibly changes."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    img = np.stack([x * 255, y * 255, (x * y) * 255], axis=2)
    img += rng.normal(0, 20, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for i in range(20):
        cv2.circle(img, (int(rng.integers(width)), int(rng.integers(height))),
                   int(rng.integers(5, max(6, width // 8))), tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
    return img


class ArraySource(VideoSource):
    """A synthetic source returning one frame; `delay_s` simulates a slow read."""

    def __init__(self, frame: np.ndarray, delay_s: float = 0.0) -> None:
        super().__init__("synthetic")
        self.frame, self.delay_s = frame, delay_s
        self.read_threads: set[int] = set()
        self.closed_calls = 0

    def _open(self) -> None:
        pass

    def _read(self) -> np.ndarray:
        self.read_threads.add(threading.get_ident())
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.frame

    def _close(self) -> None:
        self.closed_calls += 1


async def collect(streamer: VideoStreamer, limit_s: float, max_frames: int = 10_000,
                  consumer_delay_s: float = 0.0):
    """Frames (with their arrival times) until the stream ends, `limit_s` passes or
    `max_frames` arrive; then the events."""
    got: list = []

    async def run() -> None:
        async with streamer:
            async for frame in streamer.frames():
                got.append((time.monotonic(), frame))
                if len(got) >= max_frames:
                    break
                if consumer_delay_s:
                    await asyncio.sleep(consumer_delay_s)

    try:
        await asyncio.wait_for(run(), limit_s)
    except asyncio.TimeoutError:
        pass
    events = []
    while not streamer.events.empty():
        events.append(streamer.events.get_nowait())
    return got, events


# --- framing ---------------------------------------------------------------------------

@pytest.mark.parametrize("size, expected", [
    ((1920, 1080), (768, 432)),   # landscape
    ((1080, 1920), (432, 768)),   # portrait
    ((3840, 2160), (768, 432)),   # 4K
    ((2000, 2000), (768, 768)),   # square
    ((1001, 999), (768, 766)),    # odd sizes
    ((769, 3), (768, 3)),         # extreme strip
    ((5000, 1), (768, 1)),        # never below 1 pixel
    ((768, 768), (768, 768)),     # exactly fits
    ((640, 480), (640, 480)),     # small: not upscaled
    ((17, 33), (17, 33)),
])
def test_fit_frame_keeps_aspect_and_fits(size, expected):
    width, height = size
    frame = np.zeros((height, width, 3), np.uint8)
    out = fit_frame(frame)
    assert (out.shape[1], out.shape[0]) == expected
    assert max(out.shape[:2]) <= 768
    if max(size) > 768:
        scale = 768 / max(size)
        assert abs(out.shape[1] - max(1.0, width * scale)) <= 0.5 + 1e-9
        assert abs(out.shape[0] - max(1.0, height * scale)) <= 0.5 + 1e-9
    else:
        assert out is frame  # untouched, not even copied


def test_fit_frame_other_layouts_and_max_side():
    assert fit_frame(np.zeros((1080, 1920), np.uint8)).shape == (432, 768)
    assert fit_frame(np.zeros((1080, 1920, 4), np.uint8)).shape == (432, 768, 4)
    assert fit_frame(np.zeros((1000, 500, 3), np.uint8), max_side=100).shape == (100, 50, 3)
    with pytest.raises(ValueError, match="max_side"):
        fit_frame(np.zeros((10, 10, 3), np.uint8), max_side=0)
    with pytest.raises(ValueError, match="empty"):
        fit_frame(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(ValueError, match="numpy array"):
        fit_frame([[1, 2]])


def test_fit_frame_uses_area_interpolation():
    # A 1-pixel checkerboard shrunk 2.5x: area averaging gives even grey, nearest-
    # neighbour or bilinear sampling would give stripes of black and white (aliasing).
    board = ((np.indices((1080, 1920)).sum(axis=0) % 2) * 255).astype(np.uint8)
    out = fit_frame(board)
    assert abs(float(out.mean()) - 127.5) < 2
    assert float(out.std()) < 10


def test_encode_jpeg_valid_and_quality_changes_size():
    img = natural_image(1280, 720)
    sizes = {}
    for quality in (60, 80, 95):
        jpeg = encode_jpeg(img, quality=quality)
        back = decode(jpeg)
        assert back.shape == img.shape
        assert np.abs(back.astype(int) - img).mean() < 25
        sizes[quality] = len(jpeg)
    assert sizes[60] < sizes[80] < sizes[95]
    assert encode_jpeg(np.zeros((10, 10), np.uint8))  # grey works
    assert decode(encode_jpeg(np.zeros((10, 12, 4), np.uint8))).shape == (10, 12, 3)  # alpha dropped


@pytest.mark.parametrize("bad, match", [
    (dict(quality=0), "1 to 100"), (dict(quality=101), "1 to 100"), (dict(quality=80.5), "1 to 100"),
])
def test_encode_jpeg_rejects_bad_quality(bad, match):
    with pytest.raises(ValueError, match=match):
        encode_jpeg(np.zeros((8, 8, 3), np.uint8), **bad)


def test_encode_jpeg_rejects_float_frames_with_a_fix():
    with pytest.raises(InvalidInputError, match=r"uint8.*astype\(np.uint8\)"):
        encode_jpeg(np.zeros((8, 8, 3), np.float32))


def test_encode_for_live_returns_bytes_and_size():
    img = natural_image(1920, 1080)
    jpeg, width, height = encode_for_live(img)
    assert (width, height) == (768, 432)
    assert decode(jpeg).shape == (432, 768, 3)
    small = encode_for_live(natural_image(320, 200), quality=60)
    assert (small.width, small.height) == (320, 200)


def test_frame_encoder_max_bytes_bounds_the_size():
    img = natural_image(1920, 1080)
    free = FrameEncoder(quality=95).encode(img)
    capped = FrameEncoder(quality=95, max_bytes=len(free.jpeg) // 2).encode(img)
    assert len(capped.jpeg) <= len(free.jpeg) // 2
    assert (capped.width, capped.height) == (768, 432)


# --- sources ---------------------------------------------------------------------------

def test_file_source_picks_frames_by_wall_clock(video_file):
    now = [100.0]
    src = FileSource(video_file(3.0), clock=lambda: now[0])
    with src:
        assert src.fps == 30 and src.frame_count == 90 and src.duration_s == 3.0
        picked = []
        for t in (0.0, 0.0, 0.5, 1.0, 1.1, 2.0, 2.95):
            now[0] = 100.0 + t
            picked.append(read_barcode(src.read()))
        assert picked == [0, 0, 15, 30, 33, 60, 88]
        now[0] = 103.0
        assert src.read() is None  # ended
    assert not src.is_open


def test_file_source_loops(video_file):
    now = [0.0]
    with FileSource(video_file(1.0), loop=True, clock=lambda: now[0]) as src:
        picked = []
        for t in (0.0, 0.5, 1.2, 2.9, 3.1):
            now[0] = t
            picked.append(read_barcode(src.read()))
    assert picked == [0, 15, 6, 27, 3]


def test_file_source_errors(tmp_path):
    with pytest.raises(VideoSourceError, match="does not exist: check the path"):
        FileSource(tmp_path / "missing.mp4").open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(VideoSourceError, match="could not be opened: is it a video"):
        FileSource(junk).open()
    with pytest.raises(VideoSourceError, match="is a folder"):
        FileSource(tmp_path).open()


def test_image_source_returns_the_same_frame(tmp_path):
    img = natural_image(400, 300)
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), img)
    with ImageSource(path) as src:
        first, second = src.read(), src.read()
        assert np.array_equal(first, img)
        assert first is second
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(VideoSourceError, match="could not be decoded"):
        ImageSource(bad).open()
    with pytest.raises(VideoSourceError, match="does not exist"):
        ImageSource(tmp_path / "nope.jpg").open()


def test_read_before_open_says_what_to_do(tmp_path):
    with pytest.raises(VideoSourceError, match=r"not open: call open\(\)"):
        ImageSource(tmp_path / "x.png").read()


def test_open_source_specs(tmp_path, video_file):
    cam = open_source("camera")
    assert isinstance(cam, CameraSource) and cam.index == 0 and not cam.is_open
    assert open_source("camera:1").index == 1
    assert open_source(" CAMERA:2 ").index == 2
    assert open_source(3).index == 3
    assert open_source("screen").monitor == 1
    assert open_source("screen:0").monitor == 0
    assert isinstance(open_source("screen:2"), ScreenSource)
    assert open_source("none") is None and open_source(None) is None
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.zeros((4, 4, 3), np.uint8))
    assert isinstance(open_source(str(png)), ImageSource)
    odd = tmp_path / "picture.data"  # an image without an image extension
    odd.write_bytes(png.read_bytes())
    assert isinstance(open_source(odd), ImageSource)
    clip = open_source(video_file(0.2), loop=True)
    assert isinstance(clip, FileSource) and clip.loop
    src = ImageSource(png)
    assert open_source(src) is src
    for bad in ("camera:x", "screen:-1", "camera:"):
        with pytest.raises(ValueError, match="after '(camera|screen):' comes a number"):
            open_source(bad)
    with pytest.raises(VideoSourceError, match="'camera', 'camera:N'.*check the path"):
        open_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(VideoSourceError, match="is a folder"):
        open_source(tmp_path)


def test_missing_camera_is_an_error_event_quickly():
    start = time.monotonic()
    got, events = asyncio.run(collect(VideoStreamer(CameraSource(97)), limit_s=10))
    assert time.monotonic() - start < 5
    assert got == []
    assert [e.kind for e in events] == ["error"]
    assert "camera 97 could not be opened: is a camera connected" in events[0].message
    with pytest.raises(VideoSourceError, match="camera 97 could not be opened"):
        CameraSource(97).open()


@pytest.fixture
def display(monkeypatch):
    """An X display for mss: the current one (yields its name), else a private 1280x720
    Xvfb (yields "xvfb"), else skip."""
    if os.environ.get("DISPLAY"):
        yield os.environ["DISPLAY"]
        return
    if not shutil.which("Xvfb"):
        pytest.skip("no display and no Xvfb: screen capture not tested (apt-get install xvfb)")
    # -displayfd: Xvfb picks a free display number and writes it to the pipe once ready.
    # -noreset: otherwise the server resets whenever its last client leaves and refuses
    # connections meanwhile (a desktop session always has clients, so never resets).
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x720x24", "-nolisten", "tcp", "-noreset"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as ready:
            number = ready.readline().strip()  # EOF (empty) if Xvfb died
        if not number.isdigit():
            pytest.skip("Xvfb did not start")
        monkeypatch.setenv("DISPLAY", f":{number}")
        yield "xvfb"
    finally:
        proc.terminate()
        proc.wait(5)


def test_screen_source_grabs_one_monitor(display):
    with ScreenSource(1) as src:
        frame = src.read()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    if display == "xvfb":  # our private 1280x720 screen
        assert frame.shape == (720, 1280, 3)
    with pytest.raises(VideoSourceError, match="screen 9 does not exist: this display has"):
        ScreenSource(9).open()


def test_screen_source_without_display_says_why(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if os.name != "posix" or os.uname().sysname != "Linux":
        pytest.skip("$DISPLAY matters on Linux only")
    with pytest.raises(VideoSourceError, match=r"screen capture is unavailable.*\$DISPLAY"):
        ScreenSource(1).open()


# --- streamer ---------------------------------------------------------------------------

def test_streamer_takes_file_frames_by_time_and_ends(video_file):
    path = video_file(2.0)
    start = time.monotonic()
    got, events = asyncio.run(collect(VideoStreamer(path, fps=2.0), limit_s=8))
    took = time.monotonic() - start
    indices = [read_barcode(decode(f.jpeg)) for _, f in got]
    assert 3 <= len(indices) <= 5, indices
    for i, index in enumerate(indices):  # frame i is taken at i/2 s -> index 15*i
        assert abs(index - 15 * i) <= 4, indices
    assert [e.kind for e in events] == ["opened", "ended"]
    assert "ended" in events[-1].message and "loop=True" in events[-1].message
    assert 1.5 < took < 4
    assert [f.sequence for _, f in got] == list(range(len(got)))
    assert all((f.width, f.height) == (320, 240) for _, f in got)


def test_streamer_reports_missing_and_broken_files(tmp_path):
    with pytest.raises(VideoSourceError, match="check the path"):
        VideoStreamer(str(tmp_path / "gone.mp4"))  # a spec is checked at once
    got, events = asyncio.run(collect(VideoStreamer(FileSource(tmp_path / "gone.mp4")), limit_s=5))
    assert got == [] and [e.kind for e in events] == ["error"]
    assert "does not exist" in events[0].message
    junk = tmp_path / "junk.avi"
    junk.write_bytes(os.urandom(5000))
    got, events = asyncio.run(collect(VideoStreamer(junk), limit_s=5))
    assert got == [] and events[-1].kind == "error" and "could not be opened" in events[-1].message


def test_streamer_read_error_ends_cleanly():
    class Failing(ArraySource):
        def _read(self):
            if self.calls == 2:
                raise VideoSourceError("camera 5 stopped delivering frames: was it unplugged?")
            self.calls += 1
            return self.frame

    src = Failing(np.zeros((48, 64, 3), np.uint8))
    src.calls = 0
    seen = []
    got, events = asyncio.run(collect(VideoStreamer(src, fps=20, on_event=seen.append), limit_s=5))
    assert len(got) == 2
    assert [e.kind for e in events] == ["opened", "error"] == [e.kind for e in seen]
    assert "unplugged" in events[-1].message
    assert src.closed_calls == 1 and not src.is_open


def test_streamer_image_and_rate(tmp_path):
    path = tmp_path / "still.jpg"
    cv2.imwrite(str(path), natural_image(1600, 1200))
    streamer = VideoStreamer(str(path), fps=4.0)
    got, events = asyncio.run(collect(streamer, limit_s=2.6))
    # 4 FPS over 2.6 s: frames at 0, 0.25 .. 2.5 -> 11; allow a loaded machine's slack.
    assert 8 <= len(got) <= 12, len(got)
    assert [e.kind for e in events] == ["opened"]
    assert all((f.width, f.height) == (768, 576) for _, f in got)
    stamps = np.array([f.timestamp for _, f in got])
    # Absolute deadlines: frame n is due at start + n/4, so lateness does not accumulate.
    lateness = stamps - stamps[0] - np.arange(len(stamps)) * 0.25
    assert np.all(lateness > -0.02) and np.all(lateness < 0.15), lateness
    assert not streamer.source.is_open


def test_streamer_skips_deadlines_when_frames_are_slow():
    src = ArraySource(np.zeros((100, 100, 3), np.uint8), delay_s=0.3)
    streamer = VideoStreamer(src, fps=5.0)  # period 0.2 s, each frame takes 0.3 s
    got, _ = asyncio.run(collect(streamer, limit_s=2.1))
    # Every other deadline is skipped: one frame per 0.4 s, not a growing backlog.
    assert 4 <= len(got) <= 6, len(got)
    assert streamer.deadlines_skipped >= 3
    gaps = np.diff([f.timestamp for _, f in got])
    assert np.all(gaps > 0.35), gaps


def test_streamer_keeps_only_the_newest_frame_for_a_slow_consumer():
    streamer = VideoStreamer(ArraySource(np.zeros((64, 64, 3), np.uint8)), fps=10.0)
    got, _ = asyncio.run(collect(streamer, limit_s=2.0, consumer_delay_s=0.45))
    assert 3 <= len(got) <= 6
    assert streamer.frames_replaced >= 8
    sequences = [f.sequence for _, f in got]
    assert sequences == sorted(sequences) and sequences[-1] - sequences[0] > len(got)
    for arrived, frame in got:  # no backlog: every frame is at most about one period old
        assert arrived - frame.timestamp < 0.25


def test_streamer_never_encodes_on_the_event_loop():
    # 4K frames (~10 ms of resize + encode each) from a source whose read blocks 60 ms,
    # like a camera waiting for its next frame: either one on the loop would stall it.
    big = np.tile(natural_image(960, 540), (4, 4, 1))
    src = ArraySource(big, delay_s=0.06)
    streamer = VideoStreamer(src, fps=10.0)

    async def main():
        loop = asyncio.get_running_loop()
        loop_thread = threading.get_ident()
        stalls: list[float] = []
        stop = False

        async def ticker():
            last = loop.time()
            while not stop:
                await asyncio.sleep(0.002)
                now = loop.time()
                stalls.append(now - last - 0.002)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        got, _ = await collect(streamer, limit_s=1.5)
        stop = True
        await tick
        return got, stalls, loop_thread

    got, stalls, loop_thread = asyncio.run(main())
    assert len(got) >= 8
    assert loop_thread not in src.read_threads and len(src.read_threads) == 1
    assert max(stalls) < 0.050, f"event loop stalled {max(stalls) * 1000:.1f} ms"
    assert all((f.width, f.height) == (768, 432) for _, f in got)


def test_streamer_outlives_a_cancelled_iteration_and_closes_itself_at_the_end(video_file):
    async def main():
        src = ArraySource(np.zeros((32, 32, 3), np.uint8))
        streamer = VideoStreamer(src, fps=20)
        first: list = []

        async def consume(into: list, limit: int) -> None:
            async for frame in streamer.frames():
                into.append(frame)
                if len(into) == limit:
                    break

        task = asyncio.create_task(consume(first, 1000))
        await asyncio.sleep(0.3)
        task.cancel()  # like a Live session's send task at a reconnect
        await asyncio.gather(task, return_exceptions=True)
        assert first and streamer.running and src.is_open
        await asyncio.sleep(0.2)
        second: list = []
        await consume(second, 2)
        assert second[0].sequence > first[-1].sequence + 1  # the newest frame, no backlog
        await streamer.aclose()
        assert not src.is_open and not streamer.running
        with pytest.raises(RuntimeError, match="closed"):
            await streamer.frames().__anext__()

        # A file that ends closes itself, even without `async with`.
        clip = VideoStreamer(video_file(0.3, name="short.avi"), fps=10)
        frames = [f async for f in clip.frames()]
        assert frames and not clip.source.is_open and not clip.running
        assert [e.kind for e in clip.drain_events()] == ["opened", "ended"]
        assert clip.drain_events() == []
        assert [f async for f in clip.frames()] == []  # after the end: nothing, no error

    asyncio.run(main())


def test_streamer_rejects_bad_arguments():
    src = ArraySource(np.zeros((8, 8, 3), np.uint8))
    for fps in (0, -1, 100, "1"):
        with pytest.raises(ValueError, match="fps"):
            VideoStreamer(src, fps=fps)
    with pytest.raises(ValueError, match="quality"):
        VideoStreamer(src, quality=0)
    with pytest.raises(ValueError, match="none"):
        VideoStreamer("none")


def test_frame_to_blob_and_early_exit_closes_the_source():
    src = ArraySource(natural_image(64, 48))
    got, _ = asyncio.run(collect(VideoStreamer(src, fps=10), 2, max_frames=1))
    assert src.closed_calls == 1 and not src.is_open  # leaving `async with` early closed it
    blob = got[0][1].to_blob()
    assert blob.mime_type == "image/jpeg" and decode(blob.data).shape == (48, 64, 3)


# --- media_resolution -------------------------------------------------------------------

def test_media_resolution_enum():
    from google.genai import types

    assert media_resolution_enum("low") is types.MediaResolution.MEDIA_RESOLUTION_LOW
    assert media_resolution_enum("Medium") is types.MediaResolution.MEDIA_RESOLUTION_MEDIUM
    assert media_resolution_enum("HIGH") is types.MediaResolution.MEDIA_RESOLUTION_HIGH
    assert media_resolution_enum("MEDIA_RESOLUTION_LOW") is types.MediaResolution.MEDIA_RESOLUTION_LOW
    assert media_resolution_enum(types.MediaResolution.MEDIA_RESOLUTION_HIGH) is types.MediaResolution.MEDIA_RESOLUTION_HIGH
    for bad in ("ultra", "", None, 1, "unspecified"):
        with pytest.raises(ValueError, match="'low'.*'medium'.*'high'"):
            media_resolution_enum(bad)
