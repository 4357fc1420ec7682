package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"
)

// Exit codes (see the package documentation).
const (
	exitOK          = 0
	exitRefused     = 1
	exitUsage       = 2
	exitUnavailable = 3
)

// exitError carries an exit code. A nil err means the message was already
// written (as the flag package does for a bad flag).
type exitError struct {
	code int
	err  error
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

const usageText = `kdctl: the keydelivery admin client

Usage:
  kdctl [global flags] COMMAND [flags] [args]

Commands:
  keys create [--id KID] [--name N] [--type T] [--key-file F | --key-seed-id ID]
              [--iv B64] [--quiet]
        create a key (random value), import the 16-byte key in F (raw, hex
        or base64), or derive it from a stored key seed and the KID; prints
        the key's metadata, or only its KID with --quiet
  keys get KID
        print a key's metadata (never its material)
  keys import FILE|- [--format json|cpix] [--type T]
        import a JSON array [{"Id","Data","Iv"}] or a CPIX document (format
        from --format, else the extension .json/.xml/.cpix, else the first
        byte); prints each key's outcome (created or unchanged). A refused
        batch prints each bad entry; a conflict prints each conflicting KID
  keys list [--limit N] [--cursor C] [--all] [--asset ID]
        print key metadata, one JSON object per line; --all follows every
        page; --asset lists the keys of one asset
  keys export KID... [--out FILE] [--recipient-cert FILE]...
        print (or write to a new 0600 FILE) a CPIX document holding the keys
        in the clear (role exporter), or encrypted to the recipients'
        certificates
  keys delete KID | keys restore KID | keys purge KID
        soft-delete a key (no longer delivered, kept for the retention
        period), bring it back, or destroy a deleted key (role admin)
  keys delivery-url KID [--type envelope|clearkey|playready|widevine|fairplay]
        print the URL a player uses for the key
  keyseeds create [--id ID] [--name N] [--seed-file F]
        store a PlayReady key seed (role admin): the 30 bytes in F (raw, hex
        or base64), or a random one; prints its metadata, never the seed
  keyseeds list
        print the key seeds' metadata, one JSON object per line
  hls keyinfo KID [--key-file PATH] [--keyinfo-file PATH] [--iv HEX]
              [--token-file F | --token TOKEN] [--force]
        export the key (role exporter) into a new 0600 key file (default
        KID.key) and write the key-info file ffmpeg's -hls_key_info_file
        reads (default KID.keyinfo): key URI, key file path, optional IV;
        prints the key-info file's path
  token mint --signing-key FILE [--cert FILE] --issuer I --audience A
             [--kid KID]... [--ttl 1h] [--subject S]
        print an ES256 delivery token granting the given KIDs
  speke request --content ID [--kid KID]... --system S[,S...]
                [--track-type T[,T...]] [--scheme cenc|cbcs] [--period N] [--out FILE]
        send a SPEKE v2 request as a packager would (role packager or admin)
        and print each key (in the clear: keep the output secret) with its
        signaling, decoded; systems: widevine, playready, fairplay, aes128
        (HLS AES-128), clearkey, common (W3C common PSSH); --out also keeps
        the CPIX answer in a new 0600 file
  kek generate [--id ID]
        print a new key-encryption-key line for the KEK file (id kek-YYYYMMDD)
  adminkey generate --name N --role reader|writer|exporter|admin|packager
                    [--content PATTERN]...
        print a new admin secret (first line) and its credentials-file line;
        --content limits a packager to content IDs ('*': any characters)
  help  print this text

Global flags (also accepted after the subcommand):
  --server URL             admin API (default $KD_SERVER, else ` + defaultServer + `)
  --admin-token-file FILE  file holding the admin secret (default: $KD_ADMIN_TOKEN,
                           else the file named by $KD_ADMIN_TOKEN_FILE)
  --timeout D              per-request timeout (default 30s)

The admin secret is never accepted as a flag value.

Exit codes:
  0  success
  1  refused: the server answered 4xx (its code, reason and detail go to
     stderr), or a local input was unusable (a file that cannot be read, or
     that kdctl will not overwrite)
  2  usage error (unknown command, bad flag or argument, no credential)
  3  server unreachable, 5xx, or not the admin API; retrying later may help
`

// globals are the flags every command accepts.
type globals struct {
	server    string
	tokenFile string
	timeout   time.Duration
	getenv    func(string) string
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", g.server, "admin API base URL")
	fs.StringVar(&g.tokenFile, "admin-token-file", g.tokenFile, "file holding the admin secret")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "per-request timeout")
}

// env bundles what a command may use from its surroundings.
type env struct {
	ctx    context.Context
	g      *globals
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

// run is kdctl without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	err := dispatch(ctx, args, getenv, stdin, stdout, stderr)
	if err == nil || errors.Is(err, flag.ErrHelp) {
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
		fmt.Fprintln(stderr, "run 'kdctl help' for usage")
	}
	return code
}

func dispatch(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	g := &globals{server: defaultServer, timeout: 30 * time.Second, getenv: getenv}
	if s := getenv("KD_SERVER"); s != "" {
		g.server = s
	}
	fs := newFlagSet("kdctl", stderr, func(w io.Writer) { io.WriteString(w, usageText) })
	g.register(fs)
	if len(args) > 0 {
		args = args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	e := &env{ctx: ctx, g: g, stdin: stdin, stdout: stdout, stderr: stderr}
	rest := fs.Args()
	if len(rest) == 0 {
		io.WriteString(stderr, usageText)
		return &exitError{code: exitUsage}
	}
	cmd, sub := rest[0], ""
	if len(rest) > 1 {
		sub = rest[1]
	}
	switch {
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		_, err := io.WriteString(stdout, usageText)
		return err
	case cmd == "keys" && sub == "create":
		return e.keysCreate(rest[2:])
	case cmd == "keys" && sub == "get":
		return e.keysGet(rest[2:])
	case cmd == "keys" && sub == "import":
		return e.keysImport(rest[2:])
	case cmd == "keys" && sub == "list":
		return e.keysList(rest[2:])
	case cmd == "keys" && sub == "export":
		return e.keysExport(rest[2:])
	case cmd == "keys" && sub == "delete":
		return e.keysDelete(rest[2:])
	case cmd == "keys" && sub == "restore":
		return e.keysRestore(rest[2:])
	case cmd == "keys" && sub == "purge":
		return e.keysPurge(rest[2:])
	case cmd == "keys" && sub == "delivery-url":
		return e.keysDeliveryURL(rest[2:])
	case cmd == "keyseeds" && sub == "create":
		return e.keyseedsCreate(rest[2:])
	case cmd == "keyseeds" && sub == "list":
		return e.keyseedsList(rest[2:])
	case cmd == "hls" && sub == "keyinfo":
		return e.hlsKeyinfo(rest[2:])
	case cmd == "token" && sub == "mint":
		return e.tokenMint(rest[2:])
	case cmd == "kek" && sub == "generate":
		return e.kekGenerate(rest[2:])
	case cmd == "adminkey" && sub == "generate":
		return e.adminkeyGenerate(rest[2:])
	case cmd == "speke" && sub == "request":
		return e.spekeRequest(rest[2:])
	case cmd == "keys" || cmd == "keyseeds" || cmd == "hls" || cmd == "token" || cmd == "kek" || cmd == "adminkey" || cmd == "speke":
		if sub == "" {
			return usageError("%s: missing subcommand", cmd)
		}
		return usageError("%s: unknown subcommand %q", cmd, sub)
	}
	return usageError("unknown command %q", cmd)
}

func newFlagSet(name string, stderr io.Writer, usage func(io.Writer)) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { usage(stderr) }
	return fs
}

// parse parses flags; a bad flag has already been reported by the flag
// package, so it becomes a silent usage exit.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return &exitError{code: exitUsage}
	}
	return nil
}

// subFlags is a FlagSet for one subcommand that also takes the globals.
func (e *env) subFlags(name, synopsis string) *flag.FlagSet {
	fs := newFlagSet("kdctl "+name, e.stderr, nil)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: kdctl %s %s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	e.g.register(fs)
	return fs
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
	return newClient(u, token, e.g.timeout), nil
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

// noArgs refuses positional arguments a command does not take.
func noArgs(fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q", strings.TrimPrefix(fs.Name(), "kdctl "), fs.Arg(0))
	}
	return nil
}
