"""Keep TensorFlow's native chatter out of the console without hiding real errors.

TensorFlow 2.21 prints oneDNN/CUDA notices from C++ before `TF_CPP_MIN_LOG_LEVEL` is read, and the
TFLite converter and interpreter print to the process's stderr directly. `native_output_captured`
sends file descriptor 2 to a temporary file for a block and replays it if the block raises.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def native_output_captured():
    """Capture what native code writes to stderr inside the block; show it only if the block raises."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def import_tensorflow():
    """Import TensorFlow with its start-up notices captured and its Python logger at ERROR."""
    with native_output_captured():
        import tensorflow as tf
    tf.get_logger().setLevel(logging.ERROR)
    return tf
