// Package data loads datasets (IDX/MNIST, CSV, the embedded default,
// synthetic sets) and cuts them into splits and batches.
package data
