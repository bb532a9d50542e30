import os

# No network here or in CI: without these a hub name retries for ~45 s before failing.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
# Throwaway run directories: no flush to the disk after each write (crossgen.io.durable); a
# third of a tiny linear run's time. test_io checks both settings.
os.environ.setdefault("CROSSGEN_FSYNC", "0")
