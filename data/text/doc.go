// Package text is the text side of kiln's language models: tokenisers, a
// token dataset over a corpus, and an embedded default corpus.
//
// Tokenisers share one interface, Tokenizer: Byte (the 256 byte values;
// any text round-trips), Char (the sorted set of runes of a corpus) and
// GPT2 (OpenAI's r50k_base byte-pair encoding, ranks embedded through
// github.com/tiktoken-go/tokenizer, nothing downloaded). Each marshals to a
// small JSON blob that Load restores, so a checkpoint can carry its
// tokeniser. StreamDecoder turns tokens into text one at a time, holding
// back an incomplete UTF-8 sequence until its last byte arrives.
//
// Open tokenises a text file, or a folder of .txt files concatenated in
// sorted order, once into a compact token file (uint16 or uint32 per token)
// in a cache directory, and memory-maps it, so a corpus larger than memory
// works. Tokens.Split cuts it by position into training and validation
// spans, and a Sampler fills caller-provided x and y batches with windows
// at seeded random offsets, without allocating; its position is one
// counter, saved and restored for exact resume.
//
// DefaultCorpus is Herman Melville's Moby-Dick (chapters 1–135, about
// 1.2 MB, public domain), embedded gzipped; README.md beside this file says
// where it comes from and how it was made.
//
// The package lives on the host and imports no device backend.
package text
