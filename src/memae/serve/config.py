"""The server's settings: where it listens, who may call it, what it accepts, how it batches."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """What one request may carry; each refusal is a 413 naming the field.

    ``max_body_bytes``: the request body (JSON or upload). ``max_samples``: rows or images per
    request. ``max_pixels``: height x width of one image, checked before decoding an upload.
    ``max_files``: files in one upload. ``max_video_frames``: frames in one video stream.
    """

    max_body_bytes: int = 20_000_000
    max_samples: int = 1024
    max_pixels: int = 4_000_000
    max_files: int = 64
    max_video_frames: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_samples", "max_pixels", "max_files", "max_video_frames"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class Batching:
    """Micro-batching: requests queued within ``wait_ms`` of the first are scored as one
    forward pass of at most ``max_batch`` samples. ``enabled=False`` scores one request at a
    time (the baseline the load test compares with)."""

    enabled: bool = True
    max_batch: int = 256
    wait_ms: float = 2.0

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if self.wait_ms < 0:
            raise ValueError(f"wait_ms must be >= 0, got {self.wait_ms}")


@dataclass(frozen=True)
class ServeConfig:
    """Everything :func:`memae.serve.app.create_app` needs besides the models.

    A host other than a loopback address needs a ``token``: every request must then carry
    it (:class:`memae.serve.guards.TokenGuard`). ``torch_threads``: intra-op threads of the
    scoring (``None``: torch's default). ``body_timeout``: seconds a request's headers, and
    then its body, may take to arrive; a slower client gets a 408 and its connection closed.
    ``max_connections``: open connections at once; a request beyond them gets uvicorn's 503.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    limits: Limits = Limits()
    batching: Batching = Batching()
    torch_threads: int | None = None
    body_timeout: float = 30.0
    max_connections: int = 1000

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {self.port}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty")
        if not is_loopback(self.host) and self.token is None:
            raise ValueError(
                f"host {self.host!r} is not a loopback address: serving beyond this machine needs --token"
            )
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads must be >= 1, got {self.torch_threads}")
        if not self.body_timeout > 0:
            raise ValueError(f"body_timeout must be > 0 seconds, got {self.body_timeout}")
        if self.max_connections < 1:
            raise ValueError(f"max_connections must be >= 1, got {self.max_connections}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only reaches this machine (``localhost``, 127.0.0.0/8, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
