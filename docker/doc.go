// Package docker holds no code: it is the home of docker/Dockerfile and of
// the test that checks it (dockerfile_test.go) without needing a Docker
// daemon. It is a module of its own (docker/go.mod), so that BuildKit's
// Dockerfile parser, which only that test uses, stays out of the
// requirements of kiln's library module; run it with
// `cd docker && go test ./...`.
package docker
