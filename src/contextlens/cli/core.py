"""Commands of the engine: models, tokens, embed, similarity, softmax, attention, evaluate sts."""
