// embedding.cu: kernels of the embedding family (placeholder: being written).
#include "common.cuh"
