package device

// Argument checks shared by every backend, so that the same mistake gives
// the same error on each.

// CheckBuf checks that b is a live buffer of dev with dtype dt and at least
// n elements. op and arg name the primitive and the argument for the error.
func CheckBuf(dev Device, op, arg string, b Buffer, dt DType, n int) error {
	if b == nil {
		return Errorf(op, arg, ErrNilBuffer, "expected a %s buffer of %d elements, got nil", dt, n)
	}
	if b.Freed() {
		return Errorf(op, arg, ErrFreed, "the buffer was freed before this call")
	}
	if b.Device() != dev {
		return Errorf(op, arg, ErrDeviceMismatch, "expected a buffer of %s, got one of %s", dev.Name(), b.Device().Name())
	}
	if b.DType() != dt {
		return Errorf(op, arg, ErrDType, "expected %s, got %s", dt, b.DType())
	}
	if b.Len() < n {
		return Errorf(op, arg, ErrSize, "expected at least %d elements, got %d", n, b.Len())
	}
	return nil
}

// CheckF32 is CheckBuf for float32 buffers.
func CheckF32(dev Device, op, arg string, b Buffer, n int) error {
	return CheckBuf(dev, op, arg, b, Float32, n)
}

// CheckDims checks that every named dimension is at least 1. names and
// dims alternate: CheckDims("Gemm", "m", m, "n", n).
func CheckDims(op string, namesAndDims ...any) error {
	for i := 0; i+1 < len(namesAndDims); i += 2 {
		name, _ := namesAndDims[i].(string)
		d, _ := namesAndDims[i+1].(int)
		if d < 1 {
			return Errorf(op, name, ErrInvalid, "expected a dimension ≥ 1, got %d", d)
		}
	}
	return nil
}

// CheckAll returns the first non-nil error.
func CheckAll(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// CheckStep checks an optimizer step count, which counts from 1.
func CheckStep(op string, step int) error {
	if step < 1 {
		return Errorf(op, "step", ErrInvalid, "expected step ≥ 1 (steps count from 1), got %d", step)
	}
	return nil
}

// Check returns an ErrInvalid error naming the first hyperparameter that
// torch.optim.SGD would also reject.
func (c SGDConfig) Check(op string) error {
	switch {
	case !(c.LR >= 0):
		return Errorf(op, "cfg.LR", ErrInvalid, "expected a learning rate ≥ 0, got %g", c.LR)
	case !(c.Momentum >= 0):
		return Errorf(op, "cfg.Momentum", ErrInvalid, "expected momentum ≥ 0, got %g", c.Momentum)
	case !(c.WeightDecay >= 0):
		return Errorf(op, "cfg.WeightDecay", ErrInvalid, "expected weight decay ≥ 0, got %g", c.WeightDecay)
	case c.Nesterov && (c.Momentum <= 0 || c.Dampening != 0):
		return Errorf(op, "cfg.Nesterov", ErrInvalid,
			"Nesterov momentum requires momentum > 0 and dampening 0, got momentum %g, dampening %g", c.Momentum, c.Dampening)
	}
	return nil
}

// Check returns an ErrInvalid error naming the first hyperparameter that
// torch.optim.Adam would also reject.
func (c AdamConfig) Check(op string) error {
	switch {
	case !(c.LR >= 0):
		return Errorf(op, "cfg.LR", ErrInvalid, "expected a learning rate ≥ 0, got %g", c.LR)
	case !(c.Beta1 >= 0 && c.Beta1 < 1):
		return Errorf(op, "cfg.Beta1", ErrInvalid, "expected 0 ≤ beta1 < 1, got %g", c.Beta1)
	case !(c.Beta2 >= 0 && c.Beta2 < 1):
		return Errorf(op, "cfg.Beta2", ErrInvalid, "expected 0 ≤ beta2 < 1, got %g", c.Beta2)
	case !(c.Eps >= 0):
		return Errorf(op, "cfg.Eps", ErrInvalid, "expected eps ≥ 0, got %g", c.Eps)
	case !(c.WeightDecay >= 0):
		return Errorf(op, "cfg.WeightDecay", ErrInvalid, "expected weight decay ≥ 0, got %g", c.WeightDecay)
	}
	return nil
}

// Check returns an ErrInvalid error unless a is one of the activations
// every backend implements.
func (a Activation) Check(op string) error {
	if a < Identity || a > ELU {
		return Errorf(op, "act", ErrInvalid, "expected an activation from identity to elu, got %d", uint8(a))
	}
	return nil
}

// Check returns an ErrInvalid error unless l is one of the losses every
// backend implements.
func (l LossKind) Check(op string) error {
	if l < MSE || l > SoftmaxCrossEntropy {
		return Errorf(op, "kind", ErrInvalid, "expected a loss from mse to cross_entropy, got %d", uint8(l))
	}
	return nil
}
