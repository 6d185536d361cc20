"""ctypes marshalling for the simulated NVML: handles, out-parameters, strings, arrays.

Why this exists: pynvml calls C functions with ctypes objects (``byref(c_uint())``,
``create_string_buffer``, arrays of structs, opaque pointer handles) and reads results
back from them. The simulator receives exactly those objects; these helpers read and
write them the way the C library would, so pynvml cannot tell the difference.

Handles are opaque pointers whose value encodes (kind, GPU, GI, CI); pynvml never
dereferences them, it only passes them back.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any

KIND_GPU = 1
KIND_GI = 2
KIND_CI = 3
KIND_MIG = 4


class NvmlReturn(Exception):
    """Raised inside an entry point to return a non-success NVML code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True, slots=True)
class Handle:
    kind: int
    gpu: int
    gi: int = 0
    ci: int = 0

    def encode(self) -> int:
        return (self.kind << 48) | (self.gpu << 32) | (self.gi << 16) | self.ci | (1 << 60)

    @classmethod
    def decode(cls, value: int | None) -> Handle | None:
        if not value or not value >> 60:
            return None
        return cls(
            kind=(value >> 48) & 0xFF,
            gpu=(value >> 32) & 0xFFFF,
            gi=(value >> 16) & 0xFFFF,
            ci=value & 0xFFFF,
        )


INVALID_ARGUMENT = 2


def handle_of(arg: Any) -> Handle:
    """Decode a handle argument (a ctypes pointer, as pynvml passes it)."""
    if isinstance(arg, int):
        value: int | None = arg
    else:
        try:
            value = ctypes.cast(arg, ctypes.c_void_p).value
        except (ctypes.ArgumentError, TypeError):
            value = None
    handle = Handle.decode(value)
    if handle is None:
        raise NvmlReturn(INVALID_ARGUMENT)
    return handle


def target(ref: Any) -> Any:
    """The object behind ``byref(x)``, ``pointer(x)`` or ``x`` itself."""
    if ref is None:
        raise NvmlReturn(INVALID_ARGUMENT)
    inner = getattr(ref, "_obj", None)
    if inner is not None:
        return inner
    if isinstance(ref, ctypes._Pointer):
        return ref.contents
    return ref


def uint(arg: Any) -> int:
    """An unsigned argument passed as a Python int or a ctypes integer."""
    value = getattr(arg, "value", arg)
    if not isinstance(value, int):
        raise NvmlReturn(INVALID_ARGUMENT)
    return value


def set_value(ref: Any, value: int) -> None:
    target(ref).value = value


def store_handle(ref: Any, handle: Handle) -> None:
    """Write a handle into an out-parameter (``byref(c_nvmlDevice_t())``)."""
    obj = target(ref)
    raw = ctypes.c_void_p(handle.encode())
    ctypes.memmove(ctypes.addressof(obj), ctypes.addressof(raw), ctypes.sizeof(ctypes.c_void_p))


def handle_value(pointer_type: Any, handle: Handle) -> Any:
    """A pointer object of ``pointer_type`` carrying ``handle`` (for struct fields, arrays)."""
    return ctypes.cast(ctypes.c_void_p(handle.encode()), pointer_type)


def field_type(struct: Any, name: str) -> Any:
    return dict(type(struct)._fields_)[name]


def store_string(buffer: Any, length: Any, text: str) -> None:
    """Fill a ``create_string_buffer`` like the C library: INSUFFICIENT_SIZE if too short."""
    encoded = text.encode()
    if len(encoded) + 1 > uint(length):
        raise NvmlReturn(7)
    target(buffer).value = encoded


def fill_array(array: Any, count_ref: Any, items: list[Any], write: Any) -> None:
    """The count-then-fill protocol: NULL array -> count only; short array -> INSUFFICIENT_SIZE."""
    count = target(count_ref)
    count.value = len(items)
    if array is None:
        return
    if len(array) < len(items):
        raise NvmlReturn(7)
    for position, item in enumerate(items):
        write(array, position, item)
