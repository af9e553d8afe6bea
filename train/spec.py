"""What a data pipeline is, as plain values: names and limits shared by flags, data and workers.

No TensorFlow here, so flag validators and the coordinator can use it before anything heavy loads.
"""

SPLITS = ("train", "validation", "test")
FOLDER_PREFIX = "folder:"
MIN_IMAGE_SIZE = 8
CACHES = ("auto", "memory", "disk", "none")
