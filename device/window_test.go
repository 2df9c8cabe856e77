package device

import (
	"errors"
	"testing"
)

// TestCheckPlaneIndices checks the int32 limit of max pooling's saved
// positions, shared by every backend.
func TestCheckPlaneIndices(t *testing.T) {
	ok := Window2D{N: 1, C: 1, H: 46340, W: 46340, KH: 1, KW: 1, StrideH: 1, StrideW: 1, DilH: 1, DilW: 1}
	if err := ok.CheckPlaneIndices("MaxPool2D"); err != nil {
		t.Fatalf("46340² positions fit an int32: %v", err)
	}
	big := ok
	big.W = 46341 * 2
	err := big.CheckPlaneIndices("MaxPool2D")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("a plane of %d·%d positions: got %v, want ErrInvalid", big.H, big.W, err)
	}
}
