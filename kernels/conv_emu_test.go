package kernels

// emuConvCases adds the emulation cases of conv.cu (placeholder: being written).
func emuConvCases(s *emuScript) { _ = s }
