package main

import (
	"bytes"
	"flag"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/keydelivery/keydelivery/admin"
	"github.com/keydelivery/keydelivery/admin/audit"
	"github.com/keydelivery/keydelivery/admin/credentials"
	"github.com/keydelivery/keydelivery/admin/plane"
	"github.com/keydelivery/keydelivery/internal/cli"
	"github.com/keydelivery/keydelivery/internal/keystest"
	"github.com/keydelivery/keydelivery/keystore"
)

var flagRE = regexp.MustCompile(`--([a-z0-9][a-z0-9-]*)`)

// TestCommandTable: every flag a command defines is in its synopsis, and
// the synopsis names no other; every command has a summary; names are
// unique and every group is described.
func TestCommandTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commands {
		if seen[c.name] {
			t.Errorf("%s appears twice", c.name)
		}
		seen[c.name] = true
		if c.summary == "" || c.setup == nil {
			t.Errorf("%s: no summary or setup", c.name)
		}
		if g := c.group(); g != "" && !isGroup(g) {
			t.Errorf("%s: group %q is not in groups", c.name, g)
		}
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.setup(fs)
		defined := cli.FlagNames(fs)
		var synopsis []string
		for _, m := range flagRE.FindAllStringSubmatch(c.flags, -1) {
			if !slices.Contains(synopsis, m[1]) {
				synopsis = append(synopsis, m[1])
			}
		}
		sort.Strings(defined)
		sort.Strings(synopsis)
		if !slices.Equal(defined, synopsis) {
			t.Errorf("%s: flags defined %v, in the synopsis %v", c.name, defined, synopsis)
		}
		for name := range c.choices {
			if name != "" && fs.Lookup(name) == nil {
				t.Errorf("%s: choices for undefined flag --%s", c.name, name)
			}
		}
	}
}

// TestSynopsisInDocs: the README's kdctl block and the package
// documentation list exactly the commands of the table.
func TestSynopsisInDocs(t *testing.T) {
	want := strings.Join(synopsisLines(), "\n") + "\n"
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```\n"+want+"```\n") {
		t.Errorf("README.md's kdctl synopsis differs from the command table; the block should read:\n%s", want)
	}
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for line := range strings.Lines(string(doc)) {
		if s, ok := strings.CutPrefix(line, "//\tkdctl "); ok && !strings.HasPrefix(s, "[") && !strings.HasPrefix(s, "COMMAND") && !strings.HasPrefix(s, "--version") {
			got = append(got, "kdctl "+strings.TrimSuffix(s, "\n"))
		}
	}
	if !slices.Equal(got, synopsisLines()) {
		t.Errorf("doc.go's synopsis:\n%s\nwant:\n%s", strings.Join(got, "\n"), want)
	}
}

// TestHelpAtEveryLevel: kdctl, a group and a command each answer --help
// (and -h, and kdctl help ...) on stdout with exit 0; a command's help
// lists only the flags it takes, with the defaults the environment set.
func TestHelpAtEveryLevel(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		r := kdctl(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "keys import FILE|-") || !strings.Contains(r.stdout, "Exit codes") || r.stderr != "" {
			t.Errorf("kdctl %v: %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"keys", "--help"}, {"keys", "-h"}, {"keys", "help"}, {"help", "keys"}} {
		r := kdctl(t, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "keys import FILE|-") || strings.Contains(r.stdout, "hls keyinfo") {
			t.Errorf("kdctl %v: %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
	if r := kdctl(t, nil, "hls", "--help"); r.code != 0 || !strings.Contains(r.stdout, "hls keyinfo KID") {
		t.Errorf("hls --help: %d %q %q", r.code, r.stdout, r.stderr)
	}
	env := map[string]string{"KD_SERVER": "http://kd.example:9", "KD_ADMIN_TOKEN_FILE": "/run/kd/token"}
	for _, args := range [][]string{{"keys", "import", "--help"}, {"keys", "import", "-h"}, {"help", "keys", "import"}, {"keys", "import", "x.json", "--help"}} {
		r := kdctl(t, env, args...)
		if r.code != 0 || r.stderr != "" {
			t.Errorf("kdctl %v: %d %q", args, r.code, r.stderr)
			continue
		}
		for _, want := range []string{"Usage: kdctl keys import FILE|-", "--format FORMAT", "--type TYPE", "Role: writer or admin",
			"--server URL", "http://kd.example:9 from KD_SERVER", "/run/kd/token from KD_ADMIN_TOKEN_FILE"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("kdctl %v lacks %q:\n%s", args, want, r.stdout)
			}
		}
		if strings.Contains(r.stdout, "--key-file") || strings.Contains(r.stdout, "--signing-key") {
			t.Errorf("kdctl %v lists another command's flags:\n%s", args, r.stdout)
		}
	}
	// An offline command lists no connection flags.
	r := kdctl(t, env, "token", "mint", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--signing-key FILE") || strings.Contains(r.stdout, "--server") || strings.Contains(r.stdout, "--admin-token-file") {
		t.Errorf("token mint --help: %d\n%s", r.code, r.stdout)
	}
	// ... and refuses them.
	if r := kdctl(t, nil, "kek", "generate", "--server", "http://x"); r.code != 2 || !strings.Contains(r.stderr, "unknown flag --server") {
		t.Errorf("kek generate --server: %d %q", r.code, r.stderr)
	}
	// Every command's help works.
	for _, c := range commands {
		r := kdctl(t, nil, append(strings.Fields(c.name), "--help")...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: "+c.synopsis()+"\n") {
			t.Errorf("%s --help: %d %q %q", c.name, r.code, r.stdout, r.stderr)
		}
	}
}

// TestMistakesAreOneLine: a mistyped command, subcommand or flag is one
// line naming the nearest names, and a pointer to the right help.
func TestMistakesAreOneLine(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"kyes", "list"}, []string{`unknown command "kyes" (did you mean keys?)`, "run 'kdctl help' for usage"}},
		{[]string{"keys", "crate"}, []string{`keys: unknown subcommand "crate" (did you mean create?)`, "run 'kdctl keys --help' for usage"}},
		{[]string{"keys", "create", "--nmae", "x"}, []string{"keys create: unknown flag --nmae (did you mean --name?)", "run 'kdctl keys create --help' for usage"}},
		{[]string{"--sever", "http://x", "keys", "list"}, []string{"unknown flag --sever (did you mean --server?)", "run 'kdctl help' for usage"}},
		{[]string{"keys", "get", "nope"}, []string{"keys get: keystore: invalid key id", "run 'kdctl keys get --help' for usage"}},
	} {
		r := kdctl(t, map[string]string{"KD_ADMIN_TOKEN": "kda_x"}, c.args...)
		lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
		if r.code != 2 || len(lines) != 2 || !strings.Contains(lines[0], c.want[0]) || lines[1] != c.want[1] || r.stdout != "" {
			t.Errorf("kdctl %v: %d\n%s", c.args, r.code, r.stderr)
		}
	}
	// A group without its subcommand shows the group's commands.
	if r := kdctl(t, nil, "keyseeds"); r.code != 2 || !strings.Contains(r.stderr, "keyseeds create") || !strings.Contains(r.stderr, "missing subcommand") {
		t.Errorf("keyseeds: %d %q", r.code, r.stderr)
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		r := kdctl(t, nil, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "kdctl ") || !strings.Contains(r.stdout, runtime.Version()) || strings.Count(r.stdout, "\n") != 1 {
			t.Errorf("kdctl %v: %d %q %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

func TestKID(t *testing.T) {
	const want = "uuid       0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f\n" +
		"hex        0a4f6e08b4e54a259c4b6e3e4a2c1d7f\n" +
		"base64url  Ck9uCLTlSiWcS24-Siwdfw\n" +
		"ams        nb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f\n" +
		"playready  CG5PCuW0JUqcS24+Siwdfw==\n"
	for _, in := range [][]string{
		{"0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"},
		{"{0A4F6E08-B4E5-4A25-9C4B-6E3E4A2C1D7F}"},
		{"0a4f6e08b4e54a259c4b6e3e4a2c1d7f"},
		{"nb:kid:UUID:0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"},
		{"Ck9uCLTlSiWcS24-Siwdfw"},                  // a ClearKey request's KID
		{"Ck9uCLTlSiWcS24+Siwdfw=="},                // the same bytes, standard base64
		{"--playready", "CG5PCuW0JUqcS24+Siwdfw=="}, // a PlayReady header's KID
	} {
		r := kdctl(t, nil, append([]string{"kid"}, in...)...)
		if r.code != 0 || r.stdout != want {
			t.Errorf("kid %v: %d\n%s%s", in, r.code, r.stdout, r.stderr)
		}
	}
	for _, in := range [][]string{{}, {"nope"}, {"AAAA"}, {"a", "b"}, {"--playready", "0a4f6e08-b4e5-4a25-9c4b-6e3e4a2c1d7f"}} {
		if r := kdctl(t, nil, append([]string{"kid"}, in...)...); r.code != 2 {
			t.Errorf("kid %v: %d %q", in, r.code, r.stdout)
		}
	}
}

// TestForbiddenNamesTheRole: a 403 says which role the command needs.
func TestForbiddenNamesTheRole(t *testing.T) {
	_, envs := session(t, "reader", "writer")
	if r := kdctl(t, envs["writer"], "keys", "create", "--id", kidA); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	for _, c := range []struct {
		role string
		args []string
		want string
	}{
		{"reader", []string{"keys", "export", kidA}, "keys export needs a credential of role exporter or admin"},
		{"reader", []string{"keys", "create"}, "keys create needs a credential of role writer or admin"},
		{"writer", []string{"keys", "purge", kidA}, "keys purge needs a credential of role admin"},
	} {
		r := kdctl(t, envs[c.role], c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, "403 forbidden/role_insufficient") || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s %v: %d %s", c.role, c.args, r.code, r.stderr)
		}
	}
}

// TestNotConfiguredIsNotRetryLater: a 501 (a server without --public-url
// asked for a delivery URL) is exit 1, not 3: retrying will not help.
func TestNotConfiguredIsNotRetryLater(t *testing.T) {
	secret, creds := generateAdminKey(t, "ops", "admin")
	keys := keystest.New(t, keystore.Options{})
	set, err := credentials.Load(creds)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plane.New(plane.Options{Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry(),
		Keys: keys, Credentials: set, Audit: audit.New(&bytes.Buffer{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Register(p, admin.Options{}); err != nil { // no PublicURL
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	env := map[string]string{"KD_SERVER": srv.URL, "KD_ADMIN_TOKEN": secret}
	if r := kdctl(t, env, "keys", "create", "--id", kidA); r.code != 0 {
		t.Fatalf("create: %d %s", r.code, r.stderr)
	}
	r := kdctl(t, env, "keys", "delivery-url", kidA)
	if r.code != 1 || !strings.Contains(r.stderr, "501 not_configured") || !strings.Contains(r.stderr, "--public-url") || strings.Contains(r.stderr, "retry") {
		t.Errorf("delivery-url without --public-url: %d %s", r.code, r.stderr)
	}
}

// TestComplete: the candidates the completion scripts show, from the
// command table.
func TestComplete(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  []string
	}{
		{[]string{""}, topNames()},
		{[]string{"ke"}, []string{"keys", "keyseeds", "kek"}},
		{[]string{"keys", "im"}, []string{"import"}},
		{[]string{"keys", "import", "--f"}, []string{"--format"}},
		{[]string{"keys", "import", "--format", ""}, []string{"json", "cpix"}},
		{[]string{"keys", "import", "--type", "Co"}, []string{"CommonEncryption", "ConfigurationEncryption"}},
		{[]string{"keys", "import", ""}, nil}, // a file name: the shell completes it
		{[]string{"--server", "http://x", "keys", "g"}, []string{"get"}},
		{[]string{"--se"}, []string{"--server"}},
		{[]string{"token", "mint", "--s"}, []string{"--signing-key", "--subject"}},
		{[]string{"adminkey", "generate", "--role", ""}, []string{"reader", "writer", "exporter", "admin", "packager"}},
		{[]string{"speke", "request", "--sc"}, []string{"--scheme"}},
		{[]string{"completion", ""}, []string{"bash", "zsh"}},
		{[]string{"help", "keys", "l"}, []string{"list"}},
	} {
		r := kdctl(t, nil, append([]string{completeCommand}, c.words...)...)
		got := strings.Fields(r.stdout)
		if r.code != 0 || !slices.Equal(got, c.want) {
			t.Errorf("complete %q = %v (%d %s), want %v", c.words, got, r.code, r.stderr, c.want)
		}
	}
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// kdctlBinary builds kdctl once for the tests that run it from a shell.
func kdctlBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "kdctl-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binDir = dir
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "kdctl"), ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// shell runs script with the built kdctl first on PATH.
func shell(t *testing.T, sh, script string) string {
	t.Helper()
	path, err := exec.LookPath(sh)
	if err != nil {
		t.Fatalf("%s is needed to test kdctl's %s completion: install it (Debian: apt-get install %s)", sh, sh, sh)
	}
	dir := kdctlBinary(t)
	script = strings.ReplaceAll(script, "SCRIPT", scriptFile(t, sh))
	cmd := exec.Command(path, "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", sh, err, out)
	}
	return string(out)
}

// scriptFile writes kdctl's completion script for sh to a file and returns
// its path.
func scriptFile(t *testing.T, sh string) string {
	res := kdctl(t, nil, "completion", sh)
	if res.code != 0 {
		t.Fatalf("completion %s: %d %s", sh, res.code, res.stderr)
	}
	p := filepath.Join(t.TempDir(), "kdctl."+sh)
	if err := os.WriteFile(p, []byte(res.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCompletionBash sources the bash script into a real bash and runs its
// completion function as bash's completion would.
func TestCompletionBash(t *testing.T) {
	out := shell(t, "bash", `source SCRIPT
complete -p kdctl
COMP_WORDS=(kdctl keys im); COMP_CWORD=2; _kdctl; echo "1:${COMPREPLY[*]}"
COMP_WORDS=(kdctl keys import --format ''); COMP_CWORD=4; _kdctl; echo "2:${COMPREPLY[*]}"
COMP_WORDS=(kdctl ''); COMP_CWORD=1; _kdctl; echo "3:${COMPREPLY[*]}"`)
	for _, want := range []string{"complete -o default -F _kdctl kdctl", "1:import\n", "2:json cpix\n", "3:" + strings.Join(topNames(), " ") + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("bash completion lacks %q:\n%s", want, out)
		}
	}
}

// TestCompletionZsh loads the zsh script into a real zsh, with compadd,
// compdef and _files (which exist only inside zsh's completion system)
// recording what they are given.
func TestCompletionZsh(t *testing.T) {
	out := shell(t, "zsh", `compdef() { print "compdef $*" }
compadd() { shift; print -r -- "compadd ${(P)1}" }
_files() { print _files }
source SCRIPT
words=(kdctl keys im); CURRENT=3; _kdctl
words=(kdctl adminkey generate --role w); CURRENT=5; _kdctl
words=(kdctl keys import ''); CURRENT=4; _kdctl`)
	for _, want := range []string{"compdef _kdctl kdctl", "compadd import\n", "compadd writer\n", "_files\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("zsh completion lacks %q:\n%s", want, out)
		}
	}
}

// TestNoCredentialsConfigured: against a server with no admin credential
// at all, kdctl says so instead of calling the credential wrong.
func TestNoCredentialsConfigured(t *testing.T) {
	p, err := plane.New(plane.Options{Log: slog.New(slog.DiscardHandler), Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Register(p, admin.Options{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	r := kdctl(t, map[string]string{"KD_SERVER": srv.URL, "KD_ADMIN_TOKEN": "kda_x"}, "keys", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "401 unauthorized/no_credentials_configured") || !strings.Contains(r.stderr, "no admin credentials are configured on this server") {
		t.Errorf("%d %s", r.code, r.stderr)
	}
}
