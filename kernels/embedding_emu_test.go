package kernels

// emuEmbeddingCases adds the emulation cases of embedding.cu (placeholder: being written).
func emuEmbeddingCases(s *emuScript) { _ = s }
