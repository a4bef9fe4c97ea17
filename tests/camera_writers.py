"""Camera and video files written by the tests, from the documented layouts (not by the readers' code)."""

import struct

import numpy as np


def pack_bits(values, bits):
    """``values`` as one MSB-first bit stream of ``bits`` bits each (P10, 12L, MRAW 12-bit)."""
    words = np.asarray(values, dtype=">u2").reshape(-1, 1).view(np.uint8)
    stream = np.unpackbits(words, axis=1)[:, 16 - bits:]
    return np.packbits(stream.reshape(-1)).tobytes()


def write_cine(path, frames, fps=1000, bottom_up=True, compression=0, bi_compression=0,
               annotation=b"", row_align=1, cfa=0, real_bpp=None):
    """A cine file as the Vision Research layout documents it (see io/cine.py).

    ``frames`` are written as given, in display order: bottom-up files store
    the last row first. With ``bi_compression`` 256 (P10) or 1024 (12L) the
    values are packed 10 or 12 bits MSB first, top-down.
    """
    frames = np.asarray(frames)
    n, h, w = frames.shape[:3]
    color = frames.ndim == 4
    packed = bi_compression in (256, 1024)
    bits = 16 if packed else frames.dtype.itemsize * 8 * (3 if color else 1)
    if real_bpp is None:
        real_bpp = 12 if frames.dtype == np.uint16 else 8
    setup = bytearray(1024)
    struct.pack_into("<H", setup, 0, min(fps, 65535))  # FrameRate16
    setup[140:142] = b"ST"
    struct.pack_into("<H", setup, 142, len(setup))  # Length
    struct.pack_into("<I", setup, 768, fps)  # FrameRate
    struct.pack_into("<I", setup, 808, cfa)  # CFA
    struct.pack_into("<I", setup, 896, real_bpp)  # RealBPP
    off_setup = 44 + 40
    off_offsets = off_setup + len(setup)
    images = []
    for frame in frames:
        if packed:
            data = pack_bits(frame, 10 if bi_compression == 256 else 12)
        else:
            rows = frame[::-1] if bottom_up else frame
            rows = rows[..., ::-1] if color else rows  # stored BGR
            raw = np.ascontiguousarray(rows, dtype=rows.dtype.newbyteorder("<")).reshape(h, -1)
            raw = raw.view(np.uint8)
            stride = -(-raw.shape[1] // row_align) * row_align
            padded = np.zeros((h, stride), np.uint8)
            padded[:, :raw.shape[1]] = raw
            data = padded.tobytes()
        sizes = struct.pack("<I", 8 + len(annotation)), struct.pack("<I", len(data))
        images.append(sizes[0] + annotation + sizes[1] + data)
    offsets = list(np.cumsum([off_offsets + 8 * n] + [len(im) for im in images[:-1]]))
    header = struct.pack("<2sHHHiIiIIIIQ", b"CI", 44, compression, 1, 0, n, 0, n, 44, off_setup,
                         off_offsets, 0)
    bitmap = struct.pack("<IiiHHIIiiII", 40, w, h if bottom_up else -h, 1, bits, bi_compression,
                         len(images[0]), 0, 0, 0, 0)
    path.write_bytes(header + bitmap + bytes(setup) + struct.pack(f"<{n}q", *offsets) + b"".join(images))
    return path


def write_ffv1(path, frames, fps=25):
    """A lossless FFV1 video (MKV or AVI by the suffix) of 8-bit gray, 16-bit gray or RGB frames."""
    import av

    frames = np.asarray(frames)
    h, w = frames.shape[1:3]
    if frames.ndim == 4:
        pix_fmt, fmt = "bgr0", "rgb24"
    else:
        pix_fmt = fmt = "gray" if frames.dtype == np.uint8 else "gray16le"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format=fmt)):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
