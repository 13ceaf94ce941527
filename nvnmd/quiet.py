"""Silencing TensorFlow/deepmd-kit chatter so our own output stays one clear line.

TensorFlow and deepmd-kit's op library write banners (CPU features, missing CUDA) straight to
file descriptor 2 and at process exit. `quiet_native()` points fd 1/2 at /dev/null while a
deepmd-kit call runs; the CLI leaves through `os._exit` so library destructors cannot print.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys


@contextlib.contextmanager
def quiet_native():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    logger = logging.getLogger("deepmd")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
        logger.setLevel(level)
