//go:build ignore

// gen_asm writes kernel_amd64.s from asmgen: go generate ./device/cpu/internal/gemm.
package main

import (
	"log"
	"os"

	"github.com/kilnml/kiln/device/cpu/internal/gemm/asmgen"
)

func main() {
	if err := os.WriteFile("kernel_amd64.s", asmgen.Generate(), 0o644); err != nil {
		log.Fatal(err)
	}
}
