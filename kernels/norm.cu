// norm.cu: kernels of the norm family (placeholder: being written).
#include "common.cuh"
