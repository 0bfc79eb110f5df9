"""Frame-accurate video access with PyAV.

`FrameReader.frame(ref, i)` returns the RGB frame lerobot returns for frame i of an
episode: the frame presented at `from_timestamp + timestamp[i]` in the (possibly
shared) video file. Random access seeks to the keyframe at or before the target
and decodes forward; stepping forward reuses the open decoder without seeking.
Decoded frames and open containers live in LRU caches. Safe to call from several
threads: each open file has its own lock, and different files decode in parallel
(PyAV releases the GIL while decoding).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np

from core.dataset import VideoRef
from core.errors import VideoError

# Frames this close before the target are converted to RGB and cached on the way.
LOOKBEHIND_FRAMES = 3


def _open(
    path: Path, threads: str | None, thread_count: int | None = None
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise VideoError(f"{path}: cannot open video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: has no video stream")
    stream = container.streams.video[0]
    if threads:
        stream.thread_type = threads
    if thread_count is not None:
        stream.codec_context.thread_count = thread_count
    return container, stream


def _seek_before(container, stream, t: float, fps: float) -> None:
    """Land on the keyframe at or before time t.

    Aim a quarter frame past t: aiming at t itself (or earlier) can land one
    whole GOP early when t is a keyframe whose pts rounds just above the aim.
    """
    tb = stream.time_base or Fraction(1, 1)
    container.seek(max(0, int((t + 0.25 / fps) / tb)), backward=True, any_frame=False, stream=stream)


@dataclass
class _Decoder:
    """One open file: a container, its stream and a forward-decoding cursor."""

    path: Path
    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    lock: threading.Lock = field(default_factory=threading.Lock)
    cursor: Iterator[av.VideoFrame] | None = None
    last_t: float = -1.0
    closed: bool = False
    # Longest keyframe interval seen so far, in frames: decoding forward up to
    # this far is never slower than seeking back to a keyframe.
    gop: int = 1
    last_key_t: float | None = None

    @property
    def time_base(self) -> Fraction:
        return self.stream.time_base or Fraction(1, 1)

    def close(self) -> None:
        self.cursor = None
        self.closed = True
        self.container.close()


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    arr = frame.to_ndarray(format="rgb24")
    arr.flags.writeable = False
    return arr


class FrameReader:
    """Random and sequential access to episode frames, with caches."""

    def __init__(self, cache_bytes: int = 512 * 2**20, max_open: int = 16, decode_threads: int = 1) -> None:
        """`cache_bytes` bounds decoded frames kept (0: none). `decode_threads` is
        per open file for random access: one thread has the lowest latency, since
        frame threading delays output by a frame per thread."""
        self.cache_bytes = cache_bytes
        self.max_open = max_open
        self.decode_threads = decode_threads
        self._lock = threading.Lock()
        self._frames: OrderedDict[tuple[Path, int], np.ndarray] = OrderedDict()
        self._frame_bytes = 0
        self._decoders: OrderedDict[Path, _Decoder] = OrderedDict()

    # ------------------------------------------------------------ caches

    def _cached(self, key: tuple[Path, int]) -> np.ndarray | None:
        with self._lock:
            arr = self._frames.get(key)
            if arr is not None:
                self._frames.move_to_end(key)
            return arr

    def _store(self, key: tuple[Path, int], arr: np.ndarray) -> None:
        if self.cache_bytes <= 0:
            return
        with self._lock:
            if key in self._frames:
                return
            self._frames[key] = arr
            self._frame_bytes += arr.nbytes
            while self._frame_bytes > self.cache_bytes and len(self._frames) > 1:
                _, old = self._frames.popitem(last=False)
                self._frame_bytes -= old.nbytes

    def _decoder(self, path: Path) -> _Decoder:
        with self._lock:
            dec = self._decoders.get(path)
            if dec is not None:
                self._decoders.move_to_end(path)
                return dec
        container, stream = _open(path, None, self.decode_threads)
        dec = _Decoder(path, container, stream)
        evicted: list[_Decoder] = []
        with self._lock:
            if path in self._decoders:  # another thread opened it meanwhile
                evicted.append(dec)
                dec = self._decoders[path]
            else:
                self._decoders[path] = dec
                while len(self._decoders) > self.max_open:
                    evicted.append(self._decoders.popitem(last=False)[1])
        for old in evicted:
            with old.lock:
                old.close()
        return dec

    def clear(self) -> None:
        with self._lock:
            decoders = list(self._decoders.values())
            self._decoders.clear()
            self._frames.clear()
            self._frame_bytes = 0
        for dec in decoders:
            with dec.lock:
                dec.close()

    close = clear

    # ------------------------------------------------------------ access

    def frame(self, ref: VideoRef, index: int) -> np.ndarray:
        """The RGB frame (H, W, 3, uint8, read-only) of the episode's frame `index`."""
        if not 0 <= index < ref.length:
            raise VideoError(
                f"{ref.path}: frame {index} is outside episode {ref.episode} (0..{ref.length - 1})"
            )
        target = ref.timestamp(index)
        fno = round(target * ref.fps)
        key = (ref.path, fno)
        cached = self._cached(key)
        if cached is not None:
            return cached
        for _attempt in range(2):
            dec = self._decoder(ref.path)
            with dec.lock:
                if dec.closed:
                    continue  # evicted between lookup and lock
                return self._decode_to(dec, ref, target, fno)
        raise VideoError(f"{ref.path}: decoder was closed while reading frame {index}")

    def _decode_to(self, dec: _Decoder, ref: VideoRef, target: float, fno: int) -> np.ndarray:
        half = 0.5 / ref.fps
        tb = dec.time_base
        ahead = (target - dec.last_t) * ref.fps
        if dec.cursor is None or not (0.5 < ahead <= dec.gop + 0.5):
            try:
                _seek_before(dec.container, dec.stream, target, ref.fps)
            except (av.error.FFmpegError, OSError) as exc:
                dec.cursor = None
                raise VideoError(f"{ref.path}: cannot seek to {target:.3f}s ({exc})") from exc
            dec.cursor = dec.container.decode(dec.stream)
            dec.last_t = -1.0
            dec.last_key_t = None
        try:
            for frame in dec.cursor:
                if frame.pts is None:
                    continue
                t = float(frame.pts * tb)
                dec.last_t = t
                if frame.key_frame:
                    if dec.last_key_t is not None:
                        dec.gop = max(dec.gop, round((t - dec.last_key_t) * ref.fps))
                    dec.last_key_t = t
                n = round(t * ref.fps)
                if n >= fno - LOOKBEHIND_FRAMES:
                    arr = _to_rgb(frame)
                    self._store((ref.path, n), arr)
                    if abs(t - target) < half:
                        return arr
                if t > target + half:
                    break
        except (av.error.FFmpegError, OSError) as exc:
            dec.cursor = None
            raise VideoError(
                f"{ref.path}: decoding failed near {target:.3f}s "
                f"(episode {ref.episode}, camera '{ref.camera}'): {exc}"
            ) from exc
        dec.cursor = None
        raise VideoError(
            f"{ref.path}: no frame at {target:.3f}s (episode {ref.episode}, camera '{ref.camera}'); "
            "the file is truncated or its timestamps do not match the metadata"
        )

    def frames(self, ref: VideoRef, indices: list[int]) -> list[np.ndarray]:
        """Several frames; sorted order keeps the decoder moving forward."""
        out: dict[int, np.ndarray] = {}
        for i in sorted(set(indices)):
            out[i] = self.frame(ref, i)
        return [out[i] for i in indices]

    def iter_frames(
        self, ref: VideoRef, start: int = 0, stop: int | None = None, threads: str | None = "AUTO"
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Frames start..stop-1 in order, on a container of its own (for playback and export)."""
        stop = ref.length if stop is None else min(stop, ref.length)
        if start >= stop:
            return
        container, stream = _open(ref.path, threads)
        tb = stream.time_base or Fraction(1, 1)
        half = 0.5 / ref.fps
        want = start
        try:
            _seek_before(container, stream, ref.timestamp(start), ref.fps)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = float(frame.pts * tb)
                if t > ref.timestamp(want) + half:
                    raise VideoError(
                        f"{ref.path}: frame {want} of episode {ref.episode} (camera '{ref.camera}') "
                        f"is missing from the video"
                    )
                if abs(t - ref.timestamp(want)) < half:
                    yield want, _to_rgb(frame)
                    want += 1
                    if want >= stop:
                        return
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"{ref.path}: decoding failed at frame {want}: {exc}") from exc
        finally:
            container.close()
        if want < stop:
            raise VideoError(
                f"{ref.path}: video ends before frame {want} of episode {ref.episode} "
                f"(camera '{ref.camera}'); the file is truncated"
            )
