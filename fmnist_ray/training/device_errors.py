"""What a training error means for its process: out of GPU memory (the run may fit alone), a
broken CUDA context (every later run in this process would fail: the process must go), or
neither. Read from the exception's type names and text, and its chain, without importing torch."""

from __future__ import annotations

from collections.abc import Iterator

# Every form PyTorch and its libraries give a failed allocation: the caching allocator's
# OutOfMemoryError, the runtime's cudaErrorMemoryAllocation as a plain RuntimeError, and the
# libraries' own statuses (a cuBLAS/cuDNN handle or workspace that could not be allocated).
OUT_OF_MEMORY = (
    "CUDA out of memory",
    "CUDA error: out of memory",
    "cudaErrorMemoryAllocation",
    "CUBLAS_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_ALLOC_FAILED",
    "CUDNN_STATUS_NOT_ENOUGH_WORKSPACE",
)
# Sticky errors: after one, the CUDA context refuses every further call in this process (CUDA
# runtime API, "cudaError_t"); only a new process gets a working context.
BROKEN_CONTEXT = (
    "illegal memory access",
    "device-side assert",
    "unspecified launch failure",
    "illegal instruction",
    "misaligned address",
    "invalid program counter",
    "hardware stack error",
    "uncorrectable ECC error",
    "launch timed out",
    "CUDA error: unknown error",
    "CUDA-capable device(s) is/are busy or unavailable",
    "device has fallen off the bus",
    "cudaErrorLaunchFailure",
    "cudaErrorIllegalAddress",
)


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what it was raised from or during (a capture_end error hides the OOM)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def _says(error: BaseException, phrases: tuple[str, ...]) -> bool:
    return any(phrase in str(link) for link in _chain(error) for phrase in phrases)


def is_out_of_memory(error: BaseException) -> bool:
    """The GPU could not give this run the memory it asked for."""
    named = any(
        cls.__name__ == "OutOfMemoryError" for link in _chain(error) for cls in type(link).__mro__
    )
    return named or _says(error, OUT_OF_MEMORY)


def is_broken_context(error: BaseException) -> bool:
    """This process's CUDA context can no longer run anything."""
    return _says(error, BROKEN_CONTEXT)


def headline(error: BaseException) -> str:
    """The error's first line (its type's name when it says nothing)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
