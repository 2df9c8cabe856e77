// conv.cu: kernels of the conv family (placeholder: being written).
#include "common.cuh"
