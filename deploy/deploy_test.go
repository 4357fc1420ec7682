package deploy_test

import (
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"sigs.k8s.io/yaml"
)

// update rewrites generated files (kubernetes/prometheusrule.yaml) instead
// of failing when they are out of date.
var update = flag.Bool("update", false, "rewrite generated deployment files")

// workDir holds what the tests build (the server binary), for the whole run.
var workDir string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "deploy-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	workDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// repoRoot is the module root: the parent of this package's directory
// (go test runs in the package directory).
func repoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

// deployPath is a path under deploy/.
func deployPath(t testing.TB, elem ...string) string {
	return filepath.Join(append([]string{repoRoot(t), "deploy"}, elem...)...)
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*$`)

// yamlDocs splits a YAML stream into its documents, dropping empty ones
// (comments only).
func yamlDocs(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSeparator.Split(string(b), -1) {
		if j, err := yaml.YAMLToJSON([]byte(d)); err == nil && string(j) == "null" {
			continue
		}
		docs = append(docs, []byte(d))
	}
	return docs
}

// strictJSON converts one YAML document to JSON, refusing duplicate keys.
func strictJSON(t testing.TB, name string, doc []byte) []byte {
	t.Helper()
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return j
}

// decodeStrict decodes one YAML document into v, refusing unknown fields and
// duplicate keys.
func decodeStrict(t testing.TB, name string, doc []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

// TestYAMLFilesParse parses every YAML document under deploy/, refusing
// duplicate keys (which YAML parsers otherwise resolve silently, last one
// wins).
func TestYAMLFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(deployPath(t), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		rel, _ := filepath.Rel(repoRoot(t), path)
		docs := yamlDocs(readFile(t, path))
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", rel)
		}
		for i, doc := range docs {
			strictJSON(t, fmt.Sprintf("%s (document %d)", rel, i+1), doc)
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 15 {
		t.Errorf("parsed only %d YAML documents under deploy/; files missing?", n)
	}
}

// parseEnvFile reads KEY=VALUE lines (comments and blank lines skipped), as
// kustomize's envs, Compose and systemd's EnvironmentFile= read them.
func parseEnvFile(t testing.TB, path string) map[string]string {
	t.Helper()
	env := map[string]string{}
	for i, line := range strings.Split(string(readFile(t, path)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			t.Errorf("%s:%d: not KEY=VALUE: %q", path, i+1, line)
			continue
		}
		if _, dup := env[k]; dup {
			t.Errorf("%s:%d: %s set twice", path, i+1, k)
		}
		env[k] = v
	}
	return env
}

var (
	buildOnce   sync.Once
	buildBinary string
	buildErr    error
	helpOnce    sync.Once
	helpFlags   map[string]bool
)

// testVersion and testCommit are stamped into the server the tests build,
// with the -ldflags of deploy/Dockerfile, and must come back in
// keydelivery_build_info.
const (
	testVersion = "deploy-test-version"
	testCommit  = "deploy-test-commit"
)

// serverBinary builds cmd/keydelivery once per run, the way deploy/Dockerfile
// does (its -ldflags, with VERSION and COMMIT substituted, and the server's
// module alone: GOWORK=off).
func serverBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = fmt.Errorf("go not on PATH: %v", err)
			return
		}
		ldflags, err := dockerfileLDFlags(filepath.Join(repoRoot(t), "deploy", "Dockerfile"))
		if err != nil {
			buildErr = err
			return
		}
		ldflags = strings.NewReplacer("${VERSION}", testVersion, "${COMMIT}", testCommit).Replace(ldflags)
		out := filepath.Join(workDir, "keydelivery")
		cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags", ldflags, "-o", out, "./cmd/keydelivery")
		cmd.Dir = repoRoot(t)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/keydelivery: %v\n%s", err, b)
			return
		}
		buildBinary = out
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBinary
}

// serverFlags are the flag names of the server, read from its --help.
func serverFlags(t testing.TB) map[string]bool {
	t.Helper()
	bin := serverBinary(t)
	helpOnce.Do(func() {
		out, _ := exec.Command(bin, "--help").CombinedOutput()
		helpFlags = map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^\s+-{1,2}([a-z0-9][a-z0-9-]*)`).FindAllStringSubmatch(string(out), -1) {
			helpFlags[m[1]] = true
		}
	})
	if len(helpFlags) < 20 {
		t.Fatalf("read only %d flags from keydelivery --help", len(helpFlags))
	}
	return helpFlags
}

// checkEnvNames fails for every KD_* variable the server does not know: a
// flag as KD_<FLAG>, or KD_KEK and KD_REDIS_PASSWORD (secrets, environment
// only). A misspelt variable is otherwise silently ignored.
func checkEnvNames(t testing.TB, where string, names []string) {
	t.Helper()
	known := map[string]bool{"KD_KEK": true, "KD_REDIS_PASSWORD": true}
	for f := range serverFlags(t) {
		known["KD_"+strings.ToUpper(strings.ReplaceAll(f, "-", "_"))] = true
	}
	var unknown []string
	for _, n := range names {
		if strings.HasPrefix(n, "KD_") && !known[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("%s: the server has no flag for %v (KD_<FLAG> with - as _)", where, unknown)
	}
}

// lookPathOrFail finds a tool the tests need, failing with how to install it.
func lookPathOrFail(t testing.TB, tool, install string) string {
	t.Helper()
	p, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("%s not found on PATH; it is needed to check deploy/. Install it with: %s", tool, install)
	}
	return p
}
