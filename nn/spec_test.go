package nn

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kilnml/kiln/device"
)

func TestParseSpec(t *testing.T) {
	cases := []struct {
		in   string
		want Spec
		str  string
	}{
		{"784-256-relu-128-relu-10", Spec{In: 784, Layers: []LayerSpec{
			{Kind: LinearLayer, Units: 256}, {Kind: ActivationLayer, Act: device.ReLU},
			{Kind: LinearLayer, Units: 128}, {Kind: ActivationLayer, Act: device.ReLU},
			{Kind: LinearLayer, Units: 10}}}, "784-256-relu-128-relu-10"},
		{"2-4-tanh-1-sigmoid", Spec{In: 2, Layers: []LayerSpec{
			{Kind: LinearLayer, Units: 4}, {Kind: ActivationLayer, Act: device.Tanh},
			{Kind: LinearLayer, Units: 1}, {Kind: ActivationLayer, Act: device.Sigmoid}}}, "2-4-tanh-1-sigmoid"},
		{" 10-5-5-Softmax ", Spec{In: 10, Layers: []LayerSpec{
			{Kind: LinearLayer, Units: 5}, {Kind: LinearLayer, Units: 5}, {Kind: SoftmaxLayer}}}, "10-5-5-softmax"},
		{"8-leakyrelu-drop0.2-4-leakyrelu0.2-gelu-gelu_tanh-identity-dropout0.5-2", Spec{In: 8, Layers: []LayerSpec{
			{Kind: ActivationLayer, Act: device.LeakyReLU, Alpha: 0.01}, {Kind: DropoutLayer, P: 0.2},
			{Kind: LinearLayer, Units: 4}, {Kind: ActivationLayer, Act: device.LeakyReLU, Alpha: 0.2},
			{Kind: ActivationLayer, Act: device.GELU}, {Kind: ActivationLayer, Act: device.GELUTanh},
			{Kind: ActivationLayer, Act: device.Identity}, {Kind: DropoutLayer, P: 0.5},
			{Kind: LinearLayer, Units: 2}}}, "8-leakyrelu-drop0.2-4-leakyrelu0.2-gelu-gelu_tanh-identity-drop0.5-2"},
		{"3-drop0-1", Spec{In: 3, Layers: []LayerSpec{{Kind: DropoutLayer}, {Kind: LinearLayer, Units: 1}}}, "3-drop0-1"},
	}
	for _, c := range cases {
		checkParsed(t, c.in, c.want, c.str)
	}
	if out := MustParseSpec("784-256-relu-10-softmax").Out(); out != 10 {
		t.Errorf("Out() = %d, expected 10", out)
	}
}

// checkParsed checks that ParseSpec(in) gives want, writes back as str,
// parses again to the same Spec and validates; it returns the Spec (the
// zero Spec after an error).
func checkParsed(t *testing.T, in string, want Spec, str string) Spec {
	t.Helper()
	got, err := ParseSpec(in)
	if err != nil {
		t.Errorf("ParseSpec(%q): %v", in, err)
		return Spec{}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseSpec(%q) =\n%+v, expected\n%+v", in, got, want)
	}
	if s := got.String(); s != str {
		t.Errorf("ParseSpec(%q).String() = %q, expected %q", in, s, str)
	}
	again, err := ParseSpec(got.String())
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("round trip of %q: %+v, %v", in, again, err)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate(%q): %v", in, err)
	}
	return got
}

func TestParseSpecErrors(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "empty"},
		{"784", "no layers"},
		{"relu-10", `token 1 "relu": expected the input width`},
		{"784-0-10", `token 2 "0": expected a width`},
		{"784-25x-10", `token 2 "25x": expected a width`},
		{"784--10", `token 2 "": empty token`},
		{"784-10-", `token 3 "": empty token`},
		{"784-256-rellu-10", `token 3 "rellu": unknown layer; expected`},
		{"784-drop1.0-10", `token 2 "drop1.0": expected drop<p> with a probability 0 ≤ p < 1`},
		{"784-drop-10", `token 2 "drop"`},
		{"784-dropx-10", `token 2 "dropx"`},
		{"784-leakyrelu-0.1-10", `token 3 "0.1": expected a width`},
		{"784-leakyreluabc-10", `token 2 "leakyreluabc": expected leakyrelu or leakyrelu<slope>`},
		{"784-leakyrelu-5-2", ""}, // valid: leakyrelu then Linear(…,5)
	}
	for _, c := range cases {
		_, err := ParseSpec(c.in)
		if c.want == "" {
			if err != nil {
				t.Errorf("ParseSpec(%q): %v", c.in, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpec(%q) error %v, expected one containing %q", c.in, err, c.want)
		}
	}
}
