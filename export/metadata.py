"""TFLite Model Metadata for an exported image classifier, written by MediaPipe's own metadata writer.

MediaPipe Tasks' `ImageClassifier` (and ML Kit, the TFLite Task Library) read the metadata to know the
input's normalization and the class names, so an app passes image files with no preprocessing code.

MediaPipe 1.2.x ships the writer (`mediapipe.tasks.python.metadata.metadata_writers`) and the generated
schema modules, but its `metadata.py` imports one compiled binding the wheel no longer contains,
`mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`, used for one thing: computing the
metadata's minimum parser version. `_import_writer` provides that one function, only while the writer
is imported and only when the binding is missing, following the rule the schema states (the largest
"Added in" version among the fields populated). Everything else is MediaPipe's code.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
import types
from typing import Optional, Sequence

MEDIAPIPE_REQUIREMENT = "mediapipe>=1.2.3,<1.3"  # as setup.py's MEDIAPIPE
MISSING_BINDING = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
BASE_PARSER_VERSION = "1.0.0"


class MetadataUnavailableError(RuntimeError):
    """MediaPipe's metadata writer cannot be imported here."""


def _version_key(version: str):
    return tuple(int(part) for part in version.split("."))


def minimum_parser_version(metadata_buffer: bytes) -> str:
    """The oldest metadata parser that understands every field populated in `metadata_buffer`.

    The schema's history (metadata_schema.fbs) dates each field added after 1.0.0; the result is the
    largest of those dates among the fields present, 1.0.0 when none is.
    """
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    model = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(bytes(metadata_buffer), 0))
    versions = [BASE_PARSER_VERSION]
    files = list(model.associatedFiles or [])
    units = []
    for subgraph in model.subgraphMetadata or []:
        files += subgraph.associatedFiles or []
        if subgraph.inputProcessUnits or subgraph.outputProcessUnits:
            versions.append("1.1.0")
            units += (subgraph.inputProcessUnits or []) + (subgraph.outputProcessUnits or [])
        if subgraph.inputTensorGroups or subgraph.outputTensorGroups:
            versions.append("1.2.0")
        if subgraph.customMetadata:
            versions.append("1.5.0")
        for tensor in (subgraph.inputTensorMetadata or []) + (subgraph.outputTensorMetadata or []):
            files += tensor.associatedFiles or []
            units += tensor.processUnits or []
            content = tensor.content
            if content is not None and content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                versions.append("1.3.0")
    for unit in units:
        if unit.optionsType in (fb.ProcessUnitOptions.BertTokenizerOptions,
                                fb.ProcessUnitOptions.SentencePieceTokenizerOptions):
            versions.append("1.1.0")
        elif unit.optionsType == fb.ProcessUnitOptions.RegexTokenizerOptions:
            versions.append("1.2.1")
    for file in files:
        if file.type == fb.AssociatedFileType.VOCABULARY:
            versions.append("1.0.1")
        elif file.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
            versions.append("1.4.0")
        if file.version:
            versions.append("1.4.1")
    return max(versions, key=_version_key)


@contextlib.contextmanager
def _binding_provided():
    """Registers a module named `MISSING_BINDING` (and its missing parents) for the duration of the block."""
    added = []
    parts = MISSING_BINDING.split(".")
    for depth in range(3, len(parts) + 1):  # mediapipe.tasks.cc and below
        name = ".".join(parts[:depth])
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = []
            sys.modules[name] = module
            added.append(name)
    sys.modules[MISSING_BINDING].GetMinimumMetadataParserVersion = minimum_parser_version
    try:
        yield
    finally:
        for name in added:
            sys.modules.pop(name, None)


def binding_missing() -> bool:
    """Whether the installed MediaPipe lacks the compiled minimum-parser-version binding."""
    try:
        return importlib.util.find_spec(MISSING_BINDING) is None
    except ModuleNotFoundError:  # a parent package is missing
        return True


def _import_writer():
    """MediaPipe's metadata writer modules (metadata_writer, metadata_info)."""
    name = "mediapipe.tasks.python.metadata.metadata_writers.metadata_writer"
    try:
        if binding_missing():
            with _binding_provided():
                writer = importlib.import_module(name)
        else:
            writer = importlib.import_module(name)
        info = importlib.import_module("mediapipe.tasks.python.metadata.metadata_writers.metadata_info")
    except ImportError as e:
        raise MetadataUnavailableError(f"MediaPipe's metadata writer cannot be imported ({e}); to write metadata, "
                                       f"pip install \"{MEDIAPIPE_REQUIREMENT}\"") from e
    return writer, info


def with_metadata(flatbuffer: bytes, labels: Sequence[str], name: str, version: str, description: str,
                  norm_mean: float = 0.0, norm_std: float = 1.0, author: Optional[str] = None) -> bytes:
    """`flatbuffer` (a one-image-in, class-scores-out model) with image-classifier metadata and its labels.

    Args:
      flatbuffer: the `.tflite` model.
      labels: class names, one per output score, packed into the model as `labels.txt`.
      name, version, description: the model's general information.
      norm_mean, norm_std: normalization the app applies to RGB pixel values before the model (for a
        float input); 0 and 1 when the model scales its raw pixels itself.
      author: optional author field.
    Raises:
      MetadataUnavailableError: MediaPipe's writer cannot be imported.
      ValueError: no labels.
    """
    if not labels:
        raise ValueError("labels: at least one class name is needed")
    writer_module, info = _import_writer()
    writer = writer_module.MetadataWriter.create(bytearray(flatbuffer))
    writer.add_image_input([norm_mean], [norm_std])
    writer.add_classification_output(writer_module.Labels().add(list(labels)))
    # add_general_info takes a name and description only; the version goes in the same record.
    writer._general_md = info.GeneralMd(name=name, version=version, description=description,  # noqa: SLF001
                                        author=author)
    model, _ = writer.populate()
    del writer  # its temporary folder is removed now, not at interpreter exit
    return bytes(model)


def read_metadata(flatbuffer: bytes) -> dict:
    """The metadata of `flatbuffer` as JSON-like data, and its packed files: {"metadata", "files"}."""
    import json

    _import_writer()
    from mediapipe.tasks.python.metadata import metadata

    displayer = metadata.MetadataDisplayer.with_model_buffer(bytearray(flatbuffer))
    files = {f: displayer.get_associated_file_buffer(f).decode() for f in displayer.get_packed_associated_file_list()}
    return {"metadata": json.loads(displayer.get_metadata_json()), "files": files}
