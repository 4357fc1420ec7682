package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// config is one invocation of `loadtest run`.
type config struct {
	URL            string
	AdminURL       string
	AdminTokenFile string
	Path           string

	SigningKey  string
	SigningCert string
	Issuer      string
	Audience    string
	TokenTTL    time.Duration

	Tokens     string
	Scope      string
	KIDs       []string
	KIDFile    string
	CreateKeys int
	Batch      int
	Dist       string

	Concurrency []int
	Rate        float64
	Duration    time.Duration
	Warmup      time.Duration
	Requests    int64
	Timeout     time.Duration
	Client      string

	ServerPID    int
	Baselines    []string
	NginxWorkers string
	Rounds       int
	JSON         string

	StartServer bool
	ServerBin   string
	ServerFlags []string
	Stores      []string

	Scenario    string
	VerifyBench bool
	KeyCounts   []int
	ImportKeys  int
	RedisBenchN int
	MaxMint     int
	Seed        uint64
	KeepTmp     bool

	set map[string]bool // flags given on the command line
}

// listValue is a comma-separated list flag (repeatable).
type listValue struct{ v *[]string }

func (l listValue) String() string {
	if l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

func (l listValue) Set(s string) error {
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}

// intList is a comma-separated list of positive integers.
type intList struct{ v *[]int }

func (l intList) String() string {
	if l.v == nil {
		return ""
	}
	s := make([]string, len(*l.v))
	for i, n := range *l.v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func (l intList) Set(s string) error {
	*l.v = nil
	for _, p := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(p, "_", "")))
		if err != nil || n < 1 {
			return fmt.Errorf("%q: want positive integers separated by commas", s)
		}
		*l.v = append(*l.v, n)
	}
	return nil
}

// wordsValue splits on spaces: --server-flags "--a=1 --b".
type wordsValue struct{ v *[]string }

func (w wordsValue) String() string {
	if w.v == nil {
		return ""
	}
	return strings.Join(*w.v, " ")
}

func (w wordsValue) Set(s string) error {
	*w.v = append(*w.v, strings.Fields(s)...)
	return nil
}

func parseConfig(args []string, stderr io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("loadtest run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", "", "the keydelivery delivery plane, e.g. http://127.0.0.1:8080 (loopback only); not needed with --start-server")
	fs.StringVar(&c.AdminURL, "admin-url", "", "the admin plane, for --create-keys, e.g. http://127.0.0.1:8081 (loopback only)")
	fs.StringVar(&c.AdminTokenFile, "admin-token-file", "", "file holding the admin secret (or KD_ADMIN_TOKEN); needed by --create-keys")
	fs.StringVar(&c.Path, "path", "/keys/{kid}", "request path, {kid} replaced by the KID (e.g. \"/?kid={kid}\" for the AMS form)")
	fs.StringVar(&c.SigningKey, "signing-key", "", "PEM P-256 private key that signs the tokens (e.g. data/dev-token-signing.key)")
	fs.StringVar(&c.SigningCert, "signing-cert", "", "its certificate (puts x5t in the token header; e.g. data/dev-token-signing.crt)")
	fs.StringVar(&c.Issuer, "issuer", "keydelivery-dev", "token iss")
	fs.StringVar(&c.Audience, "audience", "keydelivery", "token aud")
	fs.DurationVar(&c.TokenTTL, "token-ttl", time.Hour, "token lifetime (exp - iat); must outlast the run")
	fs.StringVar(&c.Tokens, "tokens", "shared", "shared (one token), pool:N (N distinct tokens, round robin) or fresh (a distinct token per request, minted before the run)")
	fs.StringVar(&c.Scope, "scope", "auto", "what each token grants: all (every KID of the run), one (the KID of the request), unbound (no key claim; the server needs --allow-unbound-tokens), auto (all up to 120 KIDs, else one)")
	fs.Var(listValue{&c.KIDs}, "kids", "KIDs to request (comma-separated or repeated)")
	fs.StringVar(&c.KIDFile, "kid-file", "", "file of KIDs to request, one per line")
	fs.IntVar(&c.CreateKeys, "create-keys", 0, "create N random keys through the admin API (POST /api/keys/import) and request those")
	fs.IntVar(&c.Batch, "import-batch", 10000, "keys per import request for --create-keys")
	fs.StringVar(&c.Dist, "dist", "hot", "which KID each request asks for: hot (the first), uniform, or zipf:S (rank k has weight 1/k^S)")
	fs.Var(intList{&c.Concurrency}, "concurrency", "closed loop: requests in flight (comma-separated list: one run per value); with --rate: the connection limit (default 64)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: requests per second, scheduled at fixed intervals whatever the answers (latency counts from the scheduled time)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured window of each run")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each window (connections, caches, GC)")
	fs.Int64Var(&c.Requests, "requests", 0, "end each window after this many completed requests (0: only --duration)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&c.Client, "client", "raw", "HTTP client: raw (a minimal HTTP/1.1 keep-alive client, one connection per worker; a few µs of CPU per request) or nethttp (net/http.Transport, MaxConnsPerHost = concurrency, no compression; about 30µs per request here)")
	fs.IntVar(&c.ServerPID, "server-pid", 0, "PID of the server whose CPU time is measured (default: the process listening on the --url port)")
	fs.Var(listValue{&c.Baselines}, "baselines", "baselines to run in the same rounds: bare (net/http, 16 bytes), echo (echo/v4, 16 bytes), nginx (static 16-byte file; skipped when not installed), or all")
	fs.StringVar(&c.NginxWorkers, "nginx-workers", "auto", "nginx worker_processes: auto (one per core) or a number")
	fs.IntVar(&c.Rounds, "rounds", 1, "rounds: each runs the target then every baseline, so noise hits all alike")
	fs.StringVar(&c.JSON, "json", "", "write the results as JSON to this file")
	fs.BoolVar(&c.StartServer, "start-server", false, "build and start keydelivery --dev on loopback ports in a temporary data directory (with --store redis, on a redis-server started for the run)")
	fs.StringVar(&c.ServerBin, "server-bin", "", "keydelivery binary for --start-server (default: go build ./cmd/keydelivery)")
	fs.Var(wordsValue{&c.ServerFlags}, "server-flags", "extra flags for the started server, space-separated (e.g. \"--key-cache-ttl=0\")")
	fs.Var(listValue{&c.Stores}, "store", "store of the started server: bolt or redis (scenarios 4 and 5 take a list)")
	fs.StringVar(&c.Scenario, "scenario", "", "preset for a target of the issue: 1 (hot key, repeated tokens, 64 and 256 connections), 2 (fresh token per request), 3 (Redis, key cache off), 4 (1,000 vs 1,000,000 keys), 5 (CPIX import of 100,000 keys); explicit flags override it")
	fs.BoolVar(&c.VerifyBench, "verify-bench", false, "each round, time ES256 verifications in process (auth.Verifier, distinct tokens) and compare the server's CPU per request to it")
	fs.Var(intList{&c.KeyCounts}, "key-counts", "scenario 4: the key counts to compare (one server each)")
	fs.IntVar(&c.ImportKeys, "import-keys", 100000, "scenario 5: keys in the CPIX document")
	fs.IntVar(&c.RedisBenchN, "redis-benchmark-n", 2000000, "scenario 5: redis-benchmark -n")
	fs.IntVar(&c.MaxMint, "max-mint", 1000000, "most tokens minted for one source (memory and minting time bound)")
	var seed int64
	fs.Int64Var(&seed, "seed", 1, "seed of the KID choices")
	fs.BoolVar(&c.KeepTmp, "keep-tmp", false, "keep the temporary directory (server logs, data)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	c.Seed = uint64(seed)
	c.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { c.set[f.Name] = true })
	if err := c.applyScenario(); err != nil {
		return nil, err
	}
	if len(c.Concurrency) == 0 {
		c.Concurrency = []int{64}
	}
	if len(c.Stores) == 0 {
		c.Stores = []string{"bolt"}
	}
	return c, c.validate()
}

// applyScenario fills in a scenario's settings for every flag not given.
func (c *config) applyScenario() error {
	preset := func(name string, apply func()) {
		if !c.set[name] {
			apply()
		}
	}
	common := func() {
		preset("rounds", func() { c.Rounds = 3 })
		preset("warmup", func() { c.Warmup = 2 * time.Second })
		preset("duration", func() { c.Duration = 5 * time.Second })
		if c.URL == "" {
			c.StartServer = true
		}
	}
	switch c.Scenario {
	case "":
		return nil
	case "1":
		common()
		preset("tokens", func() { c.Tokens = "pool:1000" })
		preset("dist", func() { c.Dist = "hot" })
		preset("concurrency", func() { c.Concurrency = []int{64, 256} })
		preset("baselines", func() { c.Baselines = []string{"bare", "echo", "nginx"} })
	case "2":
		common()
		preset("tokens", func() { c.Tokens = "fresh" })
		preset("dist", func() { c.Dist = "hot" })
		preset("concurrency", func() { c.Concurrency = []int{64} })
		preset("requests", func() { c.Requests = 60000 })
		preset("duration", func() { c.Duration = 8 * time.Second })
		preset("baselines", func() { c.Baselines = []string{"bare", "echo", "nginx"} })
		preset("verify-bench", func() { c.VerifyBench = true })
	case "3":
		common()
		preset("store", func() { c.Stores = []string{"redis"} })
		preset("server-flags", func() { c.ServerFlags = []string{"--key-cache-ttl=0"} })
		preset("tokens", func() { c.Tokens = "pool:1000" })
		preset("dist", func() { c.Dist = "hot" })
		preset("concurrency", func() { c.Concurrency = []int{64} })
		preset("baselines", func() { c.Baselines = []string{"bare", "echo"} })
	case "4":
		common()
		c.StartServer = true
		preset("key-counts", func() { c.KeyCounts = []int{1000, 1000000} })
		preset("scope", func() { c.Scope = scopeUnbound })
		preset("server-flags", func() { c.ServerFlags = []string{"--allow-unbound-tokens"} })
		preset("tokens", func() { c.Tokens = "shared" })
		preset("dist", func() { c.Dist = "uniform" })
		preset("concurrency", func() { c.Concurrency = []int{64} })
	case "5":
		c.StartServer = true
		preset("rounds", func() { c.Rounds = 3 })
		preset("store", func() { c.Stores = []string{"bolt", "redis"} })
		preset("server-flags", func() { c.ServerFlags = []string{"--max-import-bytes=268435456"} })
	default:
		return fmt.Errorf("--scenario %q: want 1, 2, 3, 4 or 5", c.Scenario)
	}
	return nil
}

func (c *config) validate() error {
	var errs []error
	if c.URL != "" && c.StartServer {
		errs = append(errs, errors.New("--url and --start-server exclude each other"))
	}
	if c.URL == "" && !c.StartServer {
		errs = append(errs, errors.New("give --url (a running server on loopback) or --start-server"))
	}
	if c.URL != "" {
		if _, err := checkLoopbackURL("--url", c.URL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.AdminURL != "" {
		if _, err := checkLoopbackURL("--admin-url", c.AdminURL); err != nil {
			errs = append(errs, err)
		}
	}
	if _, err := parseTokenMode(c.Tokens); err != nil {
		errs = append(errs, err)
	}
	if _, err := parseDistribution(c.Dist); err != nil {
		errs = append(errs, err)
	}
	switch c.Scope {
	case "auto", scopeAll, scopeOne, scopeUnbound:
	default:
		errs = append(errs, fmt.Errorf("--scope %q: want auto, all, one or unbound", c.Scope))
	}
	if !strings.Contains(c.Path, "{kid}") || !strings.HasPrefix(c.Path, "/") {
		errs = append(errs, fmt.Errorf("--path %q: want a path starting with / and holding {kid}", c.Path))
	}
	if c.Rate < 0 || c.Rate > 1e6 {
		errs = append(errs, fmt.Errorf("--rate %v: want 0 (closed loop) up to 1e6", c.Rate))
	}
	if c.Rate > 0 && len(c.Concurrency) > 1 {
		errs = append(errs, errors.New("--rate takes one --concurrency (the connection limit)"))
	}
	for _, n := range c.Concurrency {
		if n > 4096 {
			errs = append(errs, fmt.Errorf("--concurrency %d: at most 4096", n))
		}
	}
	if c.Duration <= 0 || c.Duration > time.Hour {
		errs = append(errs, errors.New("--duration must be positive and at most 1h"))
	}
	if c.Warmup < 0 || c.Warmup > 10*time.Minute {
		errs = append(errs, errors.New("--warmup must be between 0 and 10m"))
	}
	if c.Requests < 0 {
		errs = append(errs, errors.New("--requests must not be negative"))
	}
	if c.Timeout <= 0 || c.Timeout > time.Minute {
		errs = append(errs, errors.New("--timeout must be positive and at most 1m"))
	}
	if c.Client != "raw" && c.Client != "nethttp" {
		errs = append(errs, fmt.Errorf("--client %q: want raw or nethttp", c.Client))
	}
	if c.Rounds < 1 || c.Rounds > 100 {
		errs = append(errs, errors.New("--rounds must be between 1 and 100"))
	}
	if c.CreateKeys < 0 || c.CreateKeys > 10_000_000 {
		errs = append(errs, errors.New("--create-keys must be between 0 and 10,000,000"))
	}
	if c.Batch < 1 || c.Batch > 100000 {
		errs = append(errs, errors.New("--import-batch must be between 1 and 100,000"))
	}
	if c.TokenTTL < time.Minute {
		errs = append(errs, errors.New("--token-ttl must be at least 1m"))
	}
	for _, b := range c.Baselines {
		switch b {
		case "bare", "echo", "nginx", "all":
		default:
			errs = append(errs, fmt.Errorf("--baselines: unknown %q (want bare, echo, nginx or all)", b))
		}
	}
	for _, s := range c.Stores {
		if s != "bolt" && s != "redis" {
			errs = append(errs, fmt.Errorf("--store %q: want bolt or redis", s))
		}
	}
	if len(c.Stores) > 1 && c.Scenario != "4" && c.Scenario != "5" {
		errs = append(errs, errors.New("several --store values only with --scenario 4 or 5"))
	}
	if c.Scenario == "4" && len(c.KeyCounts) < 2 {
		errs = append(errs, errors.New("scenario 4 needs two --key-counts or more"))
	}
	if c.ImportKeys < 1 || c.ImportKeys > 10_000_000 {
		errs = append(errs, errors.New("--import-keys must be between 1 and 10,000,000"))
	}
	if mode, err := parseTokenMode(c.Tokens); err == nil && mode.Kind == "fresh" && c.Rate == 0 && c.Requests == 0 {
		errs = append(errs, errors.New("--tokens fresh in a closed loop needs --requests: the tokens are minted before the window, one per request"))
	}
	return errors.Join(errs...)
}

func (c *config) wantBaseline(name string) bool {
	for _, b := range c.Baselines {
		if b == name || b == "all" {
			return true
		}
	}
	return false
}

// flagsForReport lists the settings, for the JSON report.
func (c *config) flagsForReport() map[string]any {
	return map[string]any{
		"scenario": c.Scenario, "path": c.Path, "tokens": c.Tokens, "scope": c.Scope, "dist": c.Dist,
		"concurrency": c.Concurrency, "rate": c.Rate, "duration_s": c.Duration.Seconds(), "warmup_s": c.Warmup.Seconds(),
		"requests": c.Requests, "client": c.Client, "timeout_s": c.Timeout.Seconds(), "baselines": c.Baselines, "nginx_workers": c.NginxWorkers,
		"rounds": c.Rounds, "start_server": c.StartServer, "server_flags": c.ServerFlags, "stores": c.Stores,
		"verify_bench": c.VerifyBench, "key_counts": c.KeyCounts, "import_keys": c.ImportKeys, "seed": c.Seed,
	}
}
