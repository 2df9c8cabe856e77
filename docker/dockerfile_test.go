package docker

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// The Dockerfile is parsed with BuildKit's own parser (the one `docker build` uses), so that
// what the checks see is what Docker sees: continuations joined, comments dropped, flags
// (COPY --from, --chown) split from arguments, exec-form JSON decoded.

// parseDockerfile parses Dockerfile text into its stages.
func parseDockerfile(t *testing.T, text string) []instructions.Stage {
	t.Helper()
	res, err := parser.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parsing Dockerfile: %v", err)
	}
	stages, _, err := instructions.Parse(res.AST, nil)
	if err != nil {
		t.Fatalf("parsing Dockerfile instructions: %v", err)
	}
	return stages
}

func readDockerfile(t *testing.T) (string, []instructions.Stage) {
	t.Helper()
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatalf("reading docker/Dockerfile: %v", err)
	}
	return string(b), parseDockerfile(t, string(b))
}

func stageByName(stages []instructions.Stage, name string) *instructions.Stage {
	for i := range stages {
		if stages[i].Name == name {
			return &stages[i]
		}
	}
	return nil
}

// commandsOf returns a stage's instructions of type T.
func commandsOf[T instructions.Command](s *instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '"' && s[len(s)-1] == '"' || s[0] == '\'' && s[len(s)-1] == '\'') {
		return s[1 : len(s)-1]
	}
	return s
}

// ---- checks: each returns the problems it finds, so that it can be run both on the real
// Dockerfile (expecting none) and on broken snippets (expecting the right complaint).

// requiredStages are the targets docker/README.md documents: build (cuda binary), cuda (the GPU
// image, the default target) and cpu (the CPU-only image).
var requiredStages = []string{"build", "cuda", "cpu"}

func checkStages(stages []instructions.Stage) []string {
	var problems []string
	for _, name := range requiredStages {
		if stageByName(stages, name) == nil {
			problems = append(problems, fmt.Sprintf("no stage named %q", name))
		}
	}
	if n := len(stages); n > 0 && stages[n-1].Name != "cuda" {
		problems = append(problems, fmt.Sprintf("the last stage (the default target) is %q, want \"cuda\"", stages[n-1].Name))
	}
	return problems
}

// versioned says whether an image name or tag carries a version number ("1.26.8-bookworm",
// "12.4.1-base-ubuntu22.04", "static-debian12").
var versioned = regexp.MustCompile(`[0-9]`)

// checkPinned requires every base image that is not an earlier stage to name an explicit
// version: a tag other than latest that carries a version number (in the tag, or in the image
// name as distroless's static-debian12 does), or a digest.
func checkPinned(stages []instructions.Stage) []string {
	var problems []string
	seen := map[string]bool{}
	for _, s := range stages {
		base := s.BaseName
		switch {
		case seen[strings.ToLower(base)]:
			// FROM an earlier stage.
		case strings.Contains(base, "$"):
			problems = append(problems, fmt.Sprintf("stage %q: FROM %s uses a build argument; write the pinned image out", s.Name, base))
		case strings.Contains(base, "@sha256:"):
			// Pinned by digest.
		default:
			repo, tag := splitImage(base)
			last := repo[strings.LastIndex(repo, "/")+1:]
			switch {
			case tag == "":
				problems = append(problems, fmt.Sprintf("stage %q: FROM %s has no tag; pin an exact version such as %s:<version>", s.Name, base, repo))
			case tag == "latest" || strings.Contains(tag, "latest"):
				problems = append(problems, fmt.Sprintf("stage %q: FROM %s uses a floating tag; pin an exact version", s.Name, base))
			case !versioned.MatchString(tag) && !versioned.MatchString(last):
				problems = append(problems, fmt.Sprintf("stage %q: FROM %s names no version in its tag or image name", s.Name, base))
			}
		}
		if s.Name != "" {
			seen[strings.ToLower(s.Name)] = true
		}
	}
	return problems
}

// splitImage splits "registry:5000/name:tag" into the repository and the tag; a colon before
// the last slash belongs to a registry port.
func splitImage(ref string) (repo, tag string) {
	slash := strings.LastIndex(ref, "/")
	if colon := strings.LastIndex(ref, ":"); colon > slash {
		return ref[:colon], ref[colon+1:]
	}
	return ref, ""
}

// checkGoVersion requires the golang base images to carry go.mod's Go version, so the image
// builds with the toolchain the module declares.
func checkGoVersion(stages []instructions.Stage, goModVersion string) []string {
	var problems []string
	found := false
	for _, s := range stages {
		repo, tag := splitImage(s.BaseName)
		if repo != "golang" && repo != "docker.io/library/golang" {
			continue
		}
		found = true
		if tag != goModVersion && !strings.HasPrefix(tag, goModVersion+".") && !strings.HasPrefix(tag, goModVersion+"-") {
			problems = append(problems, fmt.Sprintf("stage %q: FROM %s does not match go.mod's go %s", s.Name, s.BaseName, goModVersion))
		}
	}
	if !found {
		problems = append(problems, "no stage builds on the official golang image")
	}
	return problems
}

// checkNonRoot requires the runtime stages to end up as a user other than root.
func checkNonRoot(stages []instructions.Stage, names ...string) []string {
	var problems []string
	for _, name := range names {
		s := stageByName(stages, name)
		if s == nil {
			continue
		}
		users := commandsOf[*instructions.UserCommand](s)
		if len(users) == 0 {
			problems = append(problems, fmt.Sprintf("stage %q has no USER instruction: it would run as root", name))
			continue
		}
		u := users[len(users)-1].User
		who := strings.SplitN(u, ":", 2)[0]
		if who == "" || who == "root" || who == "0" {
			problems = append(problems, fmt.Sprintf("stage %q runs as %q; use a non-root user", name, u))
		}
	}
	return problems
}

// runLines returns the shell text of a stage's RUN instructions.
func runLines(s *instructions.Stage) []string {
	var out []string
	for _, r := range commandsOf[*instructions.RunCommand](s) {
		out = append(out, strings.Join(r.CmdLine, " "))
	}
	return out
}

// checkCUDABuild requires the build stage to enable Debian's non-free component, install the
// CUDA headers, and build ./cmd/kiln with the cuda tag, -trimpath, stripped symbols and the
// version stamps; and the cpu build to stay pure Go without the cuda tag.
func checkCUDABuild(stages []instructions.Stage) []string {
	var problems []string
	if s := stageByName(stages, "build"); s != nil {
		all := strings.Join(runLines(s), "\n")
		if !strings.Contains(all, "/etc/apt/sources.list.d/debian.sources") || !strings.Contains(all, "non-free") {
			problems = append(problems, "build stage: does not add non-free to the Components of /etc/apt/sources.list.d/debian.sources")
		}
		if !regexp.MustCompile(`apt-get install[^\n]*--no-install-recommends[^\n]*nvidia-cuda-(dev|toolkit)`).MatchString(all) {
			problems = append(problems, "build stage: does not install nvidia-cuda-dev (or nvidia-cuda-toolkit) with --no-install-recommends")
		}
		build := goBuildLine(all)
		for _, want := range []string{"-tags cuda", "-trimpath", "-s -w", "-X main.version=${VERSION}", "-X main.revision=${REVISION}", "./cmd/kiln"} {
			if !strings.Contains(build, want) {
				problems = append(problems, fmt.Sprintf("build stage: the go build line %q lacks %q", build, want))
			}
		}
	}
	if s := stageByName(stages, "build-cpu"); s != nil {
		build := goBuildLine(strings.Join(runLines(s), "\n"))
		if !strings.Contains(build, "CGO_ENABLED=0") || strings.Contains(build, "cuda") {
			problems = append(problems, fmt.Sprintf("build-cpu stage: %q should be a CGO_ENABLED=0 build without the cuda tag", build))
		}
	}
	return problems
}

func goBuildLine(runs string) string {
	for _, line := range strings.Split(runs, "\n") {
		if i := strings.Index(line, "go build"); i >= 0 {
			return line
		}
	}
	return ""
}

// checkRuntime requires what docker/README.md promises of both images: ENTRYPOINT ["kiln"],
// CMD ["devices"], WORKDIR and VOLUME /data, the OCI labels from build arguments, and in the
// cuda image the NVIDIA Container Toolkit's variables.
func checkRuntime(stages []instructions.Stage) []string {
	var problems []string
	for _, name := range []string{"cuda", "cpu"} {
		s := stageByName(stages, name)
		if s == nil {
			continue
		}
		eps := commandsOf[*instructions.EntrypointCommand](s)
		if len(eps) == 0 || eps[len(eps)-1].PrependShell || !slices.Equal(eps[len(eps)-1].CmdLine, []string{"kiln"}) {
			problems = append(problems, fmt.Sprintf(`stage %q: want ENTRYPOINT ["kiln"] in exec form`, name))
		}
		cmds := commandsOf[*instructions.CmdCommand](s)
		if len(cmds) == 0 || cmds[len(cmds)-1].PrependShell || !slices.Equal(cmds[len(cmds)-1].CmdLine, []string{"devices"}) {
			problems = append(problems, fmt.Sprintf(`stage %q: want CMD ["devices"] in exec form`, name))
		}
		wds := commandsOf[*instructions.WorkdirCommand](s)
		if len(wds) == 0 || wds[len(wds)-1].Path != "/data" {
			problems = append(problems, fmt.Sprintf("stage %q: want WORKDIR /data", name))
		}
		vol := false
		for _, v := range commandsOf[*instructions.VolumeCommand](s) {
			vol = vol || slices.Contains(v.Volumes, "/data")
		}
		if !vol {
			problems = append(problems, fmt.Sprintf("stage %q: want VOLUME /data", name))
		}

		labels := map[string]string{}
		for _, l := range commandsOf[*instructions.LabelCommand](s) {
			for _, kv := range l.Labels {
				labels[kv.Key] = unquote(kv.Value)
			}
		}
		for key, want := range map[string]string{
			"org.opencontainers.image.version":  "${VERSION}",
			"org.opencontainers.image.revision": "${REVISION}",
			"org.opencontainers.image.source":   "https://github.com/kilnml/kiln",
			"org.opencontainers.image.licenses": "Apache-2.0",
		} {
			if got, ok := labels[key]; !ok || got != want {
				problems = append(problems, fmt.Sprintf("stage %q: LABEL %s=%q, want %q", name, key, got, want))
			}
		}
		// An ARG is scoped to its stage: without ARG VERSION here the label would be empty.
		args := map[string]bool{}
		for _, a := range commandsOf[*instructions.ArgCommand](s) {
			for _, kv := range a.Args {
				args[kv.Key] = true
			}
		}
		for _, a := range []string{"VERSION", "REVISION"} {
			if !args[a] {
				problems = append(problems, fmt.Sprintf("stage %q: no ARG %s, so its label would be empty", name, a))
			}
		}
	}
	if s := stageByName(stages, "cuda"); s != nil {
		env := map[string]string{}
		for _, e := range commandsOf[*instructions.EnvCommand](s) {
			for _, kv := range e.Env {
				env[kv.Key] = unquote(kv.Value)
			}
		}
		for key, want := range map[string]string{
			"NVIDIA_VISIBLE_DEVICES":     "all",
			"NVIDIA_DRIVER_CAPABILITIES": "compute,utility",
		} {
			if env[key] != want {
				problems = append(problems, fmt.Sprintf("stage cuda: ENV %s=%q, want %q", key, env[key], want))
			}
		}
	}
	return problems
}

// checkCopyFrom requires every COPY --from to name an earlier stage.
func checkCopyFrom(stages []instructions.Stage) []string {
	var problems []string
	for i, s := range stages {
		for _, c := range commandsOf[*instructions.CopyCommand](&stages[i]) {
			if c.From == "" {
				continue
			}
			found := false
			for _, earlier := range stages[:i] {
				found = found || earlier.Name == c.From
			}
			if !found {
				problems = append(problems, fmt.Sprintf("stage %q: COPY --from=%s names no earlier stage", s.Name, c.From))
			}
		}
	}
	return problems
}

func expectNone(t *testing.T, what string, problems []string) {
	t.Helper()
	for _, p := range problems {
		t.Errorf("docker/Dockerfile: %s: %s", what, p)
	}
}

func goModVersion(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "go.mod"))
	if err != nil {
		t.Fatalf("reading go.mod: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

func TestDockerfile(t *testing.T) {
	_, stages := readDockerfile(t)
	expectNone(t, "stages", checkStages(stages))
	expectNone(t, "base images", checkPinned(stages))
	expectNone(t, "Go version", checkGoVersion(stages, goModVersion(t)))
	expectNone(t, "users", checkNonRoot(stages, "cuda", "cpu"))
	expectNone(t, "cuda build", checkCUDABuild(stages))
	expectNone(t, "runtime stages", checkRuntime(stages))
	expectNone(t, "COPY --from", checkCopyFrom(stages))
}

// TestChecksCatchMistakes feeds each check a Dockerfile with one mistake and requires the
// complaint, so that a check that silently passes everything is caught.
func TestChecksCatchMistakes(t *testing.T) {
	text, _ := readDockerfile(t)
	cases := []struct {
		name  string
		edit  func(string) string
		check func([]instructions.Stage) []string
		want  string
	}{
		{"latest tag", func(s string) string {
			return strings.Replace(s, "golang:1.26.8-bookworm AS build\n", "golang:latest AS build\n", 1)
		}, checkPinned, "floating tag"},
		{"bare name", func(s string) string {
			return strings.Replace(s, "nvidia/cuda:12.4.1-base-ubuntu22.04", "nvidia/cuda", 1)
		}, checkPinned, "has no tag"},
		{"unversioned tag", func(s string) string {
			return strings.Replace(s, "gcr.io/distroless/static-debian12:nonroot", "gcr.io/distroless/static:nonroot", 1)
		}, checkPinned, "names no version"},
		{"old Go", func(s string) string {
			return strings.ReplaceAll(s, "golang:1.26.8-bookworm", "golang:1.25.3-bookworm")
		}, func(st []instructions.Stage) []string { return checkGoVersion(st, "1.26") }, "does not match go.mod"},
		{"root user", func(s string) string {
			return strings.Replace(s, "USER 10001:10001", "USER root", 1)
		}, func(st []instructions.Stage) []string { return checkNonRoot(st, "cuda", "cpu") }, "non-root"},
		{"missing stage", func(s string) string {
			return strings.Replace(s, " AS cpu\n", " AS cpu-only\n", 1)
		}, checkStages, `no stage named "cpu"`},
		{"no cuda tag", func(s string) string {
			return strings.Replace(s, "go build -tags cuda", "go build", 1)
		}, checkCUDABuild, `lacks "-tags cuda"`},
		{"shell-form entrypoint", func(s string) string {
			return strings.Replace(s, `ENTRYPOINT ["kiln"]`, `ENTRYPOINT kiln`, 1)
		}, checkRuntime, "ENTRYPOINT"},
		{"missing env", func(s string) string {
			return strings.Replace(s, "NVIDIA_DRIVER_CAPABILITIES=compute,utility", "NVIDIA_DRIVER_CAPABILITIES=graphics", 1)
		}, checkRuntime, "NVIDIA_DRIVER_CAPABILITIES"},
		{"wrong licence", func(s string) string {
			return strings.Replace(s, `licenses="Apache-2.0"`, `licenses="MIT"`, 1)
		}, checkRuntime, "licenses"},
		{"copy from nowhere", func(s string) string {
			return strings.Replace(s, "COPY --from=build /out/kiln", "COPY --from=builder /out/kiln", 1)
		}, checkCopyFrom, "names no earlier stage"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			edited := c.edit(text)
			if edited == text {
				t.Fatalf("the edit did not apply: docker/Dockerfile changed, update this test case")
			}
			problems := c.check(parseDockerfile(t, edited))
			for _, p := range problems {
				if strings.Contains(p, c.want) {
					return
				}
			}
			t.Errorf("want a problem containing %q, got %q", c.want, problems)
		})
	}
}

// TestBuildStageScript checks that scripts/docker-build-stage.sh, which CI uses to run the build
// stage without Docker, extracts exactly the build stage's RUN lines.
func TestBuildStageScript(t *testing.T) {
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("bash not found")
	}
	_, stages := readDockerfile(t)
	build := stageByName(stages, "build")
	if build == nil {
		t.Fatal("no build stage")
	}
	out, err := exec.Command(bash, filepath.Join("..", "scripts", "docker-build-stage.sh"), "--print").CombinedOutput()
	if err != nil {
		t.Fatalf("docker-build-stage.sh --print: %v\n%s", err, out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if cmd, ok := strings.CutPrefix(line, "+ "); ok {
			got = append(got, strings.Join(strings.Fields(cmd), " "))
		}
	}
	var want []string
	for _, r := range runLines(build) {
		want = append(want, strings.Join(strings.Fields(r), " "))
	}
	if !slices.Equal(got, want) {
		t.Errorf("docker-build-stage.sh runs\n  %q\nthe Dockerfile's build stage has\n  %q", got, want)
	}
}

// TestDockerignore keeps the build context small without dropping what the build needs.
func TestDockerignore(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatalf("reading .dockerignore: %v", err)
	}
	var patterns []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, strings.TrimPrefix(line, "/"))
		}
	}
	if !slices.Contains(patterns, ".git") {
		t.Error(".dockerignore: want .git excluded (history is not part of the image)")
	}
	for _, needed := range []string{"go.mod", "go.sum", "cmd/kiln/main.go", "kernels/doc.go", "data/digits.csv.gz", "device/device.go"} {
		for _, p := range patterns {
			if strings.HasPrefix(p, "!") {
				continue
			}
			if ok, _ := filepath.Match(p, needed); ok || strings.HasPrefix(needed, strings.TrimSuffix(p, "/")+"/") {
				t.Errorf(".dockerignore: pattern %q excludes %s, which the build needs", p, needed)
			}
		}
	}
}
