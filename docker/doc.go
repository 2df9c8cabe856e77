// Package docker holds no code: it is the home of docker/Dockerfile and of
// the test that checks it (dockerfile_test.go), so that `go test ./...`
// catches a Dockerfile that drifted from the rules in docker/README.md
// without needing a Docker daemon.
package docker
