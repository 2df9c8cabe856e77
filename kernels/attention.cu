// attention.cu: kernels of the attention family (placeholder: being written).
#include "common.cuh"
