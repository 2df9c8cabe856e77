// Package data loads datasets (IDX/MNIST, CSV, the embedded default,
// synthetic sets) and cuts them into splits and batches.
//
// Everything here lives on the host: samples are flat row-major float32
// slices, exposed as gorgonia.org/tensor Dense values at the API boundary,
// and the package imports no device backend. Load is the entry point;
// Split, KFold and Permutation give seeded, reproducible splits and batch
// orders; Dataset.Gather fills a caller's batch buffers without allocating.
// README.md beside this file lists the datasets, where they come from, how
// they are scaled, and the licence of the embedded digits set.
package data
