package deploy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	Cmd  string // upper case: FROM, RUN, ...
	Args string
	Line int
}

// parseDockerfile splits a Dockerfile into instructions. It knows comments,
// parser directives and backslash continuations: enough for the checks
// below, not a full parser (no container engine runs here to build it).
func parseDockerfile(text string) []instruction {
	var out []instruction
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(args), Line: start})
		cur.Reset()
	}
	return out
}

var ldflagsRE = regexp.MustCompile(`-ldflags\s+"([^"]*)"`)

// dockerfileLDFlags returns the -ldflags of the go build in the Dockerfile,
// ${VERSION} and ${COMMIT} unexpanded.
func dockerfileLDFlags(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	for _, in := range parseDockerfile(string(b)) {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			if m := ldflagsRE.FindStringSubmatch(in.Args); m != nil {
				return m[1], nil
			}
		}
	}
	return "", errors.New("deploy/Dockerfile: no RUN go build with -ldflags \"...\"")
}

func TestDockerfile(t *testing.T) {
	text := string(readFile(t, deployPath(t, "Dockerfile")))
	ins := parseDockerfile(text)

	// Stages.
	var stages [][]instruction
	for _, in := range ins {
		if in.Cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) > 0 {
			stages[len(stages)-1] = append(stages[len(stages)-1], in)
		}
	}
	if len(stages) < 2 {
		t.Fatalf("want a multi-stage build (builder, runtime), got %d stage(s)", len(stages))
	}
	builder, final := stages[0], stages[len(stages)-1]

	// The builder's Go matches go.mod's go directive.
	gomod := string(readFile(t, filepath.Join(repoRoot(t), "go.mod")))
	m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(gomod)
	if m == nil {
		t.Fatal("go.mod: no go directive")
	}
	argGo := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)`).FindStringSubmatch(text)
	if argGo == nil || argGo[1] != m[1] {
		t.Errorf("ARG GO_VERSION = %v, want %s (go.mod)", argGo, m[1])
	}
	if !strings.Contains(builder[0].Args, "golang:${GO_VERSION}") {
		t.Errorf("builder stage FROM %q: want golang:${GO_VERSION}", builder[0].Args)
	}

	// The build: static, reproducible paths, version stamped.
	var build string
	for _, in := range builder {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			build = in.Args
		}
	}
	if build == "" {
		t.Fatal("no RUN go build in the builder stage")
	}
	if !strings.Contains(text, "CGO_ENABLED=0") {
		t.Error("the build must set CGO_ENABLED=0 (static binary for distroless/static)")
	}
	if !strings.Contains(text, "GOWORK=off") {
		t.Error("the build must set GOWORK=off: go.work names deploy/, which the build context leaves out")
	}
	for _, want := range []string{"-trimpath", "-s -w", "-X main.version=${VERSION}", "-X main.commit=${COMMIT}", "./cmd/keydelivery"} {
		if !strings.Contains(build, want) {
			t.Errorf("go build lacks %q: %s", want, build)
		}
	}
	// -X on a variable that does not exist is silently ignored: check that
	// package main has them (the metrics test then sees them in build_info).
	mainSrc := string(readFile(t, filepath.Join(repoRoot(t), "cmd", "keydelivery", "run.go")))
	if !regexp.MustCompile(`var version, commit\b`).MatchString(mainSrc) {
		t.Error("cmd/keydelivery no longer declares `var version, commit`: fix the Dockerfile's -X flags")
	}

	// The runtime stage: distroless static or scratch, numeric non-root
	// user, exec-form entrypoint, no shell needed, both ports.
	base := final[0].Args
	if !strings.Contains(base, "distroless/static") && !strings.HasPrefix(base, "scratch") {
		t.Errorf("runtime stage FROM %q: want distroless static or scratch", base)
	}
	var user, entrypoint, expose string
	copied := map[string]bool{}
	for _, in := range final {
		switch in.Cmd {
		case "USER":
			user = in.Args
		case "ENTRYPOINT":
			entrypoint = in.Args
		case "EXPOSE":
			expose += " " + in.Args
		case "RUN", "SHELL":
			t.Errorf("line %d: %s in the runtime stage needs a shell the image does not have", in.Line, in.Cmd)
		case "HEALTHCHECK":
			t.Errorf("line %d: HEALTHCHECK cannot run without a shell or an HTTP client in the image", in.Line)
		case "VOLUME":
			t.Errorf("line %d: VOLUME makes an anonymous volume per container; mount /data explicitly", in.Line)
		case "COPY":
			f := strings.Fields(in.Args)
			dst := f[len(f)-1]
			for _, src := range f[:len(f)-1] {
				if strings.HasPrefix(src, "--") {
					continue
				}
				if strings.HasSuffix(dst, "/") {
					copied[dst+filepath.Base(src)] = true
				} else {
					copied[dst] = true
				}
			}
		}
	}
	uid, _, _ := strings.Cut(user, ":")
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(uid) {
		t.Errorf("USER %q: want a numeric, non-zero UID (runAsNonRoot can only verify numbers)", user)
	}
	var ep []string
	if err := json.Unmarshal([]byte(entrypoint), &ep); err != nil || len(ep) == 0 {
		t.Errorf("ENTRYPOINT %q: want the exec form [\"/path\"] (no shell)", entrypoint)
	} else if !copied[ep[0]] {
		t.Errorf("ENTRYPOINT %s is not a file the runtime stage copies (%v)", ep[0], copied)
	}
	for _, port := range []string{"8080", "8081"} {
		if !regexp.MustCompile(`\b` + port + `\b`).MatchString(expose) {
			t.Errorf("EXPOSE lacks %s", port)
		}
	}
	if !copied["/data"] {
		t.Error("the runtime stage must create /data owned by the runtime user (the only writable place)")
	}
	if !strings.Contains(text, "docker build -f deploy/Dockerfile") {
		t.Error("the Dockerfile must say how to build it (docker build -f deploy/Dockerfile ...)")
	}
}

// TestDockerIgnore checks that deploy/Dockerfile.dockerignore keeps out what
// must stay out (VCS data, local state) and lets in every file the build
// needs: go.mod, go.sum, and the Go and embedded files of every package of
// this module that cmd/keydelivery and cmd/kdctl import.
func TestDockerIgnore(t *testing.T) {
	patterns := parseDockerignore(string(readFile(t, deployPath(t, "Dockerfile.dockerignore"))))
	need := []string{"go.mod", "go.sum"}
	goTool := lookPathOrFail(t, "go", "https://go.dev/dl/")
	cmd := exec.Command(goTool, "list", "-deps", "-json=Dir,Module,GoFiles,EmbedFiles,Standard", "./cmd/keydelivery", "./cmd/kdctl")
	cmd.Dir = repoRoot(t)
	cmd.Env = append(os.Environ(), "GOWORK=off") // as the Dockerfile builds
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir        string
			Module     *struct{ Path string }
			GoFiles    []string
			EmbedFiles []string
			Standard   bool
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Standard || p.Module == nil || p.Module.Path != "github.com/keydelivery/keydelivery" {
			continue
		}
		rel, err := filepath.Rel(repoRoot(t), p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range append(p.GoFiles, p.EmbedFiles...) {
			need = append(need, filepath.ToSlash(filepath.Join(rel, f)))
		}
	}
	if len(need) < 20 {
		t.Fatalf("go list found only %d files to build; something is off", len(need))
	}
	for _, f := range need {
		if dockerignored(patterns, f) {
			t.Errorf("Dockerfile.dockerignore excludes %s, which the build needs", f)
		}
	}
	for _, f := range []string{".git/config", "data/dev-kek", "bin/keydelivery", "delivery.test", "cmd/keydelivery/data/keys.db", "local.env", "tls.key"} {
		if !dockerignored(patterns, f) {
			t.Errorf("Dockerfile.dockerignore lets %s into the build context", f)
		}
	}
}

type ignorePattern struct {
	re     *regexp.Regexp
	negate bool
}

// parseDockerignore turns .dockerignore lines into matchers with Docker's
// semantics for the forms used here: *, ?, **, a leading !, and a match on
// a directory covering everything under it.
func parseDockerignore(text string) []ignorePattern {
	var ps []ignorePattern
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		p := ignorePattern{}
		if s, ok := strings.CutPrefix(line, "!"); ok {
			p.negate, line = true, s
		}
		line = strings.TrimPrefix(strings.TrimSuffix(filepath.ToSlash(filepath.Clean(line)), "/"), "/")
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(line); i++ {
			switch c := line[i]; {
			case strings.HasPrefix(line[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(line[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(/.*)?$")
		p.re = regexp.MustCompile(re.String())
		ps = append(ps, p)
	}
	return ps
}

// dockerignored reports whether path (slash-separated, relative to the
// context) is left out: the last matching pattern decides.
func dockerignored(ps []ignorePattern, path string) bool {
	ignored := false
	for _, p := range ps {
		if p.re.MatchString(path) {
			ignored = !p.negate
		}
	}
	return ignored
}

// TestDockerignoreMatcher pins the matcher's semantics on Docker's documented
// examples, so TestDockerIgnore checks what Docker would do.
func TestDockerignoreMatcher(t *testing.T) {
	ps := parseDockerignore("*/temp*\n**/*.key\n!keep/**/*.key\ndocs/\n")
	for path, want := range map[string]bool{
		"somedir/temporary.txt": true,
		"somedir/temp":          true,
		"temp":                  false,
		"a/b/temp.txt":          false,
		"tls.key":               true,
		"a/b/tls.key":           true,
		"keep/x/tls.key":        false,
		"docs/operations.md":    true,
		"docs":                  true,
		"cmd/main.go":           false,
	} {
		if got := dockerignored(ps, path); got != want {
			t.Errorf("%s: ignored %v, want %v", path, got, want)
		}
	}
}
