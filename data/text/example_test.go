package text_test

import (
	"fmt"
	"os"

	"github.com/kilnml/kiln/data/text"
)

func ExampleNewStreamDecoder() {
	tok := text.NewGPT2()
	ids, _ := tok.Encode("白鲸")
	d := text.NewStreamDecoder(tok)
	for _, id := range ids {
		piece, _ := d.Next(id) // "" while a character is incomplete
		fmt.Printf("%d → %q\n", id, piece)
	}
	fmt.Printf("flush → %q\n", d.Flush())
	// Output:
	// 163 → ""
	// 50159 → "白"
	// 165 → ""
	// 110 → ""
	// 116 → "鲸"
	// flush → ""
}

func ExampleNewSampler() {
	cache, _ := os.MkdirTemp("", "kiln-example")
	defer os.RemoveAll(cache)
	ts, err := text.OpenText("abc", "abcdefghijklmnopqrstuvwxyz", text.Byte{}, text.Options{CacheDir: cache})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ts.Close()
	train, val, _ := ts.Split(0.25)
	fmt.Println(train, "|", val)
	s, _ := text.NewSampler(train, 4, 1)
	x, y := make([]int32, 2*4), make([]int32, 2*4)
	s.Batch(x, y)
	dec := func(ids []int32) string { t, _ := text.Byte{}.Decode(ids); return t }
	fmt.Println(dec(x[:4]), dec(y[:4]))
	fmt.Println(dec(x[4:]), dec(y[4:]))
	// Output:
	// training split of abc [0, 19) | validation split of abc [19, 26)
	// cdef defg
	// fghi ghij
}
