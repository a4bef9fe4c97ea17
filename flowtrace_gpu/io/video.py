"""Video files in and out, streamed through PyAV (package ``av``, FFmpeg inside).

Reading decodes one frame at a time on the reader thread. Gray videos
(``gray``, ``gray16`` pixel formats, e.g. FFV1) come through as (H, W) uint8
or uint16; every other video as 8-bit RGB (H, W, 3). Writing encodes H.264
(libx264, yuv420p, CRF 18) into a temporary file renamed into place when
complete.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from ..errors import FlowtraceError
from . import suffixes
from .recording import RecordingSource, require
from .sources import cut
from .writers import StreamedFileWriter


def _av():
    return require("av", "av", "reading and writing video")


def _decode_format(pix_fmt: str | None) -> tuple[str, np.dtype]:
    """PyAV format to decode to, and the dtype it gives."""
    if pix_fmt in ("gray", "gray8"):
        return "gray", np.dtype(np.uint8)
    if pix_fmt and pix_fmt.startswith("gray") and pix_fmt[4:6].isdigit():
        return "gray16le", np.dtype(np.uint16)  # 10/12/16-bit gray, scaled to 16 bits
    return "rgb24", np.dtype(np.uint8)


class VideoSource(RecordingSource):
    """Frames of the first video stream of a file.

    The frame count comes from the container's metadata (MP4, MOV, AVI);
    where the container has none (often MKV) the packets are counted once at
    open, which reads the file without decoding it. The first frame is
    decoded at open, so an undecodable file fails before any output.

    Parameters
    ----------
    path : path-like
    frames_to_skip : int
        Keep every ``frames_to_skip``-th frame, starting with the first.

    Attributes
    ----------
    fps : float or None
        The stream's average frame rate.
    """

    kind = "a video"
    fix = f"give an intact {suffixes.spoken(suffixes.VIDEO)} file"

    def __init__(self, path, frames_to_skip: int = 1):
        av = _av()
        super().__init__(path, frames_to_skip)
        with self._opening():
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise FlowtraceError(
                        f"{self.path} has no video stream; give a video file ({' '.join(suffixes.VIDEO)})"
                    )
                stream = container.streams.video[0]
                if stream.codec_context is None:
                    raise ValueError("its video stream has no codec FFmpeg knows")
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else None
                self._format, self.dtype = _decode_format(stream.codec_context.pix_fmt)
                n_raw = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            decoder = self._decode()
            first = next(decoder, None)
            decoder.close()
        if first is None or n_raw == 0:
            raise FlowtraceError(f"{self.path} holds no decodable video frames; give a video with frames")
        self._set_count(n_raw)
        self.frame_shape = first.shape

    def _decode(self):
        """Every frame of the file as an array, in order."""
        av = _av()
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # FFmpeg's own frame/slice threads
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=self._format)

    def frames(self, indices, region=None):
        """Yield the frames at ``indices``, cropped to ``region``; sequential reads are decoded once."""
        decoder, position = None, 0  # position: raw index the decoder yields next
        try:
            for i in indices:
                raw = i * self.skip
                if decoder is None or raw < position:  # start, or seek back by restarting
                    if decoder is not None:
                        decoder.close()
                    decoder, position = self._decode(), 0
                frame = None
                while position <= raw:
                    with self._decoding(position):
                        frame = next(decoder, None)
                    if frame is None:
                        raise FlowtraceError(
                            f"{self.path} ended after {position} frames, but its header announced "
                            f"{self.n_raw}; the file may be truncated (re-encode or re-copy it)"
                        )
                    position += 1
                self._check(frame, i)
                yield cut(frame, region)  # a decoder makes whole frames
        finally:
            if decoder is not None:
                decoder.close()


def check_video_dtype(dtype, out) -> None:
    """Refuse images a video cannot hold, before anything is written."""
    if np.dtype(dtype) != np.uint8:
        raise FlowtraceError(
            f"video holds 8-bit; use normalize='frame'/'global' or a .tif output "
            f"(got {np.dtype(dtype)} images for {out})"
        )


class VideoWriter(StreamedFileWriter):
    """Output images as the frames of one H.264 video.

    Images are padded by one replicated row/column where height or width is
    odd (yuv420p needs even sizes). Gray and RGB images alike become yuv420p,
    the pixel format every player takes; read a gray result back with
    ``grayscale=True``.

    Parameters
    ----------
    path : pathlib.Path
        A video file to create (see ``suffixes.VIDEO``; container from the suffix).
    n_images : int
        Images expected; ``close`` checks that all came.
    fps : float
        Frame rate written into the stream.
    crf : int, default 18
        libx264 constant rate factor: 0 lossless .. 51 worst; 18 is visually
        lossless for most footage.
    """

    def __init__(self, path: Path, n_images: int, fps: float, crf: int = 18):
        _av()  # fail now, not at the first image, if PyAV is missing
        super().__init__(path, n_images)
        self.rate = Fraction(fps).limit_denominator(1001)
        self.crf = crf
        self._stream = None

    def _check(self, image: np.ndarray) -> None:
        check_video_dtype(image.dtype, self.path)

    def _open(self, image: np.ndarray):
        height, width = image.shape[:2]
        container = _av().open(self.partial.file, mode="w")
        stream = container.add_stream("libx264", rate=self.rate)
        stream.width, stream.height = width + width % 2, height + height % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf)}
        self._stream = stream
        return container

    def _append(self, image: np.ndarray) -> None:
        height, width = image.shape[:2]
        if height % 2 or width % 2:
            pad = ((0, height % 2), (0, width % 2)) + ((0, 0),) * (image.ndim - 2)
            image = np.pad(image, pad, mode="edge")
        if image.ndim == 3:
            image = image[..., :3]  # alpha has no place in yuv420p
        fmt = "gray" if image.ndim == 2 else "rgb24"
        frame = _av().VideoFrame.from_ndarray(np.ascontiguousarray(image), format=fmt)
        for packet in self._stream.encode(frame):
            self._handle.mux(packet)

    def _finish(self) -> None:
        for packet in self._stream.encode(None):  # flush the encoder
            self._handle.mux(packet)
        self._handle.close()
