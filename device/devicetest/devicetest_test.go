package devicetest_test

import (
	"math"
	"testing"

	"github.com/kilnml/kiln/device"
	_ "github.com/kilnml/kiln/device/cpu" // registers "cpu"
	"github.com/kilnml/kiln/device/devicetest"
)

// TestCPU runs the conformance suite on the CPU backend.
func TestCPU(t *testing.T) {
	dev, err := device.Open("cpu")
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	devicetest.Run(t, dev)
}

func TestRelErr(t *testing.T) {
	if e := devicetest.RelErr([]float32{1, 2}, []float64{1, 2}); e != 0 {
		t.Errorf("RelErr of equal vectors = %v", e)
	}
	// ‖(0.3, 0.4)‖ / ‖(3, 4)‖ = 0.1
	if e := devicetest.RelErr([]float32{3.3, 4.4}, []float64{3, 4}); math.Abs(e-0.1) > 1e-6 {
		t.Errorf("RelErr = %v; want 0.1", e)
	}
	if e := devicetest.RelErr([]float32{float32(math.NaN())}, []float64{1}); !math.IsInf(e, 1) {
		t.Errorf("RelErr with NaN = %v; want +Inf", e)
	}
	if e := devicetest.RelErr([]float32{3, 4}, []float64{0, 0}); e != 5 {
		t.Errorf("RelErr against zeros = %v; want 5", e)
	}
}
