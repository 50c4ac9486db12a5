"""Reading models from disk: Hugging Face directories, GGUF files, word vectors, the catalog."""
