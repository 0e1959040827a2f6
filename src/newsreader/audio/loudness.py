"""Loudness (ITU-R BS.1770-4 / EBU R 128) of PCM and of edge-format MP3 frames, combinable by parts.

A ``Measurement`` keeps what the integrated loudness of a longer programme needs from one piece:
the K-weighted energy in short chunks, and the piece's true peak. Chunks divide both the 100 ms
step of the 400 ms gating blocks and, at 24 kHz, the 576-sample MP3 frame (96 samples, 4 ms), so
pieces joined at frame boundaries, with silent frames between them, give exactly the gating blocks
of the joined audio: each segment is measured once (cacheable), and an hour of audio is combined
and gated in milliseconds.

Measuring MP3 frames decodes them in this process (``audio.decode``: FFmpeg's decoder, to 32-bit
float, so nothing clips); nothing here re-encodes. K-weighting uses the two biquads of BS.1770
derived for the sample rate (at 48 kHz they are the standard's coefficients); true peak is the
sample peak of the signal oversampled to at least 192 kHz (BS.1770's 4x at 48 kHz; 8x at
24 kHz) by a polyphase FIR. Everything is measured as a stream (``LoudnessStream``,
``FramesLoudness``): audio given in pieces, as it arrives, measures exactly as the whole.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from newsreader.audio.decode import DECODE_ERROR, FrameDecoder
from newsreader.errors import SynthesisError
from newsreader.models import FRAME_BYTES

FloatArray = npt.NDArray[np.float64]
Samples = npt.NDArray[np.floating[Any]]
"""Float samples: float64, or float32 as decoded (measured in float64)."""

FRAME_SAMPLES = 576
"""Samples per edge-format frame (24 ms at 24 kHz)."""
FRAME_RATE = 24_000
ABSOLUTE_GATE = -70.0
RELATIVE_GATE = -10.0
TRUE_PEAK_RATE = 192_000
"""True peak is read on the signal oversampled to at least this rate."""
SILENCE = -math.inf

_BLOCK_HOPS = 4
"""A gating block is 400 ms: four 100 ms steps."""
_FORMAT = b"NRL1"
BLOCK = 1 << 16
"""Samples measured at a time: the working memory is a few blocks, whatever the length."""
HALF_TAPS = 10
"""Input samples on each side that one oversampled value is made from."""


def _chunk_size(rate: int) -> int:
    """Samples per energy chunk: the largest exact division of the 100 ms step into <= 25 parts."""
    if rate <= 0 or rate % 10:
        raise ValueError(f"loudness needs a sample rate that is a multiple of 10 Hz, not {rate}")
    hop = rate // 10
    parts = max(d for d in range(1, 26) if hop % d == 0)
    return hop // parts


@dataclass(frozen=True, eq=False)
class Measurement:
    """The loudness of one piece of audio, in a form that combines with others.

    ``energy[i]`` is the sum of the squared K-weighted samples of chunk ``i`` (``chunk`` samples
    at ``rate``, full scale 1.0); ``peak`` is the true peak, linear (1.0 is 0 dBTP).
    """

    rate: int
    energy: FloatArray
    peak: float

    @property
    def chunk(self) -> int:
        return _chunk_size(self.rate)

    @property
    def seconds(self) -> float:
        return len(self.energy) * self.chunk / self.rate

    @property
    def integrated(self) -> float:
        """Integrated (gated) loudness, LUFS; ``-inf`` when no 400 ms block passes the gates."""
        return integrated_loudness(self.energy, self.rate)

    @property
    def true_peak(self) -> float:
        """True peak, dBTP; ``-inf`` for digital silence."""
        return 20 * math.log10(self.peak) if self.peak > 0 else SILENCE

    def scaled(self, gain_db: float) -> Measurement:
        """The measurement of this audio made ``gain_db`` louder (every sample times one factor)."""
        factor = 10 ** (gain_db / 20)
        return Measurement(self.rate, self.energy * factor * factor, self.peak * factor)

    def to_bytes(self) -> bytes:
        """A compact form to keep beside a cached segment (float32 chunk energies)."""
        header = _FORMAT + self.rate.to_bytes(4, "little") + np.float64(self.peak).tobytes()
        return header + self.energy.astype("<f4").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Measurement:
        """The inverse of ``to_bytes``; ``ValueError`` for anything else."""
        if len(data) < 16 or data[:4] != _FORMAT or (len(data) - 16) % 4:
            raise ValueError("not a stored loudness measurement")
        rate = int.from_bytes(data[4:8], "little")
        peak = float(np.frombuffer(data[8:16], dtype=np.float64)[0])
        energy = np.frombuffer(data[16:], dtype="<f4").astype(np.float64)
        if not (math.isfinite(peak) and peak >= 0) or not np.all(np.isfinite(energy)):
            raise ValueError("stored loudness measurement holds invalid numbers")
        _chunk_size(rate)
        return cls(rate, energy, peak)


def silence(rate: int, samples: int) -> Measurement:
    """Digital silence of ``samples`` samples (rounded up to whole chunks)."""
    chunk = _chunk_size(rate)
    return Measurement(rate, np.zeros(-(-samples // chunk)), 0.0)


def silent_frames(frames: int) -> Measurement:
    """``frames`` silent edge-format frames: six zero chunks each."""
    return silence(FRAME_RATE, frames * FRAME_SAMPLES)


def join(parts: Iterable[Measurement]) -> Measurement:
    """The measurement of the pieces played one after the other.

    Exact when every piece is a whole number of chunks long (always so for edge-format frames),
    up to the few milliseconds where a decoder or the K-filter carries over from one piece into
    the next.
    """
    pieces = list(parts)
    if not pieces:
        raise ValueError("join needs at least one measurement")
    rates = {p.rate for p in pieces}
    if len(rates) != 1:
        raise ValueError(f"cannot join measurements at different rates: {sorted(rates)}")
    energy = np.concatenate([p.energy for p in pieces])
    return Measurement(pieces[0].rate, energy, max(p.peak for p in pieces))


def integrated_loudness(energy: FloatArray, rate: int) -> float:
    """BS.1770-4 gated loudness of chunk energies (mono: channel weight 1)."""
    chunk = _chunk_size(rate)
    return gated_loudness(energy, chunk, rate // 10 // chunk)


def hop_chunks(rate: int) -> int:
    """Energy chunks in one 100 ms step of the gating blocks."""
    return rate // 10 // _chunk_size(rate)


def gated_loudness(energy: FloatArray, chunk: int, hop: int) -> float:
    """BS.1770-4 gated loudness of energies of ``chunk`` samples each, ``hop`` to a 100 ms step.

    ``hop=1`` takes energies already summed per 100 ms step (``chunk`` = samples in a step).
    """
    return gated_loudness_of(lambda: iter((energy,)), chunk, hop)


def gated_loudness_of(parts: Callable[[], Iterator[FloatArray]], chunk: int, hop: int) -> float:
    """``gated_loudness`` of the energies that ``parts()`` yields a part at a time, one after
    the other (it is called twice: once for each gate).

    The same result, exactly, as for the energies joined into one array, but without a whole
    array of block loudnesses (and its temporaries) for a long programme: only the blocks that
    pass the absolute gate are gathered, to be averaged as before.
    """
    gated = _gathered(_block_mean_squares(parts(), chunk, hop), ABSOLUTE_GATE)
    if not len(gated):
        return SILENCE
    relative = -0.691 + 10 * math.log10(float(gated.mean())) + RELATIVE_GATE
    del gated
    kept = _gathered(_block_mean_squares(parts(), chunk, hop), ABSOLUTE_GATE, relative)
    return -0.691 + 10 * math.log10(float(kept.mean()))


def _gathered(blocks: Iterable[FloatArray], *gates: float) -> FloatArray:
    """The mean squares of the blocks louder than every gate (LUFS), in order."""
    kept: list[FloatArray] = [np.zeros(0)]
    for mean_square in blocks:
        with np.errstate(divide="ignore"):
            block_loudness = -0.691 + 10 * np.log10(mean_square)
        passed = np.ones(len(mean_square), dtype=bool)
        for gate in gates:
            passed &= block_loudness > gate
        kept.append(mean_square[passed])
    return np.concatenate(kept)


def _block_mean_squares(parts: Iterable[FloatArray], chunk: int, hop: int) -> Iterator[FloatArray]:
    """The mean square of every 400 ms gating block (``_BLOCK_HOPS * hop`` energies, one block
    every ``hop``), a part at a time: the running sum is carried from part to part, so each
    value is exactly what the whole array's cumulative sum gives."""
    block = _BLOCK_HOPS * hop
    sums = np.zeros(1)  # the running sums from index ``base`` on (sums[0] is the sum before)
    base = 0
    first = 0  # the next block's start
    for part in parts:
        if not len(part):
            continue
        sums = np.concatenate((sums, np.cumsum(np.concatenate((sums[-1:], part)))[1:]))
        end = base + len(sums) - 1  # energies so far
        starts = np.arange(first, end - block + 1, hop)
        if len(starts):
            yield (sums[starts + block - base] - sums[starts - base]) / (block * chunk)
            first = int(starts[-1]) + hop
        keep = min(len(sums), end - first + 1)  # sums from ``first`` on are still needed
        base += len(sums) - keep
        sums = sums[len(sums) - keep :].copy()


def k_weighting(rate: int) -> FloatArray:
    """BS.1770's K-weighting at ``rate`` as second-order sections (scipy's ``sos`` layout).

    The shelving pre-filter and the RLB high-pass are the analogue prototypes behind the
    standard's 48 kHz table, mapped to ``rate`` by the bilinear transform with pre-warping.
    """
    # Pre-filter: high shelf, +4 dB above ~1.7 kHz.
    f0, gain_db, q = 1681.974450955533, 3.999843853973347, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf = [
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
        1.0,
        2 * (k * k - 1) / a0,
        (1 - k / q + k * k) / a0,
    ]
    # RLB: second-order high-pass at ~38 Hz.
    f0, q = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    highpass = [1.0, -2.0, 1.0, 1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0]
    return np.array([shelf, highpass])


def k_filter(sos: FloatArray, samples: Samples, state: FloatArray) -> FloatArray:
    """``samples`` through the cascade ``sos`` (``k_weighting``), in float64, from ``state``
    (shape ``(1, sections, 2)``, updated in place): ``scipy.signal.sosfilt(sos, samples,
    zi=state[0])``, bit for bit."""
    filtered: FloatArray = np.array(samples, dtype=np.float64, order="C").reshape(1, -1)
    _sos_kernel()(sos, filtered, state)
    weighted: FloatArray = filtered[0]
    return weighted


_KERNEL_LOCK = threading.Lock()


@functools.cache
def _sos_kernel() -> Callable[[FloatArray, FloatArray, FloatArray], None]:
    """scipy's compiled second-order-sections filter: what ``scipy.signal.sosfilt`` runs after
    checking its arguments (``kernel(sos, x, zi)``: float64, C order, ``x`` of shape (1, n) and
    ``zi`` of (1, sections, 2) filtered in place; it lets go of the GIL while it runs).

    Loaded from its extension module alone: ``import scipy.signal`` also imports scipy.stats,
    interpolate, optimize and spatial, about 1 s of CPU mostly under the GIL, and a reading did
    that in the middle of its first requests (each step of the climb took 10 to 20 ms longer).
    The module is registered under its own name, so a later ``import scipy.signal`` uses it.
    If scipy keeps it elsewhere one day, ``scipy.signal.sosfilt`` itself is used (tests compare
    the two)."""
    import importlib.machinery
    import importlib.util
    import sys
    from pathlib import Path

    with _KERNEL_LOCK:
        name = "scipy.signal._sosfilt"
        module = sys.modules.get(name)
        if module is None:
            import scipy  # the package alone is light

            folder = Path(scipy.__file__).parent / "signal"
            paths = [folder / f"_sosfilt{end}" for end in importlib.machinery.EXTENSION_SUFFIXES]
            path = next((p for p in paths if p.is_file()), None)
            spec = None
            if path is not None:
                loader = importlib.machinery.ExtensionFileLoader(name, str(path))
                spec = importlib.util.spec_from_file_location(name, path, loader=loader)
            if spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                try:
                    spec.loader.exec_module(module)
                except BaseException:
                    del sys.modules[name]
                    module = None
        kernel = getattr(module, "_sosfilt", None)
    if callable(kernel):
        return cast(Callable[[FloatArray, FloatArray, FloatArray], None], kernel)
    return _public_sosfilt


def _public_sosfilt(sos: FloatArray, x: FloatArray, zi: FloatArray) -> None:
    from scipy.signal import sosfilt

    x[0], zi[0] = sosfilt(sos, x[0], zi=zi[0])


def oversampling(rate: int) -> int:
    """The true-peak oversampling factor for ``rate``: at least 4, and to >= 192 kHz."""
    return max(4, -(-TRUE_PEAK_RATE // rate))


@functools.cache
def interpolator(up: int) -> tuple[FloatArray, float]:
    """The polyphase low-pass for ``up``x oversampling (scipy's ``resample_poly`` design: a
    Kaiser-windowed sinc, beta 5, cut at the input's Nyquist frequency, unity gain at 0 Hz, times
    ``up``), and the most any oversampled value can exceed the largest input sample it is made
    from (the largest L1 norm of one phase).

    Made with numpy alone: ``scipy.signal.firwin`` makes the same taps (to the last bit or two;
    a test compares them), but importing scipy.signal costs about 1 s of CPU (it imports
    scipy.stats, interpolate, optimize and spatial), mostly under the GIL, in the middle of a
    reading."""
    count = 2 * HALF_TAPS * up + 1
    offsets = np.arange(count) - (count - 1) / 2
    taps: FloatArray = np.sinc(offsets / up) / up * np.kaiser(count, 5.0)
    taps = taps / taps.sum() * up
    bound = max(float(np.abs(taps[phase::up]).sum()) for phase in range(up))
    return taps, bound


@functools.cache
def phase_kernel(up: int) -> tuple[FloatArray, FloatArray, float]:
    """The interpolator for ``up``x oversampling laid out for evaluating it anywhere, and what
    bounds its values without evaluating them.

    ``kernel[HALF_TAPS + d, p]`` weighs input ``t + d`` in the oversampled value ``p`` after input
    ``t`` (``p`` = 0 .. up - 1), so the values after ``t`` are ``x[t - H : t + H + 1] @ kernel``:
    exactly what ``upfirdn`` gives, without oversampling the stretch around them.

    Every such value is the same sum taken over the parabola through ``x[t-1], x[t], x[t+1]``
    (``x[t] + s d + c d**2``: s the slope, c the curvature), plus the sum over what the inputs
    differ from it. ``gains[k]`` is the largest absolute phase sum of ``kernel[:, p] * d**k``, so
    the first part is at most ``|x[t]| gains[0] + |s| gains[1] + |c| gains[2]``. Input ``t + d``
    differs from the parabola by at most ``(|d|**3 - |d|) / 6`` times the largest third
    difference of the inputs between (Newton's remainder: the divided difference over four
    integer points is an average of those over consecutive ones), so the second part is at most
    ``slack`` times the largest third difference within ``HALF_TAPS``.
    """
    taps, _ = interpolator(up)
    offsets = np.arange(-HALF_TAPS, HALF_TAPS + 1)
    kernel = np.zeros((len(offsets), up))
    for row, offset in enumerate(offsets):
        for phase in range(up):
            tap = (HALF_TAPS - offset) * up + phase
            if tap < len(taps):
                kernel[row, phase] = taps[tap]
    gains = np.array([np.abs(kernel.T @ offsets.astype(np.float64) ** k).max() for k in range(3)])
    apart = np.abs(offsets).astype(np.float64)
    slack = float((np.abs(kernel).T @ ((apart**3 - apart) / 6)).max())
    return kernel, gains, slack


_BATCH = 512
"""Inputs whose oversampled values are worked out at a time (most likely to hold the peak first);
few enough that the rows and values stay small allocations (no fresh pages each time)."""
_SURE = 1 - 1e-12
"""A bound at most this fraction of the peak so far cannot reach it, whatever the rounding."""


_EDGE = HALF_TAPS + 2
"""Inputs on each side of a block that its oversampled values and their bounds are made from."""
_scratch = threading.local()


def _buffers(size: int) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Four float64 work buffers of ``size``, made once a thread (a fresh array for each step of
    each block costs more in the kernel's page faults than in the arithmetic, in a worker)."""
    held: tuple[FloatArray, ...] | None = getattr(_scratch, "buffers", None)
    if held is None or len(held[0]) < size:
        held = tuple(np.empty(max(size, BLOCK + 2 * _EDGE)) for _ in range(4))
        _scratch.buffers = held
    x, bound, spare, other = (buffer[:size] for buffer in held)
    return x, bound, spare, other


class TruePeak:
    """The true peak of samples given a piece at a time (``add``), read at the end (``finish``).

    The same number, bit for bit, however the samples are cut into pieces: the work goes in
    blocks of ``BLOCK`` samples at fixed places (0, ``BLOCK``, ...), each as soon as the samples
    after it that its values are made from are here, so between pieces only the samples of the
    block under way (and a little context) are held. ``true_peak`` is this over one piece.

    The value is exactly the peak of the whole signal oversampled (zeros before and after it),
    and of the samples themselves, but the oversampled values are worked out only after inputs
    where a bound (``phase_kernel``) says they could beat the peak found so far (in the blocks
    before, and the largest sample of this one): near the peaks of a smooth signal, near the
    loudest samples of others. The most promising first, so the peak so far soon rules out the
    rest. The bound only prunes: whatever it lets through, the largest value is the same.
    """

    def __init__(self, rate: int) -> None:
        self.up = oversampling(rate)
        self.peak = 0.0
        """The peak of the blocks done so far."""
        self._held: Samples = np.zeros(_EDGE, dtype=np.float32)
        """The samples from the next block's start less ``_EDGE`` on (zeros before the first),
        as given (float32 as decoded: half the memory, and exactly the same in float64)."""

    def add(self, samples: Samples) -> None:
        if not len(samples):
            return
        held, size = self._held, BLOCK + 2 * _EDGE
        at, total = 0, len(held) + len(samples)  # ``at``: in ``held`` followed by ``samples``
        while total - at >= size:
            x, *spares = _buffers(size)
            _fill(x, held, samples, at)
            self.peak = _block_peak(x, BLOCK, self.peak, self.up, *spares)
            at += BLOCK
        if at < len(held):
            self._held = np.concatenate((held[at:], samples))
        else:
            self._held = samples[at - len(held) :].copy()

    def finish(self) -> float:
        """The true peak of all the samples (linear, 1.0 = 0 dBTP); the stream is spent."""
        held, at = self._held, 0
        while len(held) - at > _EDGE:
            count = min(BLOCK, len(held) - at - _EDGE)
            x, *spares = _buffers(count + 2 * _EDGE)
            part = held[at : at + count + 2 * _EDGE]
            x[: len(part)] = part
            x[len(part) :] = 0  # zeros after the end
            self.peak = _block_peak(x, count, self.peak, self.up, *spares)
            at += count
        self._held = np.zeros(0)
        return self.peak


def true_peak(samples: Samples, rate: int) -> float:
    """Largest absolute value of ``samples`` oversampled to >= 192 kHz (linear, 1.0 = 0 dBTP)
    (see ``TruePeak``). Float32 samples are worked out in float64, ``BLOCK`` at a time."""
    peak = TruePeak(rate)
    peak.add(samples)
    return peak.finish()


def _fill(out: FloatArray, held: Samples, samples: Samples, at: int) -> None:
    """``out`` from position ``at`` of ``held`` followed by ``samples`` (as float64)."""
    stop = at + len(out)
    first = held[at:stop]
    out[: len(first)] = first
    out[len(first) :] = samples[max(0, at - len(held)) : stop - len(held)]


def _block_peak(
    inputs: FloatArray,
    count: int,
    peak: float,
    up: int,
    bound: FloatArray,
    spare: FloatArray,
    other: FloatArray,
) -> float:
    """The peak so far after the block of ``count`` inputs in the middle of ``inputs`` (with
    ``_EDGE`` inputs of context on each side): the largest of ``peak``, the block's samples and
    the oversampled values after them."""
    from numpy.lib.stride_tricks import sliding_window_view

    kernel, gains, slack = phase_kernel(up)
    edge = _EDGE
    before, here = inputs[edge - 1 : edge - 1 + count], inputs[edge : edge + count]
    peak = max(peak, float(here.max()), -float(here.min()))
    after, limit, work = inputs[edge + 1 : edge + 1 + count], bound[:count], spare[:count]
    np.multiply(np.abs(here, out=limit), gains[0], out=limit)
    np.subtract(after, before, out=work)
    np.abs(work, out=work)
    work *= gains[1] / 2
    limit += work
    np.add(after, before, out=work)
    work /= 2
    work -= here
    np.abs(work, out=work)
    work *= gains[2]
    limit += work
    # The third differences that input t's values depend on start at t - H .. t + H - 3.
    third = _third_differences(inputs, spare, other)
    spread = _running_max(third[2:], 2 * HALF_TAPS - 2, other)[:count]
    spread *= slack
    limit += spread
    rows = sliding_window_view(inputs[2:], 2 * HALF_TAPS + 1)  # rows[j]: x[t-H .. t+H]
    candidates = np.flatnonzero(limit > peak * _SURE)
    candidates = candidates[np.argsort(limit[candidates])[::-1]]
    for first in range(0, len(candidates), _BATCH):
        batch = candidates[first : first + _BATCH]
        batch = batch[limit[batch] > peak * _SURE]
        if not len(batch):
            break
        values = rows[batch] @ kernel
        peak = max(peak, float(values.max()), -float(values.min()))
    return peak


def _third_differences(values: FloatArray, out: FloatArray, spare: FloatArray) -> FloatArray:
    """``abs(np.diff(values, 3))`` in ``out`` (``spare`` is overwritten)."""
    n = len(values)
    first = np.subtract(values[1:], values[:-1], out=out[: n - 1])
    second = np.subtract(first[1:], first[:-1], out=spare[: n - 2])
    third = np.subtract(second[1:], second[:-1], out=out[: n - 3])
    return np.abs(third, out=third)


def _running_max(values: FloatArray, width: int, spare: FloatArray) -> FloatArray:
    """``out[i] = values[i : i + width].max()`` for every whole window (``width`` >= 1), in
    ``values`` or ``spare`` (both are overwritten)."""
    span, out, other, length = 1, values, spare, len(values)
    while 2 * span <= width:  # out[i]: the max of values[i : i + 2 span]
        length -= span
        np.maximum(out[:length], out[span : span + length], out=other[:length])
        out, other, span = other, out, span * 2
    shift = width - span
    length -= shift
    return np.maximum(out[:length], out[shift : shift + length], out=other[:length])


def _blocks(samples: Samples, size: int = BLOCK) -> Iterator[tuple[int, FloatArray]]:
    """``samples`` as float64, ``size`` at a time, with where each block starts."""
    for at in range(0, len(samples), size):
        yield at, np.asarray(samples[at : at + size], dtype=np.float64)


def runs(indexes: npt.NDArray[np.intp], gap: int) -> list[tuple[int, int]]:
    """Sorted indexes grouped into (first, last + 1) runs, merging runs closer than ``gap``."""
    if not len(indexes):
        return []
    breaks = np.flatnonzero(np.diff(indexes) > gap)
    firsts = np.concatenate(([indexes[0]], indexes[breaks + 1]))
    lasts = np.concatenate((indexes[breaks], [indexes[-1]]))
    return [(int(a), int(b) + 1) for a, b in zip(firsts, lasts, strict=True)]


_FILTER_BLOCK = 8192
"""Samples K-weighted at a time: the filter's copies stay small allocations, which a worker
thread reuses, instead of fresh pages (and their page faults) for every block."""


class LoudnessStream:
    """The ``Measurement`` of float samples (full scale 1.0) given a piece at a time (``add``),
    taken at the end (``finish``): equal, every energy and the true peak bit for bit, to
    ``measure_samples`` of all of them at once, however they are cut (``measure_samples`` is
    this over one piece).

    The K-filter runs sample by sample with its state carried from piece to piece; a chunk's
    energy is taken when the chunk is whole (the K-weighted samples of a partial one wait for the
    next piece), and the true peak goes block by block (``TruePeak``). So it holds the filter's
    state, the energies, and a block of samples at most: never the samples of a long piece whole.
    Float32 samples (as decoded) are measured in float64, as if converted first.
    """

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.chunk = _chunk_size(rate)
        self.samples = 0
        """Samples added so far."""
        self._sos = k_weighting(rate)
        self._state: FloatArray = np.zeros((1, len(self._sos), 2))
        """The filter's state, carried from block to block (filtered in place)."""
        self._energy: list[FloatArray] = []
        self._rest: FloatArray = np.zeros(0)  # the K-weighted samples of a partial chunk
        self._peak = TruePeak(rate)

    def add(self, samples: Samples) -> None:
        chunk = self.chunk
        for _, part in _blocks(samples, max(chunk, _FILTER_BLOCK // chunk * chunk)):
            weighted = k_filter(self._sos, part, self._state)
            if len(self._rest):
                weighted = np.concatenate((self._rest, weighted))
            whole = len(weighted) // chunk * chunk
            if whole:
                rows = weighted[:whole].reshape(-1, chunk)
                self._energy.append(np.einsum("ij,ij->i", rows, rows))
            self._rest = weighted[whole:].copy()
        self._peak.add(samples)
        self.samples += len(samples)

    def finish(self) -> Measurement:
        """The measurement of every sample added; a partial last chunk counts whole."""
        if len(self._rest):
            last = np.concatenate((self._rest, np.zeros(self.chunk - len(self._rest))))
            rows = last.reshape(1, -1)
            self._energy.append(np.einsum("ij,ij->i", rows, rows))
            self._rest = np.zeros(0)
        energy = np.concatenate(self._energy) if self._energy else np.zeros(0)
        self._energy = []
        return Measurement(self.rate, energy, self._peak.finish())


def measure_samples(samples: Samples, rate: int) -> Measurement:
    """Measure float samples (full scale 1.0) at ``rate``; a partial last chunk counts whole.

    The work goes ``_FILTER_BLOCK`` samples at a time (the K-filter's state carried over) and
    the true peak ``BLOCK`` at a time (``LoudnessStream``), so it needs a few blocks of memory
    besides the samples, however long they are.
    """
    stream = LoudnessStream(rate)
    stream.add(samples)
    return stream.finish()


def pcm_samples(pcm: bytes) -> FloatArray:
    """16-bit little-endian PCM as floats (full scale 1.0)."""
    if len(pcm) % 2:
        raise ValueError("16-bit PCM needs an even number of bytes")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    samples /= 32768.0
    return samples


def measure_pcm(pcm: bytes, rate: int) -> Measurement:
    """Measure 16-bit little-endian mono PCM at ``rate``."""
    return measure_samples(pcm_samples(pcm), rate)


DECODE_BYTES = 1 << 15
"""Bytes of frames decoded at a time (5.5 s of edge's audio): a long piece is decoded and
measured a part at a time, its samples never in memory whole."""


def _check_whole_frames(mp3: bytes) -> int:
    """The number of frames in ``mp3``; ``ValueError`` unless it is a whole number of them."""
    frames, extra = divmod(len(mp3), FRAME_BYTES)
    if extra:
        raise ValueError(f"{len(mp3)} bytes is not a whole number of {FRAME_BYTES}-byte frames")
    return frames


def _wrong_count(frames: int, got: int) -> SynthesisError:
    return SynthesisError(
        f"{DECODE_ERROR}: {frames} frames gave {got} samples, not {frames * FRAME_SAMPLES} "
        "(it is not in edge's format)"
    )


class FramesLoudness:
    """The ``Measurement`` of bare edge-format frames given a piece at a time (``add``), in
    pieces of any size (a frame may be split between two), taken at the end (``finish``):
    equal, bit for bit, to ``measure_frames`` of all of them joined. It holds the decoder's
    state and a ``LoudnessStream``'s, never the samples of the whole.
    """

    def __init__(self) -> None:
        self.bytes = 0
        """Bytes added so far."""
        self._decoder = FrameDecoder()
        self._stream = LoudnessStream(FRAME_RATE)

    def add(self, data: bytes) -> None:
        """Decode and measure ``data`` (``SynthesisError`` if it cannot be decoded)."""
        self.bytes += len(data)
        for at in range(0, len(data), DECODE_BYTES):
            samples = self._decoder.decode(data[at : at + DECODE_BYTES])
            if len(samples):
                self._stream.add(samples)

    def finish(self) -> Measurement:
        """The measurement; ``SynthesisError`` unless the bytes were whole frames that decoded
        to exactly 576 samples each."""
        rest = self._decoder.flush()
        if len(rest):
            self._stream.add(rest)
        frames, extra = divmod(self.bytes, FRAME_BYTES)
        if extra:
            raise SynthesisError(
                f"{DECODE_ERROR}: {self.bytes} bytes is not a whole number of "
                f"{FRAME_BYTES}-byte frames"
            )
        if self._decoder.samples != frames * FRAME_SAMPLES:
            raise _wrong_count(frames, self._decoder.samples)
        return self._stream.finish()


def decode_frames(mp3: bytes) -> FloatArray:
    """Decode bare edge-format frames: exactly 576 float samples per frame.

    Raises ``SynthesisError`` when the decoder reports any decoding error.
    """
    (samples,) = decoded(mp3, [_check_whole_frames(mp3) * FRAME_SAMPLES])
    return samples.astype(np.float64)


def decoded(mp3: bytes, counts: Sequence[int]) -> Iterator[npt.NDArray[np.float32]]:
    """Decode bare edge-format frames as it goes: ``counts[0]`` float32 samples, then
    ``counts[1]``, ... (576 a frame; ``counts`` adds up to all of them), each decoded only when
    asked for, so a long run never sits in memory whole.

    Raises ``SynthesisError`` when the decoder reports a decoding error, or, after the last
    piece, when the frames gave other than 576 samples each.
    """
    frames = _check_whole_frames(mp3)
    wanted = frames * FRAME_SAMPLES
    if sum(counts) != wanted or min(counts, default=0) < 0:
        raise ValueError(f"pieces of {list(counts)} samples do not make up {wanted}")
    decoder = FrameDecoder()
    parts = (
        decoder.decode(mp3[at : at + DECODE_BYTES]) if at < len(mp3) else decoder.flush()
        for at in range(0, len(mp3) + DECODE_BYTES, DECODE_BYTES)
    )
    held: list[npt.NDArray[np.float32]] = [np.zeros(0, np.float32)]
    have = 0
    for count in counts:
        while have < count:
            part = next(parts, None)
            if part is None:
                raise _wrong_count(frames, decoder.samples)
            held.append(part)
            have += len(part)
        joined = np.concatenate(held) if len(held) != 1 else held[0]
        held, have = [joined[count:].copy()], have - count  # not a view: joined goes
        yield joined[:count]
        del joined  # before the next piece is decoded: one piece in memory at a time
    for _ in parts:
        pass  # the rest: none, if the frames gave 576 samples each
    if decoder.samples != wanted:
        raise _wrong_count(frames, decoder.samples)


def measure_frames(mp3: bytes) -> Measurement:
    """Measure bare edge-format frames (decoded for measuring only; the frames are not touched),
    a part at a time (``FramesLoudness``). ``SynthesisError`` if they cannot be decoded."""
    _check_whole_frames(mp3)
    measuring = FramesLoudness()
    measuring.add(mp3)
    return measuring.finish()


def measure_pieces(pieces: Sequence[bytes]) -> list[Measurement]:
    """Measure several pieces of bare frames decoded as played one after another.

    Each gets the samples of its own frames (576 per frame), so a piece's first 24 ms carry the
    tail of the one before, as when joined.
    """
    counts = [len(piece) // FRAME_BYTES * FRAME_SAMPLES for piece in pieces]
    return _measure_each(decoded(b"".join(pieces), counts))


def measure_apart(pieces: Sequence[bytes]) -> list[Measurement]:
    """Measure pieces of bare frames, each exactly as if decoded alone (a fresh decoder each):
    a piece's measurement is a function of its own bytes (it can be cached by their hash).
    ``SynthesisError`` if one cannot be decoded."""
    return [measure_frames(piece) for piece in pieces]


def _measure_each(pieces: Iterator[npt.NDArray[np.float32]]) -> list[Measurement]:
    """Each piece's measurement, a piece let go before the next one is decoded."""
    out: list[Measurement] = []
    for samples in pieces:
        out.append(measure_samples(samples, FRAME_RATE))
        del samples
    return out


def describe(loudness: float, peak_db: float) -> str:
    """``-16.0 LUFS, true peak -1.4 dBTP`` for a summary line."""

    def number(value: float) -> str:
        return "-inf" if value == SILENCE else f"{value:.1f}"

    return f"{number(loudness)} LUFS, true peak {number(peak_db)} dBTP"


def programme(parts: Sequence[Measurement | int]) -> Measurement:
    """Join segment measurements and silent gaps given as frame counts, in playing order."""
    return join(silent_frames(p) if isinstance(p, int) else p for p in parts)
