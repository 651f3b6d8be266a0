"""simrag: SimRAG-style domain adaptation of a retrieval-augmented LM, as a DVC pipeline."""

import logging
import os

# The pipeline runs offline by default: models come from local folders or pip packages.
# A user with network access sets HF_HUB_OFFLINE=0 to let hub ids download.
for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ANONYMIZED_TELEMETRY": "False",  # chromadb
    "TOKENIZERS_PARALLELISM": "false",
}.items():
    os.environ.setdefault(_name, _value)

# bitsandbytes (imported through peft) warns on every CPU start about an optional kernel package.
logging.getLogger("bitsandbytes").setLevel(logging.ERROR)

__version__ = "0.1.0"
