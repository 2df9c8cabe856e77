package kernels

// emuAttentionCases adds the emulation cases of attention.cu (placeholder: being written).
func emuAttentionCases(s *emuScript) { _ = s }
