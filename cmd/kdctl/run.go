package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keydelivery/keydelivery/internal/cli"
	buildversion "github.com/keydelivery/keydelivery/internal/version"
)

// Exit codes (see the package documentation).
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnavailable = 3
)

// exitError carries an exit code. A nil err means the message was already
// written.
type exitError struct {
	code int
	err  error
	// help is the command whose --help explains a usage error ("" for
	// kdctl help).
	help string
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

func refused(err error) error { return &exitError{code: exitRefused, err: err} }

const defaultServer = "http://127.0.0.1:8081"

// exitCodesText documents the exit codes in kdctl help.
const exitCodesText = `Exit codes:
  0  success
  1  refused: the server answered 4xx (its code, reason and detail go to
     stderr; a 403 names the role the command needs), or it lacks the
     configuration the command needs (501: the detail names the setting),
     or a local input was unusable (a file that cannot be read, or that
     kdctl will not overwrite); retrying the same command will not help
  2  usage error (unknown command, bad flag or argument, no credential)
  3  server unreachable, 5xx, or not the admin API; retrying later may help
`

// version and commit may be stamped at build time with -ldflags
// "-X main.version=... -X main.commit=..." (make build and the container
// image do, for kdctl as for the server).
var version, commit = "", ""

// globals are the connection flags of every command that calls the
// server, accepted before the command or after it.
type globals struct {
	server    string
	tokenFile string
	timeout   time.Duration
	getenv    func(string) string
	// TLS: the CAs to trust, the client certificate and key.
	caCert, cert, key string
}

func newGlobals(getenv func(string) string) *globals {
	g := &globals{server: defaultServer, timeout: 30 * time.Second, getenv: getenv}
	if s := getenv("KD_SERVER"); s != "" {
		g.server = s
	}
	g.caCert, g.cert, g.key = getenv("KD_CACERT"), getenv("KD_CERT"), getenv("KD_KEY")
	return g
}

// register defines the connection flags on fs, with the values so far as
// defaults (so flags before the command carry over).
func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "admin API base `URL`")
	fs.StringVar(&g.tokenFile, "admin-token-file", g.tokenFile, "`FILE` holding the admin secret (else KD_ADMIN_TOKEN, else the file named by KD_ADMIN_TOKEN_FILE)")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "per-request timeout")
	fs.StringVar(&g.caCert, "cacert", g.caCert, "`FILE` of CA certificates (PEM) to trust for an https:// server (else KD_CACERT, else the system's)")
	fs.StringVar(&g.cert, "cert", g.cert, "client certificate `FILE` (PEM) for an admin plane with mutual TLS (else KD_CERT)")
	fs.StringVar(&g.key, "key", g.key, "the client certificate's private key `FILE` (PEM; else KD_KEY)")
}

// helpDefaults are the connection flags' defaults as help shows them:
// where a value came from when the environment set it.
func (g *globals) helpDefaults() map[string]string {
	d := map[string]string{"server": defaultServer}
	if s := g.getenv("KD_SERVER"); s != "" {
		d["server"] = s + " from KD_SERVER"
	}
	if f := g.getenv("KD_ADMIN_TOKEN_FILE"); f != "" && g.getenv("KD_ADMIN_TOKEN") == "" {
		d["admin-token-file"] = f + " from KD_ADMIN_TOKEN_FILE"
	}
	for flag, env := range map[string]string{"cacert": "KD_CACERT", "cert": "KD_CERT", "key": "KD_KEY"} {
		if v := g.getenv(env); v != "" {
			d[flag] = v + " from " + env
		}
	}
	return d
}

// env bundles what a command may use from its surroundings.
type env struct {
	ctx    context.Context
	g      *globals
	cmd    *command
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is kdctl without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, getenv, stdin, stdout, stderr)
	if err == nil {
		return exitOK
	}
	code := exitRefused
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	fmt.Fprintf(stderr, "kdctl: %v\n", err)
	var se *serverError
	if errors.As(err, &se) {
		for _, line := range se.details() {
			fmt.Fprintf(stderr, "kdctl:   %s\n", line)
		}
	}
	if code == exitUsage {
		help := "kdctl help"
		if ee != nil && ee.help != "" {
			help = ee.help
		}
		fmt.Fprintf(stderr, "run '%s' for usage\n", help)
	}
	return code
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := newGlobals(getenv)
	fs := flag.NewFlagSet("kdctl", flag.ContinueOnError)
	g.register(fs)
	showVersion := fs.Bool("version", false, "print kdctl's version and exit")
	if len(args) > 0 {
		args = args[1:]
	}
	err := cli.Parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return writeHelp(stdout, g)
	}
	if err != nil {
		return usageError("%v", err)
	}
	if *showVersion {
		return printVersion(stdout)
	}
	e := &env{ctx: ctx, g: g, stdin: stdin, stdout: stdout, stderr: stderr}
	rest := fs.Args()
	switch {
	case len(rest) == 0:
		writeHelp(stderr, g)
		return &exitError{code: exitUsage}
	case rest[0] == "help":
		return e.help(rest[1:])
	case rest[0] == completeCommand:
		return e.complete(rest[1:])
	}
	cmd, n := lookup(rest)
	if cmd == nil {
		return unknownCommand(e, rest)
	}
	return e.runCommand(cmd, rest[n:])
}

// unknownCommand is the answer to words that name no command: a group's
// help when asked for, else a usage error with the nearest names.
func unknownCommand(e *env, words []string) error {
	name := words[0]
	if !isGroup(name) {
		return usageError("unknown command %q%s", name, didYouMean(cli.Nearest(name, topNames())))
	}
	if len(words) == 1 {
		writeGroupHelp(e.stderr, name)
		return &exitError{code: exitUsage, err: fmt.Errorf("%s: missing subcommand", name), help: "kdctl " + name + " --help"}
	}
	switch words[1] {
	case "-h", "-help", "--help", "help":
		writeGroupHelp(e.stdout, name)
		return nil
	}
	return &exitError{code: exitUsage, help: "kdctl " + name + " --help",
		err: fmt.Errorf("%s: unknown subcommand %q%s", name, words[1], didYouMean(cli.Nearest(words[1], subNames(name))))}
}

func didYouMean(names []string) string {
	if len(names) == 0 {
		return ""
	}
	return " (did you mean " + cli.OrList(names) + "?)"
}

// runCommand parses cmd's flags (its own, and the connection flags when it
// calls the server) and runs it.
func (e *env) runCommand(cmd *command, args []string) error {
	e.cmd = cmd
	fs := flag.NewFlagSet("kdctl "+cmd.name, flag.ContinueOnError)
	run := cmd.setup(fs)
	if cmd.server() {
		e.g.register(fs)
	}
	pos, err := parseInterleaved(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		return writeCommandHelp(e.stdout, cmd, e.g)
	}
	if err == nil && cmd.args == "" && len(pos) > 0 {
		err = usageError("%s: unexpected argument %q", cmd.name, pos[0])
	}
	if err == nil {
		err = run(e, pos)
	}
	var ee *exitError
	if errors.As(err, &ee) && ee.code == exitUsage && ee.help == "" {
		ee.help = "kdctl " + cmd.name + " --help"
	}
	var se *serverError
	if errors.As(err, &se) && se.status == http.StatusForbidden {
		se.command, se.role = cmd.name, cmd.role
	}
	return err
}

// parseInterleaved parses flags that may come before, between or after the
// positional arguments, and returns the positional ones. "--" ends flags.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := cli.Parse(fs, args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError("%s: %v", strings.TrimPrefix(fs.Name(), "kdctl "), err)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return pos, nil
}

// help answers kdctl help [GROUP | COMMAND].
func (e *env) help(words []string) error {
	if len(words) == 0 {
		return writeHelp(e.stdout, e.g)
	}
	if cmd, n := lookup(words); cmd != nil && n == len(words) {
		return writeCommandHelp(e.stdout, cmd, e.g)
	}
	if len(words) == 1 && isGroup(words[0]) {
		writeGroupHelp(e.stdout, words[0])
		return nil
	}
	return usageError("help: no command %q%s", strings.Join(words, " "), didYouMean(cli.Nearest(words[len(words)-1], topNames())))
}

// writeHelp writes kdctl's help: every command, the connection flags, the
// exit codes.
func writeHelp(w io.Writer, g *globals) error {
	var b strings.Builder
	b.WriteString("kdctl: the keydelivery admin client\n\nUsage:\n" +
		"  kdctl [connection flags] COMMAND [flags] [args]\n" +
		"  kdctl COMMAND --help      a command's flags and what it does\n" +
		"  kdctl --version\n\nCommands:\n")
	for _, c := range commands {
		writeEntry(&b, c)
	}
	b.WriteString("  help [COMMAND]\n        print this text, or a command's help\n\n")
	b.WriteString("Connection flags (of the commands that call the server; also accepted after the command):\n")
	writeConnectionFlags(&b, g)
	b.WriteString("\nThe admin secret is never accepted as a flag value.\n\n" + exitCodesText)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeGroupHelp writes the commands of one group.
func writeGroupHelp(w io.Writer, group string) {
	var b strings.Builder
	for _, g := range groups {
		if g.name == group {
			fmt.Fprintf(&b, "kdctl %s: %s\n\nCommands:\n", g.name, g.summary)
		}
	}
	for _, c := range commands {
		if c.group() == group {
			writeEntry(&b, c)
		}
	}
	fmt.Fprintf(&b, "\nRun 'kdctl %s COMMAND --help' for a command's flags.\n", group)
	io.WriteString(w, b.String())
}

// writeCommandHelp writes one command's help: its synopsis, what it does,
// the role it needs, and only the flags it takes.
func writeCommandHelp(w io.Writer, cmd *command, g *globals) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s\n\n", cmd.synopsis())
	wrap(&b, cmd.summary, "", 76)
	if cmd.server() {
		fmt.Fprintf(&b, "\nRole: %s\n", roleText(cmd.role))
	}
	fs := flag.NewFlagSet(cmd.name, flag.ContinueOnError)
	cmd.setup(fs)
	if cli.FlagNames(fs) != nil {
		b.WriteString("\nFlags:\n")
		cli.WriteFlags(&b, fs, nil)
	}
	if cmd.server() {
		b.WriteString("\nConnection flags:\n")
		writeConnectionFlags(&b, g)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeConnectionFlags(b *strings.Builder, g *globals) {
	fs := flag.NewFlagSet("connection", flag.ContinueOnError)
	(&globals{server: defaultServer, timeout: g.timeout, getenv: g.getenv}).register(fs)
	cli.WriteFlags(b, fs, g.helpDefaults())
}

// roleText names the roles that may run a command needing role.
func roleText(role string) string {
	switch role {
	case "admin":
		return "admin"
	case "reader":
		return "reader (any role)"
	}
	return role + " or admin"
}

// writeEntry writes a command's synopsis and summary for a list.
func writeEntry(b *strings.Builder, c *command) {
	b.WriteString("  " + strings.TrimPrefix(c.synopsis(), "kdctl ") + "\n")
	wrap(b, c.summary, "        ", 76)
}

// wrap writes text in lines of at most width columns, each after indent.
func wrap(b *strings.Builder, text, indent string, width int) {
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > width {
			b.WriteString(line + "\n")
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	b.WriteString(line + "\n")
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintf(w, "kdctl %s\n", buildversion.Read(version, commit))
	return err
}

// versionCommand: kdctl version
func versionCommand(*flag.FlagSet) runner {
	return func(e *env, _ []string) error { return printVersion(e.stdout) }
}

// client returns an admin API client for the global flags, reading the
// credential (see the package documentation for where from).
func (e *env) client() (*client, error) {
	u, err := url.Parse(e.g.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usageError("--server %q: want an http:// or https:// URL", e.g.server)
	}
	if e.g.timeout <= 0 {
		return nil, usageError("--timeout must be positive")
	}
	token, err := e.credential()
	if err != nil {
		return nil, err
	}
	c := newClient(u, token, e.g.timeout)
	c.notes = e.stderr
	if v := e.g.getenv("KD_RETRIES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return nil, usageError("KD_RETRIES %q: want a number of retries from 0 to 100", v)
		}
		c.retries = n
	}
	tc, err := e.g.tlsConfig()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		c.http.Transport = &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, Proxy: http.ProxyFromEnvironment}
	}
	return c, nil
}

// tlsConfig is the TLS client configuration of --cacert, --cert and --key
// (nil: Go's defaults).
func (g *globals) tlsConfig() (*tls.Config, error) {
	if g.caCert == "" && g.cert == "" && g.key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if g.caCert != "" {
		b, err := readSmallFile(g.caCert, 1<<20)
		if err != nil {
			return nil, usageError("--cacert: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(b) {
			return nil, usageError("--cacert %s: no PEM certificate in it", g.caCert)
		}
	}
	if (g.cert == "") != (g.key == "") {
		return nil, usageError("--cert and --key go together (or KD_CERT and KD_KEY)")
	}
	if g.cert != "" {
		pair, err := tls.LoadX509KeyPair(g.cert, g.key)
		if err != nil {
			return nil, usageError("--cert %s, --key %s: %v", g.cert, g.key, err)
		}
		tc.Certificates = []tls.Certificate{pair}
	}
	return tc, nil
}

// maxTokenFile bounds the credential file.
const maxTokenFile = 4096

func (e *env) credential() (string, error) {
	file := e.g.tokenFile
	if file == "" {
		if t := strings.TrimSpace(e.g.getenv("KD_ADMIN_TOKEN")); t != "" {
			return t, nil
		}
		file = e.g.getenv("KD_ADMIN_TOKEN_FILE")
	}
	if file == "" {
		return "", usageError("no admin credential: set KD_ADMIN_TOKEN, or name a file holding it with --admin-token-file or KD_ADMIN_TOKEN_FILE")
	}
	b, err := readSmallFile(file, maxTokenFile)
	if err != nil {
		return "", usageError("admin token file: %v", err)
	}
	t := strings.TrimSpace(string(b))
	if t == "" || strings.ContainsAny(t, " \t\r\n") {
		return "", usageError("admin token file %s: want the secret alone on one line", file)
	}
	return t, nil
}

// readSmallFile reads at most limit bytes of a file; a larger file is an
// error. Errors never quote the content.
func readSmallFile(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
