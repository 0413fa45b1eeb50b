"""Source coding of what a device holds, for the traditional digital link (`tokcom.pipelines.digital_link`).

Three codecs, each turning media into *packets* (one `bytes` per frame, audio segment or question) that the
digital link sends as transport blocks, and back:

- text: UTF-8;
- frames/images: baseline JPEG (Pillow, `quality` 1-95, 4:2:0, standard Huffman tables). As in RTP/JPEG
  (RFC 2435) only the entropy-coded scan is sent: the headers (quantization and Huffman tables, frame size) depend
  only on `quality` and the frame shape, so the receiver rebuilds them (`JpegCodec.header`);
- audio: libsndfile through `soundfile`: FLAC (lossless, the whole segment file is sent) or Opus in Ogg (lossy,
  the AMR-WB stand-in). Opus is the only low-bitrate wideband speech-capable codec libsndfile 1.2 offers
  (libsndfile has no AMR-WB; its Vorbis does not go below about 50 kbit/s at 16 kHz, while Opus covers AMR-WB's
  6.6-23.85 kbit/s range with 20 ms frames, SILK/CELT wideband at 16 kHz). As in RTP/Opus (RFC 7587) the Ogg
  identification and comment header pages are session setup, not sent; the Ogg data pages are sent and counted.

Audio is cut into segments of `packet_s` seconds, each coded on its own, so a lost packet loses one segment.

Concealment of lost packets (a failed CRC; retransmission off), `conceal_*` below:
- a frame whose packet is lost (or does not decode) -> the previous good frame, or mid-grey (128) if none yet;
- a lost audio segment -> zeros (silence), the usual packet-loss fill without a codec's own PLC;
- a lost question -> `None`: the base station has no question, gives no answer, and the sample counts as wrong.

Example:

>>> import numpy as np
>>> codec = JpegCodec(quality=50)
>>> frame = np.full((32, 32, 3), 100, np.uint8)
>>> packet = codec.encode(frame)
>>> codec.decode(packet, frame.shape).shape
(32, 32, 3)
>>> decode_text(encode_text("is the piano playing?"))
'is the piano playing?'
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

AUDIO_CODECS = ("flac", "opus")
GREY = 128
# libsndfile 1.2 maps soundfile's `compression_level` in [0, 1] linearly onto the Opus bitrate, 256 kbit/s (0) down
# to 6 kbit/s (1) per channel (src/ogg_opus.c); measured here within the Ogg page overhead.
OPUS_MAX_KBPS, OPUS_MIN_KBPS = 256.0, 6.0
_SOS = b"\xff\xda"  # JPEG start-of-scan marker


def encode_text(text: str) -> bytes:
    """UTF-8 bytes of `text` (a non-empty string)."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"`text` must be a non-empty string, got {text!r}.")
    return text.encode("utf-8")


def decode_text(packet: bytes | None) -> str | None:
    """The received question, or `None` when its packet was lost (concealment: no question, no answer)."""
    if packet is None:
        return None
    return packet.decode("utf-8", errors="replace")


class JpegCodec:
    """Baseline JPEG of uint8 frames `(height, width, 3)`; packets hold only the scan (RFC 2435 style).

    Args:
        quality (`int`, defaults to 75): Pillow JPEG quality in [1, 95].
    """

    def __init__(self, quality: int = 75):
        if isinstance(quality, bool) or not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 95:
            raise ValueError(f"`quality` must be an integer in [1, 95], got {quality!r}.")
        self.quality = int(quality)

    def _jpeg(self, frame: np.ndarray) -> bytes:
        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(frame).save(buffer, format="JPEG", quality=self.quality, optimize=False, subsampling=2)
        return buffer.getvalue()

    def header(self, shape: tuple[int, ...]) -> bytes:
        """Everything up to the scan data (SOI ... SOS segment); depends only on `quality` and `shape`."""
        return _jpeg_header(self.quality, tuple(int(s) for s in shape))

    def encode(self, frame: np.ndarray) -> bytes:
        """`frame` uint8 `(height, width, 3)` -> the entropy-coded scan + EOI (the packet sent)."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
            raise ValueError(f"`frame` must be uint8 (height, width, 3), got {frame.dtype} {frame.shape}.")
        data = self._jpeg(frame)
        header = self.header(frame.shape)
        if not data.startswith(header):
            raise RuntimeError("JPEG header differs from the reference header; RFC 2435 stripping would fail.")
        return data[len(header) :]

    def decode(self, packet: bytes | None, shape: tuple[int, ...]) -> np.ndarray | None:
        """Packet -> uint8 frame of `shape`, or `None` if lost or undecodable."""
        if packet is None:
            return None
        from PIL import Image

        try:
            with Image.open(io.BytesIO(self.header(shape) + packet)) as image:
                frame = np.asarray(image.convert("RGB"))
        except Exception:  # noqa: BLE001 - any decoder failure is a lost frame
            return None
        return frame if frame.shape == tuple(shape) else None


@lru_cache(maxsize=64)
def _jpeg_header(quality: int, shape: tuple[int, ...]) -> bytes:
    data = JpegCodec(quality)._jpeg(np.zeros(shape, np.uint8))
    start = data.index(_SOS)
    length = int.from_bytes(data[start + 2 : start + 4], "big")
    return data[: start + 2 + length]


def conceal_frames(frames: list[np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
    """Lost frames (`None`) -> the previous good frame, or mid-grey before the first. Returns `(frames, *shape)`."""
    out, last = [], np.full(shape, GREY, np.uint8)
    for frame in frames:
        last = last if frame is None else frame
        out.append(last)
    return np.stack(out)


class AudioCodec:
    """Mono float audio -> packets of `packet_s` seconds (FLAC or Opus via libsndfile), and back.

    Args:
        codec (`str`, defaults to `"opus"`): `"flac"` (lossless, 16-bit) or `"opus"` (lossy, Ogg).
        bitrate_kbps (`float`, defaults to 12.0): Opus target bitrate [kbit/s] in [6, 256]; ignored for FLAC.
        packet_s (`float`, defaults to 0.25): segment length [s] coded and sent as one packet.
    """

    def __init__(self, codec: str = "opus", bitrate_kbps: float = 12.0, packet_s: float = 0.25):
        if codec not in AUDIO_CODECS:
            raise ValueError(f"`codec` must be one of {AUDIO_CODECS}, got {codec!r}.")
        bitrate_kbps = float(bitrate_kbps)
        if not OPUS_MIN_KBPS <= bitrate_kbps <= OPUS_MAX_KBPS:
            raise ValueError(f"`bitrate_kbps` must be in [{OPUS_MIN_KBPS}, {OPUS_MAX_KBPS}], got {bitrate_kbps}.")
        if not (isinstance(packet_s, (int, float)) and packet_s > 0):
            raise ValueError(f"`packet_s` must be > 0, got {packet_s!r}.")
        self.codec, self.bitrate_kbps, self.packet_s = codec, bitrate_kbps, float(packet_s)

    @property
    def compression_level(self) -> float:
        """soundfile's `compression_level` giving `bitrate_kbps` for Opus (libsndfile's linear map)."""
        return (OPUS_MAX_KBPS - self.bitrate_kbps) / (OPUS_MAX_KBPS - OPUS_MIN_KBPS)

    def encode(self, waveform: np.ndarray, sampling_rate: int) -> tuple[list[bytes], list[bytes]]:
        """`waveform` `(samples,)` -> (packets sent, session headers kept by the receiver), one per segment."""
        import soundfile

        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim != 1 or waveform.size == 0:
            raise ValueError(f"`waveform` must be a non-empty 1-D array, got shape {waveform.shape}.")
        step = max(1, int(round(self.packet_s * sampling_rate)))
        packets, headers = [], []
        for start in range(0, waveform.size, step):
            buffer = io.BytesIO()
            segment = np.clip(waveform[start : start + step], -1.0, 1.0)
            if self.codec == "flac":
                soundfile.write(buffer, segment, sampling_rate, format="FLAC", subtype="PCM_16")
                headers.append(b"")
                packets.append(buffer.getvalue())
                continue
            soundfile.write(buffer, segment, sampling_rate, format="OGG", subtype="OPUS",
                            compression_level=self.compression_level)  # fmt: skip
            data = buffer.getvalue()
            split = _third_ogg_page(data)  # page 1 OpusHead, page 2 OpusTags: session setup (RFC 7587)
            headers.append(data[:split])
            packets.append(data[split:])
        return packets, headers

    def decode(self, packets: list[bytes | None], headers: list[bytes], sampling_rate: int, num_samples: int):
        """Packets (`None` = lost) -> float32 waveform `(num_samples,)`; lost or undecodable segments are zeros."""
        import soundfile

        step = max(1, int(round(self.packet_s * sampling_rate)))
        out = np.zeros(num_samples, np.float32)
        for index, (packet, header) in enumerate(zip(packets, headers)):
            if packet is None:
                continue
            start = index * step
            length = min(step, num_samples - start)
            try:
                segment, _ = soundfile.read(io.BytesIO(header + packet), dtype="float32")
            except Exception:  # noqa: BLE001 - an undecodable segment is a lost segment
                continue
            segment = segment.reshape(-1)[:length]
            out[start : start + segment.size] = segment
        return out


def _third_ogg_page(data: bytes) -> int:
    """Byte offset of an Ogg stream's third page (pages: 27-byte header, segment table, body; RFC 3533)."""
    offset = 0
    for _ in range(2):
        if data[offset : offset + 4] != b"OggS":
            raise RuntimeError("Not an Ogg page where one was expected.")
        num_segments = data[offset + 26]
        offset += 27 + num_segments + sum(data[offset + 27 : offset + 27 + num_segments])
    return offset


__all__ = [
    "AUDIO_CODECS",
    "AudioCodec",
    "JpegCodec",
    "conceal_frames",
    "decode_text",
    "encode_text",
]
