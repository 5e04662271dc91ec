"""SparseSuRNN: a trained `SuRNN` layer for inference that computes only its open neurons.

    engine = layer.sparse()                                        # frozen copy of the weights
    y, state = engine(x, state=None, mask=None, time_offset=0)     # as SuRNN.forward, less gates
    state = engine.step(x_t, state, t)                              # one step of a stream

Backends (`engine.backend`):
* ``native``: the step loop in C (`kernel.c`, loaded by `native.py`); one call per sequence,
  or per step when streaming. The default wherever the library loads.
* ``eager``: the same algorithm in PyTorch (`eager.py`), where no C compiler was at hand.
Both read the rhythmic gate's schedule from a cache: computed once per (length, time_offset)
for whole sequences, and per block of `STREAM_BLOCK` steps for `step`.

A batch of several rows goes to the dense layer instead when that is faster (`prefers_dense`):
the sparse loop reads an open neuron's weights once per row, the dense layer once per step for
all rows at once.
"""
from __future__ import annotations

import copy
import ctypes
from collections import OrderedDict

import torch
from torch import Tensor

from surnn.cell import SuRNN
from surnn.layer_inputs import State, check_inputs, initial_state
from surnn.sparse import eager, native
from surnn.sparse.layout import Packed, Schedule, pack, rhythmic_open, runs_of

STREAM_BLOCK = 1024        # steps of rhythmic schedule computed at once for `step`
_CACHE_SIZE = 8            # (length, offset) schedules kept
_CELL_CODES = {"gru": 0, "rnn": 1, "lstm": 2}
# Dense wins once rows x rate is large: the dense layer's batched matrix products read each
# weight once per step for all rows, the sparse loop once per row. Measured (CPU time, one thread,
# length 512): width 1024 breaks even near rows x rate = 3 (batch 8 at rate 0.5: sparse 1.33x
# dense's time; batch 2 at 0.5: 0.55x); width 256 was still faster sparse at 16 (batch 32, rate
# 0.5: 0.83x). 2 keeps the wide layers on the safe side.
DENSE_ROW_RATE = 2.0


class SparseSuRNN:
    """Inference-only twin of a `SuRNN` layer (float32, CPU, weights frozen at construction).

    Args:
        layer: the trained layer; later changes to it do not reach the engine.
        backend: ``"auto"`` (native if the kernel loads, else eager), ``"native"`` (raise if it
            cannot load) or ``"eager"``.
        dense_fallback: let a batch go to the dense layer where that is faster (`prefers_dense`);
            False keeps every call on the sparse path.

    An engine serves one thread at a time (`step` reuses one call record, and the kernel runs
    without the GIL): give each thread its own.
    """

    def __init__(self, layer: SuRNN, backend: str = "auto", dense_fallback: bool = True):
        if backend not in ("auto", "native", "eager"):
            raise ValueError(f"backend: unknown value {backend!r} (expected one of: auto, native, eager)")
        self.config = layer.config
        self.dense_fallback = dense_fallback
        # The frozen dense layer: the gate code for schedules, and the dense path for big batches.
        self.dense = copy.deepcopy(layer).float().cpu().eval().requires_grad_(False)
        self.packed: Packed = pack(self.dense)
        lib = native.load() if backend != "eager" else None
        if backend == "native" and lib is None:
            raise RuntimeError(f"sparse kernel unavailable: {native.load_error()}")
        self._lib = lib
        self.backend = "native" if lib is not None else "eager"
        self._schedules: OrderedDict[tuple[int, int], Schedule] = OrderedDict()
        if lib is not None:
            self._layer_struct = self._make_layer_struct()
            self._layer_ref = ctypes.byref(self._layer_struct)
            # One call record reused by every stream step: only its pointers change per step.
            self._stream_call = native.Call(T=1)
            self._stream_ref = ctypes.byref(self._stream_call)
            self._stream_start, self._stream_sched = -1, None

    def __repr__(self) -> str:
        cfg = self.config
        return (f"SparseSuRNN({cfg.input_size}, {cfg.hidden_size}, cell={cfg.cell}, gate={cfg.gate}, "
                f"backend={self.backend})")

    # ------------------------------------------------------------------ public calls
    def __call__(self, x: Tensor, state: State | None = None, mask: Tensor | None = None,
                 time_offset: int = 0, *, return_gates: bool = False):
        """Run a whole sequence; returns (y [B, T, H], state), plus gates [B, T, H] if asked.

        Same arguments and results as `SuRNN.forward` (x float [B, T, I], state [B, H] or (h, c),
        mask bool [B, T]); computed in float32 on the CPU.
        """
        y, final, gates, _ = self.run(x, state, mask, time_offset, gates=return_gates)
        return (y, final, gates) if return_gates else (y, final)

    @torch.no_grad()
    def run(self, x: Tensor, state: State | None = None, mask: Tensor | None = None,
            time_offset: int = 0, gates: bool = False) -> tuple[Tensor, State, Tensor | None, int]:
        """`__call__` returning (y, state, gates or None, open (row, neuron, step) count)."""
        cfg = self.config
        B, T = check_inputs(cfg, x, state, mask)
        _check_cpu(x, state, mask)
        if self.prefers_dense(x, mask, time_offset):
            y, final, g = self.dense(x.detach().float(), _float_state(state), mask, time_offset)
            return y, final, (g if gates else None), int(g.sum())
        x = x.detach().float().contiguous()
        h, c = initial_state(cfg, x, state)
        schedule = self.schedule(T, time_offset) if cfg.gate != "event" else None
        drive = self._event_drive(x) if cfg.gate == "event" else None
        if self.backend == "native":
            y, final, g, opened = self._run_native(x, h, c, mask, schedule, 0, drive, True, gates)
        else:
            y, final, g = self._run_eager(x, h, c, mask, schedule, drive)
            opened = int(g.sum())
        return y, final, (g.to(torch.float32) if gates else None), opened

    def step(self, x_t: Tensor, state: State | None, t: int) -> State:
        """One step of a stream: x_t float [B, I], state as `SuRNN`'s (None: zeros), t the step's index.

        Returns the new state. Equal to running the whole sequence with `__call__` step by step.
        """
        if self._lib is not None and self._fast_step_ok(x_t, state, t):
            return self._step_native(x_t, state, t)
        return self._step_checked(x_t, state, t)

    def _fast_step_ok(self, x_t, state, t) -> bool:
        """The common stream case, checked in a few attribute reads: float32, contiguous, CPU, gru/rnn."""
        return (type(state) is Tensor and type(x_t) is Tensor and type(t) is int and t >= 0
                and x_t.dtype is torch.float32 and state.dtype is torch.float32
                and x_t.dim() == 2 and state.dim() == 2 and x_t.shape[0] == state.shape[0]
                and x_t.shape[1] == self.config.input_size and state.shape[1] == self.config.hidden_size
                and not x_t.is_cuda and not state.is_cuda
                and x_t.is_contiguous() and state.is_contiguous() and x_t.device.type == "cpu")

    def _step_native(self, x_t: Tensor, h: Tensor, t: int) -> Tensor:
        call = self._stream_call
        call.B, call.x, call.h0 = x_t.shape[0], x_t.data_ptr(), h.data_ptr()
        call.threads = torch.get_num_threads()
        h1 = torch.empty(h.shape)
        call.h1 = h1.data_ptr()
        if self.config.gate != "event":
            call.run_ptr = self._stream_run_ptr(t)
        if self._lib.surnn_sparse_run(self._layer_ref, self._stream_ref) != 0:
            raise MemoryError("sparse kernel: out of memory")
        return h1

    def _stream_run_ptr(self, t: int) -> int:
        """Address of step t's entry in the run_ptr of the schedule block holding t."""
        start = t - t % STREAM_BLOCK
        if start != self._stream_start:
            sched = self.schedule(STREAM_BLOCK, start)
            self._stream_start, self._stream_sched = start, sched      # keeps the block alive
            self._stream_call.run_start = sched.run_start.data_ptr()
            self._stream_call.run_len = sched.run_len.data_ptr()
        return self._stream_sched.run_ptr.data_ptr() + 4 * (t - start)

    @torch.no_grad()
    def _step_checked(self, x_t: Tensor, state: State | None, t: int) -> State:
        cfg = self.config
        if not isinstance(x_t, Tensor) or x_t.dim() != 2:
            got = f"{x_t.dtype} {list(x_t.shape)}" if isinstance(x_t, Tensor) else type(x_t).__name__
            raise ValueError(f"SparseSuRNN.step x_t: expected a float tensor [batch, {cfg.input_size}], got {got}")
        if isinstance(t, bool) or not isinstance(t, int) or t < 0:
            raise ValueError(f"SparseSuRNN.step t: expected a step index >= 0, got {t!r}")
        x = x_t[:, None]
        check_inputs(cfg, x, state, None)
        _check_cpu(x, state, None)
        x = x.detach().float().contiguous()
        h, c = initial_state(cfg, x, state)
        schedule, row = None, 0
        if cfg.gate != "event":
            start = t - t % STREAM_BLOCK
            schedule, row = self.schedule(STREAM_BLOCK, start), t - start
        if self.backend == "native":
            return self._run_native(x, h, c, None, schedule, row, None, False, False)[1]
        if schedule is not None:
            schedule = _slice(schedule, row)
        drive = self._event_drive(x) if cfg.gate == "event" else None
        return self._run_eager(x, h, c, None, schedule, drive)[1]

    def schedule(self, T: int, time_offset: int = 0) -> Schedule:
        """The rhythmic (or none) gate's open runs for steps time_offset .. time_offset + T - 1, cached."""
        key = (T, time_offset)
        if key in self._schedules:
            self._schedules.move_to_end(key)
            return self._schedules[key]
        open_ = rhythmic_open(self.config, self.dense.gate, T, time_offset)[:, self.packed.perm]
        sched = runs_of(open_.contiguous())
        self._schedules[key] = sched
        while len(self._schedules) > _CACHE_SIZE:
            self._schedules.popitem(last=False)
        return sched

    def prefers_dense(self, x: Tensor, mask: Tensor | None, time_offset: int) -> bool:
        """Whether the dense layer is expected to be faster for this call (only ever for batch > 1)."""
        B, T = x.shape[0], x.shape[1]
        if not self.dense_fallback or B == 1 or T == 0:
            return False
        if self.config.gate == "event":
            rate = float((self._event_drive(x[:, : min(T, 64)].detach().float()) > 0).float().mean())
        else:
            rate = self.schedule(T, time_offset).rate
        return B * rate > DENSE_ROW_RATE

    # ------------------------------------------------------------------ backends
    def _event_drive(self, x: Tensor) -> Tensor:
        p = self.packed
        return torch.nn.functional.linear(x, p.event_weight, p.event_bias).contiguous()   # [B, T, H]

    def _run_eager(self, x, h, c, mask, schedule, drive):
        p = self.packed
        h_e = h.float()[:, p.perm]
        c_e = c.float()[:, p.perm] if c is not None else None
        y, h_e, c_e, gates = eager.run(p, x, h_e, c_e, mask, schedule, drive)
        inv = p.inverse
        final = (h_e[:, inv], c_e[:, inv]) if c_e is not None else h_e[:, inv]
        return y[..., inv], final, gates[..., inv]

    def _make_layer_struct(self) -> native.Layer:
        p, cfg = self.packed, self.config
        ptr = lambda a: a.data_ptr() if a is not None else None                          # noqa: E731
        return native.Layer(_CELL_CODES[cfg.cell], p.G, cfg.input_size, cfg.hidden_size,
                            ptr(p.weight), ptr(p.bias), ptr(p.perm), ptr(p.event_weight),
                            ptr(p.event_bias), ptr(p.event_state_weight))

    def _run_native(self, x, h, c, mask, schedule, row, drive, want_y, want_gates):
        """One kernel call over x [B, T, I]; schedule steps start at `row` of `schedule`."""
        B, T, _ = x.shape
        H = self.config.hidden_size
        h0 = h.float().contiguous()
        c0 = c.float().contiguous() if c is not None else None
        h1 = torch.empty(B, H)
        c1 = torch.empty(B, H) if c is not None else None
        y = torch.empty(B, T, H) if want_y else None
        gates = torch.zeros(B, T, H, dtype=torch.uint8) if want_gates else None
        mask_u8 = mask.to(torch.uint8).contiguous() if mask is not None else None
        call = native.Call(B, T, torch.get_num_threads(), x.data_ptr(), _ptr(mask_u8), None, None, None, _ptr(drive),
                           h0.data_ptr(), _ptr(c0), h1.data_ptr(), _ptr(c1), _ptr(y), _ptr(gates), 0)
        if schedule is not None:
            call.run_ptr = schedule.run_ptr.data_ptr() + 4 * row
            call.run_start, call.run_len = schedule.run_start.data_ptr(), schedule.run_len.data_ptr()
        if self._lib.surnn_sparse_run(self._layer_ref, ctypes.byref(call)) != 0:
            raise MemoryError("sparse kernel: out of memory")
        final = (h1, c1) if c is not None else h1
        return y, final, gates, call.opened


def _ptr(a: Tensor | None) -> int | None:
    return a.data_ptr() if a is not None else None


def _float_state(state):
    if state is None:
        return None
    if isinstance(state, (tuple, list)):
        return tuple(s.detach().float() for s in state)
    return state.detach().float()


def _slice(s: Schedule, row: int) -> Schedule:
    """The one step `row` of a schedule, as a schedule of length 1."""
    lo, hi = int(s.run_ptr[row]), int(s.run_ptr[row + 1])
    return Schedule(s.open[row: row + 1], torch.tensor([0, hi - lo], dtype=torch.int32),
                    s.run_start[lo:hi], s.run_len[lo:hi])


def _check_cpu(x: Tensor, state, mask: Tensor | None) -> None:
    parts = [x, mask] + (list(state) if isinstance(state, (tuple, list)) else [state])
    for a in parts:
        if isinstance(a, Tensor) and a.device.type != "cpu":
            raise ValueError(f"SparseSuRNN: runs on the CPU; got a tensor on {a.device} (move inputs with .cpu())")
