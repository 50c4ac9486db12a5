"""Semantic search over your own documents: chunking, a crash-safe index, dense/BM25/hybrid
search, explanations, retrieval evaluation and RAG prompts; corpora embedded to Parquet shards,
in this process or on Ray."""

from .build import BuildReport, read_documents
from .chunking import Chunk, chunk_text
from .corpus import CorpusReport, embed_corpus, read_corpus
from .engine import Engine
from .evaluate import evaluate, judged
from .explain import Explanation, explain
from .index import DEFAULT_MODE, Hit, Index, index_path, index_root, list_indexes
from .rag import Answer, answer

__all__ = [
    "DEFAULT_MODE",
    "Answer",
    "BuildReport",
    "Chunk",
    "CorpusReport",
    "Engine",
    "Explanation",
    "Hit",
    "Index",
    "answer",
    "chunk_text",
    "embed_corpus",
    "evaluate",
    "explain",
    "index_path",
    "index_root",
    "judged",
    "list_indexes",
    "read_corpus",
    "read_documents",
]
