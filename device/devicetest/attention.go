package devicetest

import "testing"

// testAttention checks the attention family of primitives (placeholder: being written).
func (s *suite) testAttention(t *testing.T) {
	t.Skip("attention primitives: conformance tests being written")
}
