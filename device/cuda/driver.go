//go:build cuda

package cuda

// The few CUDA driver calls gorgonia.org/cu v0.9.6 does not wrap (pinned
// host memory, module loading with a JIT error log, the launch itself with
// a reusable C argument block), called directly through cgo. Everything else
// goes through gorgonia.org/cu.

/*
#cgo LDFLAGS: -lcuda
#cgo linux LDFLAGS: -L/usr/local/cuda/lib64 -L/usr/local/cuda/lib64/stubs
#cgo linux CFLAGS: -I/usr/local/cuda/include
#include <cuda.h>
#include <stdlib.h>
#include <string.h>

// kiln_load JIT-compiles a NUL-terminated PTX image into a module of the
// current context, capturing the JIT's error log.
static CUresult kiln_load(CUmodule *mod, const void *image, char *log, size_t logSize) {
	CUjit_option opts[2] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
	void *vals[2] = {(void *)log, (void *)logSize};
	if (logSize > 0) log[0] = 0;
	return cuModuleLoadDataEx(mod, image, 2, opts, vals);
}

// kiln_launch launches f on stream s with the kernel arguments whose
// addresses are in args (a C array, so no Go pointer reaches the driver).
static CUresult kiln_launch(CUfunction f, unsigned gx, unsigned gy, unsigned gz,
                            unsigned bx, unsigned by, unsigned bz, unsigned shmem,
                            CUstream s, void **args) {
	return cuLaunchKernel(f, gx, gy, gz, bx, by, bz, shmem, s, args, NULL);
}

static const char *kiln_err_name(CUresult r) {
	const char *s = NULL;
	if (cuGetErrorName(r, &s) != CUDA_SUCCESS || s == NULL) return "CUDA_ERROR_UNKNOWN_CODE";
	return s;
}

static const char *kiln_err_string(CUresult r) {
	const char *s = NULL;
	if (cuGetErrorString(r, &s) != CUDA_SUCCESS || s == NULL) return "unknown error";
	return s;
}
*/
import "C"

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"
)

// DriverError is a CUDA driver error code returned by one of this
// package's own driver calls.
type DriverError struct {
	Code int
	Name string // e.g. CUDA_ERROR_OUT_OF_MEMORY
	Msg  string
}

func (e *DriverError) Error() string { return fmt.Sprintf("%s (%d): %s", e.Name, e.Code, e.Msg) }

func cuErr(r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	return &DriverError{Code: int(r), Name: C.GoString(C.kiln_err_name(r)), Msg: C.GoString(C.kiln_err_string(r))}
}

// cStream is the driver handle inside a gorgonia cu.Stream (a struct of one
// C.CUstream field in package cu; cgo types are per package, so it is
// reinterpreted, after Open has checked that the sizes agree).
func cStream(s *cu.Stream) C.CUstream { return *(*C.CUstream)(unsafe.Pointer(s)) }

// streamLayoutOK reports whether cu.Stream is exactly one CUstream.
func streamLayoutOK() bool { return unsafe.Sizeof(cu.Stream{}) == unsafe.Sizeof(C.CUstream(nil)) }

// module is a loaded PTX module.
type module struct {
	family string
	mod    C.CUmodule
}

// loadModule JIT-compiles ptx into the current context.
func loadModule(family string, ptx []byte, cc int) (module, error) {
	img := C.CBytes(append(append([]byte(nil), ptx...), 0))
	defer C.free(img)
	const logSize = 16 << 10
	log := (*C.char)(C.malloc(logSize))
	defer C.free(unsafe.Pointer(log))
	var m C.CUmodule
	if err := cuErr(C.kiln_load(&m, img, log, logSize)); err != nil {
		return module{}, fmt.Errorf("cuda: loading kernel module %s (JIT of its PTX for compute capability %d.%d): %w\nJIT log: %s",
			family, cc/10, cc%10, err, C.GoString(log))
	}
	return module{family: family, mod: m}, nil
}

func (m module) function(name string) (C.CUfunction, error) {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	var f C.CUfunction
	if err := cuErr(C.cuModuleGetFunction(&f, m.mod, cs)); err != nil {
		return nil, fmt.Errorf("cuda: looking up kernel %s in module %s: %w", name, m.family, err)
	}
	return f, nil
}

func (m module) unload() error {
	if err := cuErr(C.cuModuleUnload(m.mod)); err != nil {
		return fmt.Errorf("cuda: unloading module %s: %w", m.family, err)
	}
	return nil
}

// maxArgs is the most kernel arguments a launch takes.
const maxArgs = 16

// argBlock is C memory holding one launch's argument values (8 bytes a
// slot; a 4-byte argument sits in the low half, x86-64 and arm64 being
// little-endian) and the array of their addresses that cuLaunchKernel
// reads. The driver copies the values at launch, so the block is reused.
type argBlock struct {
	vals *[maxArgs]uint64
	ptrs unsafe.Pointer // void *[maxArgs]
}

func newArgBlock() argBlock {
	vals := C.calloc(maxArgs, 8)
	ptrs := C.calloc(maxArgs, C.size_t(unsafe.Sizeof(uintptr(0))))
	pa := (*[maxArgs]unsafe.Pointer)(ptrs)
	for i := range pa {
		pa[i] = unsafe.Add(vals, 8*i)
	}
	return argBlock{vals: (*[maxArgs]uint64)(vals), ptrs: ptrs}
}

func (a *argBlock) free() {
	if a.vals != nil {
		C.free(unsafe.Pointer(a.vals))
		C.free(a.ptrs)
		a.vals, a.ptrs = nil, nil
	}
}

// launchRaw launches f with the given argument values.
func launchRaw(f C.CUfunction, grid, block [3]uint32, shmem uint32, s C.CUstream, ab *argBlock, args []uint64) error {
	if len(args) > maxArgs {
		return fmt.Errorf("%d arguments, at most %d", len(args), maxArgs)
	}
	copy(ab.vals[:], args)
	return cuErr(C.kiln_launch(f, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]),
		C.uint(block[0]), C.uint(block[1]), C.uint(block[2]), C.uint(shmem), s, (*unsafe.Pointer)(ab.ptrs)))
}

// Argument encoders for launch: each returns the 8-byte slot value.
func argPtr(p cu.DevicePtr) uint64 { return uint64(p) }
func argF32(v float32) uint64      { return uint64(math.Float32bits(v)) }
func argF64(v float64) uint64      { return math.Float64bits(v) }
func argI32(v int) uint64          { return uint64(uint32(int32(v))) }
func argI64(v int) uint64          { return uint64(int64(v)) }
func argU64(v uint64) uint64       { return v }
func argBool(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// pinned is page-locked host memory from cuMemAllocHost.
func allocPinned(bytes int) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	if err := cuErr(C.cuMemAllocHost(&p, C.size_t(bytes))); err != nil {
		return nil, fmt.Errorf("cuda: allocating %d bytes of pinned host memory (cuMemAllocHost): %w", bytes, err)
	}
	return p, nil
}

func freePinned(p unsafe.Pointer) error {
	if p == nil {
		return nil
	}
	if err := cuErr(C.cuMemFreeHost(p)); err != nil {
		return fmt.Errorf("cuda: freeing pinned host memory (cuMemFreeHost): %w", err)
	}
	return nil
}
